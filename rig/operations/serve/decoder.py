"""The client's DTR/RTS -> board events, by the classic two-transistor auto-reset truth table.

Pure and timing-free (fact sheet §3.2; :func:`rig.esp32.auto_reset`): EN is low while RTS is
asserted and DTR is not; IO0 is low while DTR is asserted and RTS is not, and it is sampled when
EN rises. Over a network the lines arrive one round trip apart, so ClassicReset's (1, 1) step,
which a devkit's EN capacitor hides, is an undecided state here: EN let go with both lines
asserted leaves :attr:`AutoResetDecoder.pending` set until the next change or the strap window.
"""

from __future__ import annotations

from rig.esp32 import auto_reset

__all__ = ["DESCRIBE", "EVENTS", "AutoResetDecoder"]

EVENTS = ("reset_hold", "bootloader", "hard_reset")
DESCRIBE = {
    "reset_hold": "EN pulled low (RTS without DTR)",
    "bootloader": "EN let go with IO0 low (bootloader reset)",
    "hard_reset": "EN let go with IO0 high (hard reset)",
}


class AutoResetDecoder:
    """DTR/RTS (pyserial sense: True = asserted) -> board events, by the auto-reset truth table.

    :meth:`set` returns the events a line change causes, in order; :attr:`pending` is a token
    while EN has been let go with both lines asserted and the strap is still undecided: pass it
    to :meth:`expire` when the strap window has passed.
    """

    def __init__(self) -> None:
        self.dtr = False
        self.rts = False
        self.held = False  # EN pulled low by the (virtual) transistor
        self.pending: int | None = None
        self._token = 0

    @property
    def en_low(self) -> bool:
        return auto_reset(self.dtr, self.rts)[0]

    @property
    def io0_low(self) -> bool:
        return auto_reset(self.dtr, self.rts)[1]

    def set(self, dtr: bool | None = None, rts: bool | None = None) -> list[str]:
        if dtr is not None:
            self.dtr = dtr
        if rts is not None:
            self.rts = rts
        if self.pending is not None:
            # EN was let go while DTR = RTS = 1; this change decides what the chip latched.
            self.pending = None
            if self.io0_low:
                return ["bootloader"]
            if self.en_low:
                self.held = True  # pulled low again before it rose: no reset happened
                return []
            return ["hard_reset"]
        if self.en_low and not self.held:
            self.held = True
            return ["reset_hold"]
        if self.held and not self.en_low:
            self.held = False
            if self.io0_low:
                return ["bootloader"]
            if self.dtr and self.rts:
                self._token += 1
                self.pending = self._token
                return []
            return ["hard_reset"]
        return []

    def expire(self, token: int) -> list[str]:
        """The strap window of ``token`` has passed: IO0 was high when EN rose."""
        if self.pending != token:
            return []
        self.pending = None
        return ["hard_reset"]
