"""One client on one slot of ``rig serve``: the auto-reset decoder, its timers, and the relay
sequences the client's DTR/RTS changes play (:class:`ClientSession`).

:class:`~rig.operations.serve.server.SlotServer` accepts the client, vouches for the board and
opens the slot; this module is what happens on the line while the client is connected.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import serial

from rig.board.protocols import StepLike
from rig.board.sequences import run_sequence
from rig.board.station import LiveSlot
from rig.hardware.rfc2217 import Rfc2217Link
from rig.operations.serve.decoder import DESCRIBE, AutoResetDecoder

if TYPE_CHECKING:
    from rig.operations.serve.server import SessionInfo, SlotServer

__all__ = ["BAUD_WINDOW", "ClientSession", "split_at_start"]

# How long a started board waits for the client's rate change after a hard reset (see _Session):
# pyserial's client acknowledges-and-waits each line change in 50 ms steps, esptool re-applies DTR
# after its RTS pulse, then the client switches; 2 s covers that over a WAN of ~1 s round trip.
BAUD_WINDOW = 2.0


def split_at_start(steps: tuple[StepLike, ...]) -> tuple[tuple, tuple]:
    """``steps`` of a ``run`` sequence as (everything before the step that starts the chip, the
    rest). The chip starts at the last contact change (the power button pressed, EN let go):
    what comes before it only prepares the board (IO0 released, power off long enough)."""
    for index in range(len(steps) - 1, -1, -1):
        if steps[index].action != "wait":
            return steps[:index], steps[index:]
    return steps, ()


class _RateWatch:
    """The serial port as the RFC 2217 link sees it, calling ``on_rate`` once the client's
    SET_BAUDRATE has switched the port to another rate."""

    def __init__(self, port: serial.SerialBase, on_rate: Callable[[], None]) -> None:
        self.__dict__.update(_port=port, _on_rate=on_rate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        changed = name == "baudrate" and value != self._port.baudrate
        setattr(self._port, name, value)
        if changed:
            self._on_rate()


class ClientSession:
    """One client on one slot: the decoder, its timers, and the relay sequences it plays.

    A hard reset while the client's line is not at the board's console rate holds back the
    start of the chip: esptool's ``--after hard-reset`` pulses RTS at the end of a 921600 write,
    and a client such as pytest-embedded switches back to 115200 only once that line change is
    acknowledged. The chip prints its ROM and bootloader log at 115200 the moment it starts; had
    the sequence pressed the power button before the acknowledgement, the whole log would cross a
    port at 921600 and reach the client as garbage. So the ``run`` sequence plays up to the step
    that starts the chip (:func:`split_at_start`), the line change is acknowledged, and that step
    plays when the client changes the rate, when it causes the next board event (a held start
    goes first: events keep their order), when it leaves, or after :data:`BAUD_WINDOW` (a
    client that stays at its rate on purpose).
    """

    def __init__(
        self,
        server: SlotServer,
        live: LiveSlot,
        port: serial.SerialBase,
        conn: socket.socket,
        info: SessionInfo,
    ) -> None:
        self.server = server
        self.live = live
        self.info = info
        self.port = port
        self.decoder = AutoResetDecoder()
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._held: tuple[tuple, str] | None = None  # (steps that start the chip, sequence name)
        self._held_timer: threading.Timer | None = None
        self.link = Rfc2217Link(
            conn, _RateWatch(port, self._on_rate), self._on_line, name=f"serve-{live.id}"
        )
        with server._session_lock:
            server._link = self.link

    def run(self) -> None:
        if self.server._closed.is_set():
            return
        try:
            self.link.run()
        finally:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                self._start_held()  # the client left right after a hard reset: start the board

    def _on_line(self, name: str, value: bool) -> None:
        with self._lock:
            events = self.decoder.set(**{name: value})
            self._play(events)
            self._arm_timer()

    def _on_rate(self) -> None:
        with self._lock:
            self._start_held()

    def _arm_timer(self) -> None:
        token = self.decoder.pending
        if token is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.server.mapping.strap_window, self._expire, (token,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, token: int) -> None:
        with self._lock:
            if self.link.alive:
                self._play(self.decoder.expire(token))

    def _play(self, events: list[str]) -> None:
        for event in events:
            self._start_held()
            self.info.events.append(event)
            sequence = getattr(self.server.mapping, event)
            slot = self.live.id
            if sequence is None:
                self.server.log(f"{slot}: {DESCRIBE[event]}: ignored")
                continue
            self.server.log(f"{slot}: {DESCRIBE[event]}: {sequence}")
            steps = tuple(self.live.board_type.sequences[sequence])
            if event == "hard_reset" and self.port.baudrate != self.live.board.console_baud:
                prepare, start = split_at_start(steps)
                self._run(prepare, sequence)
                self._hold(start, sequence)
                self.server.log(
                    f"{slot}: {sequence}: the chip starts once the client's line leaves "
                    f"{self.port.baudrate} baud (console: {self.live.board.console_baud})"
                )
            else:
                self._run(steps, sequence)

    def _hold(self, start: tuple, sequence: str) -> None:
        self._held = (start, sequence)
        self._held_timer = threading.Timer(BAUD_WINDOW, self._on_rate)
        self._held_timer.daemon = True
        self._held_timer.start()

    def _start_held(self) -> None:
        held, self._held = self._held, None
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        if held is not None:
            self._run(*held)

    def _run(self, steps: tuple, sequence: str) -> None:
        slot = self.live.id
        try:
            run_sequence(steps, self.live.relays, self.live.board.clock, name=f"{slot}:{sequence}")
        except Exception as err:  # a pin error must not kill the link; the client sees it
            self.server.log(f"{slot}: {sequence} sequence failed: {err}")
