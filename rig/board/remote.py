"""The remote slot kind: a board served by ``rig serve`` on another host (a Pi of the lab), reached
over RFC 2217 on one connection that the board holds open.

``rig serve`` keeps the relays on the Pi and turns its client's DTR/RTS into the board type's
sequences, decoded with the classic two-transistor auto-reset truth table
(:func:`rig.esp32.auto_reset`; docs/remote.md): EN pulled low (RTS without DTR) plays ``off``, EN
let go with IO0 low plays ``download``, EN let go with IO0 high plays ``run`` (the board type's
``rfc2217`` mapping). So a remote board's ``off`` / ``download`` / ``run`` are DTR/RTS patterns on
its connection, and everything above the board layer - flasher sessions, backups, boot checks,
batches - runs unchanged on it.

One connection from the reset through the whole session, because the serving host ties the board
to it: the slot is locked and the board vouched for (identify, expected MAC, verified backup)
when a client connects, and every relay is released when it leaves - an L7X in download mode is
powered only while its button is held. A board that opened a port to play the reset and closed
it, as the local :class:`~rig.board.board.Board` does before esptool opens the port again, would
switch the chip off between the two. Hence :meth:`RemoteBoard.loader_port` hands esptool the
held connection, and :class:`RemoteLines` (the slot's "relay bank") closes it on release: the
serving host then releases every relay, as ``release_all`` does on a local slot.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import serial

from rig import config
from rig.board.board import Board, DownloadModeError
from rig.clock import SYSTEM, Clock
from rig.errors import OperationError
from rig.hardware.ports import PortSpec
from rig.hardware.relays import RelayBank
from rig.hardware.rfc2217_client import Rfc2217Client

__all__ = ["CONNECT_TIMEOUT", "RemoteBoard", "RemoteLines", "RemoteSlotError", "remote_url"]

# pyserial's RFC 2217 client waits this long (its ``timeout`` URL option) for the server's
# answers. ``rig serve`` answers a connect only after it has vouched for the board: an identify
# and a whole-flash MD5 (0.7 s simulated), plus a dump when the flash changed since its last
# backup - a 4 MB L7X at 2 Mbaud takes ~21 s. pyserial's default of 3 s would fail those.
CONNECT_TIMEOUT = 60

# Once connected, how long pyserial waits for the server to acknowledge an option (a line change
# is acknowledged when its relay sequence has played: well under a second for the shipped boards).
# A server that vanished without closing the connection fails the next change after this long.
ANSWER_TIMEOUT = 10

# (DTR, RTS) in pyserial's sense (True = asserted) and what the auto-reset circuit makes of them.
IDLE = (False, False)  # EN and IO0 high
EN_LOW = (False, True)  # RTS without DTR: EN held low
BOTH = (True, True)  # EN let go, IO0 still high: the server waits (strap window) for the next
IO0_LOW = (True, False)  # DTR without RTS: IO0 low - EN rising now latches download mode


class RemoteSlotError(OperationError):
    """A remote slot cannot play a sequence its board type maps to no DTR/RTS event."""


def remote_url(url: str) -> str:
    """``url`` with pyserial's ``timeout`` option set to :data:`CONNECT_TIMEOUT` (unless given)."""
    if "timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}timeout={CONNECT_TIMEOUT}"


class RemoteBoard(Board):
    """A board behind ``rig serve``: its sequences are DTR/RTS patterns on one held connection.

    The connection opens at the first use (a sequence, the console, esptool) and stays open until
    :meth:`disconnect` (the slot's ``release_all``/``close``). The lines are tracked as the server's
    decoder sees them: ``off`` holds EN low (RTS without DTR), ``download`` lets EN go while IO0 is
    low - through DTR = RTS = 1, as esptool's ClassicReset does, so the server sees the strap
    before EN rises - and ``run`` lets EN go with IO0 high. A sequence plays on the serving host
    before the line change is acknowledged, so each pattern returns with the board ready.
    """

    def __init__(
        self, slot_id: str, board_type: config.BoardType, url: str, *, clock: Clock = SYSTEM
    ) -> None:
        super().__init__(slot_id, board_type, {}, PortSpec(url=remote_url(url)), clock=clock)
        self._link: serial.SerialBase | None = None
        self._lines = IDLE
        self._lock = threading.RLock()

    # -- the connection -------------------------------------------------------------------------
    def connection(self) -> serial.SerialBase:
        """The held RFC 2217 connection (opened now if needed, with both lines released, so the
        server's decoder sees no event)."""
        with self._lock:
            if self._link is not None and not _alive(self._link):
                self.disconnect()  # the server went away (stopped, its host died): start over
            if self._link is None:
                link = Rfc2217Client(None)
                link.port = self.port.resolve()  # not opened yet: set the lines first
                link.baudrate = self.console_baud
                link.timeout = 0.05
                link.dtr, link.rts = IDLE
                try:
                    link.open()
                except (serial.SerialException, OSError) as err:
                    raise DownloadModeError(
                        f"{self.slot_id}: cannot connect to {self.port}: {err} (the serving host "
                        "refused the client - slot busy, another board, no verified backup - or "
                        "its rig serve is gone; its log says which)"
                    ) from err
                # the connect waited for the server's board check; from now on every answer
                # (a line change: its sequence; a rate) comes within a sequence's time
                link._network_timeout = ANSWER_TIMEOUT
                self._link, self._lines = link, IDLE
            return self._link

    def disconnect(self) -> None:
        """Close the connection: the serving host releases every relay and unlocks the slot."""
        with self._lock:
            link, self._link = self._link, None
            self._lines = IDLE
        if link is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                link.close()

    def loader_port(self) -> serial.SerialBase:
        """esptool talks through the held connection: a second one would be a new client, which
        the serving host turns away while this one is connected (and closing this one would end
        the download mode it set up)."""
        return self.connection()

    # -- sequences as line patterns ---------------------------------------------------------------
    def _sequence(self, name: str) -> None:
        mapping = self.type.rfc2217
        if name == "off" or name == mapping.reset_hold:
            patterns = [EN_LOW]
        elif name == mapping.bootloader:
            patterns = [EN_LOW, BOTH, IO0_LOW, IDLE]  # EN held first: a reset plays `off` first
        elif name == mapping.hard_reset:
            patterns = [EN_LOW, IDLE]
        else:
            raise self._unmapped(name)
        with self._lock:
            link = self.connection()
            try:
                if link.baudrate != self.console_baud:
                    # the board's console rate first: the server starts a chip only once the
                    # client's line is at it (a boot log at 115200 into a 921600 port is garbage)
                    link.baudrate = self.console_baud
                self._set(link, *patterns)
            except (serial.SerialException, OSError) as err:
                self.disconnect()
                raise DownloadModeError(f"{self.slot_id}: {name} over {self.port}: {err}") from err

    def _unmapped(self, name: str) -> RemoteSlotError:
        mapping = self.type.rfc2217
        return RemoteSlotError(
            f"{self.slot_id}: board type {self.type.name} maps no RFC 2217 event to its {name!r} "
            f"sequence (rfc2217: reset_hold {mapping.reset_hold}, bootloader "
            f"{mapping.bootloader}, hard_reset {mapping.hard_reset}): a remote slot cannot play it"
        )

    def _set(self, link: serial.SerialBase, *states: tuple[bool, bool]) -> None:
        """Walk the lines through ``states``; DTR and RTS change one at a time (as on the wire),
        DTR first, so EN_LOW -> BOTH -> IO0_LOW never passes through IDLE."""
        for dtr, rts in states:
            if dtr != self._lines[0]:
                link.dtr = dtr
                self._lines = (dtr, self._lines[1])
            if rts != self._lines[1]:
                link.rts = rts
                self._lines = (self._lines[0], rts)

    # -- the port as the board layer uses it -------------------------------------------------
    @contextlib.contextmanager
    def _open(self, baud: int) -> Iterator[serial.SerialBase]:
        link = self.connection()
        if link.baudrate != baud:
            link.baudrate = baud
        yield link  # held: closed by disconnect(), not here

    def _diagnose(self, seen: list[bytes], attempts: int) -> str:
        return (
            super()._diagnose(seen, attempts)
            + " (remote slot: the relays are on the serving host; its rig serve log shows the "
            "sequences it played)"
        )


def _alive(link: serial.SerialBase) -> bool:
    """The connection's reader still runs (it ends when the server closes the connection)."""
    thread = getattr(link, "_thread", None)
    return link.is_open and thread is not None and thread.is_alive()


class RemoteLines(RelayBank):
    """A remote slot's "relay bank": no relay here (they are on the serving host), and releasing
    them means closing the board's connection, after which ``rig serve`` releases every relay of
    the slot. Registered with the safety net like any bank, so an exit or a signal closes it."""

    def __init__(self, board: RemoteBoard) -> None:
        super().__init__(board.slot_id, {})
        self.board = board

    def release_all(self) -> list[Exception]:
        self.board.disconnect()
        return []

    def close(self) -> list[Exception]:
        self.board.disconnect()
        return super().close()
