"""A simulated board's USB-serial bridge beyond its data lines: DTR/RTS and the USB cable.

* The classic two-transistor auto-reset circuit of ESP32 devkits on the bridge's DTR/RTS: EN is
  pulled low while RTS is asserted and DTR is not, IO0 while DTR is asserted and RTS is not; both
  asserted or both released leave both lines alone. The pull-downs are wired-OR with the relay
  contacts. When the transistor lets EN go it rises through its RC (:attr:`EN_RISE_DELAY`) and
  the chip samples IO0 then. The simulator keeps this truth table itself (it is the hardware being
  modelled; ``tests/sim/test_sim_facts.py`` checks it against the rig's ``rig.esp32.auto_reset``).
  A bridge without DTR/RTS wiring (the L7X's CH330) lets the lines reach nothing.
* The USB cable: unplugged, the pty vanishes (:meth:`~rig.sim.transport.pty.PtyUart.unplug`) and a
  USB-powered board loses its supply until the cable is back.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from .scheduler import Scheduler
from .transport.pty import PtyUart

__all__ = ["BridgeHost", "UsbBridge"]


class BridgeHost(Protocol):
    """What the bridge needs of its board (:class:`~rig.sim.board.SimBoard` has it all)."""

    uart: PtyUart
    scheduler: Scheduler

    def changing_inputs(self, stops_chip: bool) -> AbstractContextManager[None]:
        """Hold the board's lock for an input change (interrupting a slow flash operation that
        holds it first if the change stops the chip)."""

    def log_event(self, what: str) -> None: ...

    def contact(self, name: str) -> bool:
        """Whether an input contact is closed (``en``: EN held low by the reset relay)."""

    def en_pulled_low(self) -> None:
        """The auto-reset transistor pulls EN low: the chip is held in reset."""

    def en_risen(self) -> None:
        """EN crossed the chip's threshold after the transistor let it go: the chip resets."""

    def usb_supply(self, present: bool) -> None:
        """USB power went away or came back (a USB-powered board)."""


class UsbBridge:
    """The bridge of one board: ``auto_reset`` if its DTR/RTS drive the devkit circuit,
    ``usb_powered`` if the board runs from the USB cable's supply."""

    # Seconds from the auto-reset transistor letting EN go until EN crosses the chip's threshold
    # (EN pull-up and capacitor; 10 kOhm with the usual 10 uF "auto-reset fix" gives ~0.14 s).
    # Over RFC 2217 each DTR/RTS change costs the client at least 50 ms (pyserial polls for the
    # server's acknowledgement), so esptool's ClassicReset passes through (DTR, RTS) = (1, 1) for
    # ~50 ms before IO0 goes low and keeps IO0 low for >= 150 ms after: an EN that rose faster
    # than ~0.1 s would boot from flash, one slower than ~0.2 s would miss the IO0 strap.
    EN_RISE_DELAY = 0.15

    def __init__(self, board: BridgeHost, *, auto_reset: bool, usb_powered: bool) -> None:
        self.board = board
        self.auto_reset = auto_reset
        self.usb_powered = usb_powered
        self.modem_lines: tuple[bool, bool] = (False, False)  # (DTR, RTS), True = asserted
        self.en_low = False  # the transistor pulls EN low
        self.io0_low = False  # the transistor pulls IO0 low
        self._en_rise = 0  # generation of the pending EN rise (a newer pull cancels it)

    def set_modem_lines(self, dtr: bool, rts: bool) -> None:
        """The host's DTR/RTS (pyserial sense: True = asserted, line low), e.g. over RFC 2217."""
        self.modem_lines = (dtr, rts)
        if not self.auto_reset:
            return
        en_low, io0_low = rts and not dtr, dtr and not rts
        board = self.board
        with board.changing_inputs(stops_chip=en_low and not self.en_low):
            if io0_low != self.io0_low:
                self.io0_low = io0_low
                board.log_event(f"io0 {'pulled low' if io0_low else 'released'} (DTR/RTS)")
            if en_low == self.en_low:
                return
            self.en_low = en_low
            self._en_rise += 1
            board.log_event(f"en {'pulled low' if en_low else 'released'} (DTR/RTS)")
            if en_low:
                board.en_pulled_low()
            elif not board.contact("en"):  # else the reset relay still holds EN low
                rise = self._en_rise
                board.scheduler.call_later(self.EN_RISE_DELAY, lambda: self._en_risen(rise))

    def _en_risen(self, rise: int) -> None:
        """EN crossed the threshold after the transistor let it go (scheduler, under the lock)."""
        if rise == self._en_rise and not self.en_low and not self.board.contact("en"):
            self.board.en_risen()

    def unplug(self, gone: float | None = 1.0) -> None:
        """The USB cable comes out (and goes back in after ``gone`` seconds, unless None)."""
        board = self.board
        back: Callable[[], None] | None = None
        if self.usb_powered:

            def back() -> None:
                board.scheduler.call_later(0, lambda: board.usb_supply(present=True))

        board.uart.unplug(gone, on_replug=back)
        board.log_event("USB unplugged")
        if self.usb_powered:
            board.scheduler.call_later(0, lambda: board.usb_supply(present=False))

    def replug(self) -> None:
        self.board.uart.replug()
