"""The ``sim`` pin backend: GPIO outputs wired to simulated boards' contacts.

A simulated slot has no GPIO chip; its "lines" are wired, through a modelled relay, to one input
contact of a :class:`rig.sim.board.SimBoard` (``io0``, ``power``, ``en``). Everything above the
pin interface is the same code as on the bench.

The pin keeps the electrical ``level`` it drives, computed from the *configured* polarity exactly
as the hardware backends do, and the modelled relay turns that level into a contact state with
the relay board's *actual* polarity (``relay_active_low``). By default the two are the same, so
``set(True)`` closes the contact; a test that passes a different ``relay_active_low`` for a pin
reproduces a wrong ``active_low`` in a station config: the relay is energised while the rig
believes it is off, from the moment the line is requested, as on real hardware.
"""

from __future__ import annotations

from collections.abc import Mapping

from rig.hardware.pins import PinError, level_for
from rig.hardware.pins.base import BaseFactory, BasePin

from .board import SimBoard

__all__ = ["SimPin", "SimPinFactory"]


class SimPin(BasePin):
    """A line wired to ``board``'s ``contact`` through a relay of polarity ``relay_active_low``.

    ``contact=None`` is a relay whose contact reaches nothing (a broken or missing wire): the
    line and relay behave, the board never notices.
    """

    def __init__(
        self,
        key,
        label: str,
        active_low: bool,
        *,
        board: SimBoard | None,
        contact: str | None,
        relay_active_low: bool,
        stuck: bool | None = None,
    ) -> None:
        super().__init__(key, label, active_low)
        self.board = board
        self.contact = contact
        self.relay_active_low = relay_active_low
        self.stuck = stuck  # a welded (True) or dead (False) relay contact; None: works
        self.level: bool = level_for(False, active_low)
        self.freed = False
        self._apply()

    @property
    def energised(self) -> bool:
        """What the modelled relay does with the current level (its own polarity)."""
        return level_for(True, self.relay_active_low) == self.level

    @property
    def contact_closed(self) -> bool:
        """What the relay's contact really does (a stuck relay ignores its coil)."""
        return self.energised if self.stuck is None else self.stuck

    def _apply(self) -> None:
        if self.board is not None and self.contact is not None:
            self.board.set_contact(self.contact, self.contact_closed)

    def _drive(self, active: bool) -> None:
        self.level = level_for(active, self.active_low)
        self._apply()

    def _free(self) -> None:
        # A freed line keeps its last level (stock Raspberry Pi kernels keep released outputs
        # driven), so the contact stays where close() left it: open.
        self.freed = True


class SimPinFactory(BaseFactory):
    """Pins wired to simulated boards: ``wiring[pin] = (board, contact)``.

    A contact of ``None`` models a relay that does not reach the board (a fault: the rig drives
    it, nothing happens). ``relay_active_low[pin]`` overrides the relay board's actual polarity
    for one pin (default: the polarity the pin is requested with, i.e. a correct config).
    ``stuck[pin]`` is a relay whose contact is welded closed (True) or never closes (False),
    whatever the pin drives (a fault: the pin level says released, the board says otherwise).
    """

    def __init__(
        self,
        wiring: Mapping[int | str, tuple[SimBoard | None, str | None]],
        *,
        relay_active_low: Mapping[int | str, bool] | None = None,
        stuck: Mapping[int | str, bool] | None = None,
    ) -> None:
        super().__init__()
        self.wiring = dict(wiring)
        self.relay_active_low = dict(relay_active_low or {})
        self.stuck = dict(stuck or {})
        self.pins: dict[int | str, SimPin] = {}  # every pin ever requested, by pin id

    def _key(self, pin: int | str) -> int | str:
        if pin in self.wiring:
            return pin
        if isinstance(pin, str) and pin.strip().isdigit() and int(pin) in self.wiring:
            return int(pin)
        wired = ", ".join(repr(p) for p in self.wiring) or "none"
        raise PinError(f"simulated pin {pin!r} is not wired to any board (wired pins: {wired})")

    def _open(self, key, pin, *, active_low: bool, label: str) -> BasePin:
        board, contact = self.wiring[key]
        if board is not None and contact is not None:
            try:
                board.contact(contact)
            except ValueError as exc:
                raise PinError(f"simulated pin {pin!r}: {exc}") from exc
        new = SimPin(
            key,
            label,
            active_low,
            board=board,
            contact=contact,
            relay_active_low=self.relay_active_low.get(key, active_low),
            stuck=self.stuck.get(key),
        )
        self.pins[key] = new
        return new
