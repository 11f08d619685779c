"""``rig serve``: a slot's serial port as an RFC 2217 endpoint whose DTR/RTS drive the relays.

Developers keep their own tools (esptool, idf.py, PlatformIO, the Arduino IDE) on their laptop
and point them at ``rfc2217://pi:4000``. Those tools reset a board by toggling DTR/RTS, which a
relay-wired board such as the L7X does not have. Here the client's lines never reach the serial
port: they are decoded with the classic two-transistor auto-reset truth table (fact sheet §3.2)

* EN is low while RTS is asserted and DTR is not;
* IO0 is low while DTR is asserted and RTS is not; it is sampled when EN rises,

and the resulting board events play the board type's sequences (``rfc2217`` in its YAML,
:class:`rig.config.Rfc2217Mapping`): EN pulled low -> ``off``, EN let go with IO0 low
(esptool's ClassicReset / UnixTightReset) -> ``download``, EN let go with IO0 high (an RTS
pulse with DTR inactive: esptool's hard reset) -> ``run``.

The decoder is timing-free, because over a network the lines arrive one round trip apart (and
pyserial's client waits at least 50 ms for each acknowledgement). ClassicReset goes from
(DTR, RTS) = (0, 1) through (1, 1) to (1, 0): on a devkit the EN capacitor hides the (1, 1)
step; here EN let go with both lines asserted waits ``strap_window`` seconds for IO0 to go low.
The acknowledgement of the decisive line change is sent only when the relay sequence has
finished, so the client's next step (reading the ROM banner, SYNC) finds the board ready. One
exception: a hard reset while the client's line runs at another rate than the board's console
(esptool's ``--after hard-reset`` at the end of a 921600 write) - the chip would print its boot log
at the console rate into a port still at the client's, so the board is started only once the
client's rate change lands (:class:`_Session`).

One client per slot. The slot is locked, its relays and serial port opened, only while a client
is connected; when it leaves - cleanly or not - the port is closed, every relay released and the
lock dropped, so other ``rig`` commands can use the slot between clients. Baud, data size, parity,
stop bits and purges pass through to the port. RFC 2217 has no authentication: the server binds to
loopback unless told otherwise (see docs/remote.md for ``ssh -L``).

A client can erase or overwrite anything (RFC 2217 passes its bytes through), so no client gets
the port of a board the rig cannot vouch for: :meth:`SlotServer.check` (at start-up) and every
connect identify the chip, apply the slot's ``expected_mac`` and make sure a verified backup holds
the chip's current flash (:func:`rig.operations.safeguards.ensure_backup`, the policy of every
destructive command) - see :meth:`SlotServer.guard`.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from rig.board.protocols import StepLike
from rig.board.sequences import run_sequence
from rig.board.station import LiveSlot, LiveStation
from rig.errors import OperationError
from rig.hardware.locks import SlotBusy
from rig.hardware.ports import PortNotFound
from rig.hardware.rfc2217 import Rfc2217Link, tune_socket
from rig.operations.backups import BackupStore
from rig.operations.safeguards import BackupCheck, ensure_backup
from rig.operations.serve.decoder import DESCRIBE, AutoResetDecoder
from rig.operations.session import FlasherSession

__all__ = ["ServeError", "SessionInfo", "SlotServer", "is_loopback", "rfc2217_url"]

# How long a started board waits for the client's rate change after a hard reset (see _Session):
# pyserial's client acknowledges-and-waits each line change in 50 ms steps, esptool re-applies DTR
# after its RTS pulse, then the client switches; 2 s covers that over a WAN of ~1 s round trip.
BAUD_WINDOW = 2.0


class ServeError(OperationError):
    """A slot cannot be served (address in use, slot busy, port missing, a board the rig cannot
    vouch for: another MAC, no current backup)."""


# -- one slot ------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True if every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos
    )


def rfc2217_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"rfc2217://{host}:{port}"


@dataclass
class SessionInfo:
    peer: str
    events: list[str]


class SlotServer:
    """Serves one slot of a :class:`rig.board.station.LiveStation` on ``bind``:``port``.

    ``station_lock`` serialises open/close of slots when several servers share a station.
    ``log`` receives one line per connection, per board check and per board event.
    ``backup_mode`` is the backup policy of the destructive commands (``auto``, ``require``,
    ``skip``; validated, with ``--force`` for ``skip``, by
    :func:`~rig.operations.safeguards.prepare_backups` before a server is made) and ``store`` the
    backup store (default: the station's).
    """

    def __init__(
        self,
        station: LiveStation,
        slot_id: str,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        station_lock: threading.Lock | None = None,
        log: Callable[[str], None] | None = None,
        backup_mode: str = "auto",
        store: BackupStore | None = None,
    ) -> None:
        self.station = station
        self.slot_id = slot_id
        self.board_type = station.config.board_of(slot_id)
        self.backup_mode = backup_mode
        self.store = store or BackupStore(station.config.backups)
        self.mapping = self.board_type.rfc2217
        self._station_lock = station_lock or threading.Lock()
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        try:
            family = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0][0]
            self._listener = socket.create_server((bind, port), family=family, backlog=4)
        except OSError as err:
            raise ServeError(f"{slot_id}: cannot listen on {bind}:{port}: {err}") from err
        self.port = self._listener.getsockname()[1]
        self.url = rfc2217_url(bind, self.port)
        self._closed = threading.Event()
        self._session_lock = threading.Lock()
        self._link: Rfc2217Link | None = None
        self._session_thread: threading.Thread | None = None
        self.sessions: collections.deque[SessionInfo] = collections.deque(maxlen=100)
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"serve-{slot_id}", daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def check(self) -> BackupCheck:
        """Fail fast, at start-up: the slot can be locked, its relays opened and its port found,
        and :meth:`guard` vouches for the board (then everything is freed again)."""
        try:
            with self._station_lock:
                live = self.station.open_slot(self.slot_id)
            try:
                url = live.board.port.resolve()
                if url.startswith("/") and not os.path.exists(url):
                    raise PortNotFound(f"{self.slot_id}: serial port {url} does not exist")
                return self.guard(live)
            finally:
                with self._station_lock:
                    live.close()
        except (SlotBusy, PortNotFound) as err:
            raise ServeError(str(err)) from err

    def guard(self, live: LiveSlot) -> BackupCheck:
        """Vouch for the board in the open slot ``live`` before a client may touch it.

        Download mode by relays and a flasher session identify the chip; the slot's
        ``expected_mac`` refuses another board (:class:`~rig.operations.errors.WrongBoard`);
        then :func:`~rig.operations.safeguards.ensure_backup` applies the backup policy: a backup
        of this MAC is relied on only if it matches the chip's whole-flash MD5 now (``auto``
        dumps again otherwise, ``require`` refuses). The relays are released afterwards,
        whatever happened.

        When: at start-up (:meth:`check`, so a bad slot fails ``rig serve`` before it serves
        anything) and again on *every* connect, before the client gets a byte. Between two
        clients the slot is unlocked: the last client, another ``rig`` command, a person with
        esptool or the firmware itself (saving settings) may have changed the flash, or another
        board may sit in the slot. Checking only at start-up would serve such a board without a
        current backup. A connect therefore costs an identify and a whole-flash MD5 (0.7 s on
        the simulated station) - plus a dump when the flash changed since its latest backup.
        What a connected client then writes is its own business: RFC 2217 passes bytes through.
        """
        t0 = time.monotonic()
        try:
            with FlasherSession(live.board, expected_mac=live.config.expected_mac) as session:
                check = ensure_backup(session, self.store, self.backup_mode, self._meta())
                mac = session.identity.mac
        except OperationError as err:  # the link, a refusal, no download mode, the backup
            reason = str(err).removeprefix(f"{self.slot_id}: ")
            raise ServeError(f"{self.slot_id}: not served: {reason}") from err
        finally:
            live.relays.release_all()
        self.log(f"{self.slot_id}: {mac}: {check.detail} ({time.monotonic() - t0:.1f} s)")
        return check

    def _meta(self) -> dict[str, Any]:
        return {
            "station": self.station.name,
            "slot": self.slot_id,
            "board_type": self.board_type.name,
            "taken_by": "rig serve",
        }

    def start(self) -> SlotServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening, end the current session (its relays are released), wait for it."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._session_lock:
            link, thread = self._link, self._session_thread
        if link is not None:
            link.stop()
        if thread is not None:
            thread.join(timeout=10)
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    @property
    def busy(self) -> bool:
        with self._session_lock:
            return self._session_thread is not None

    # -- connections ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, addr = self._listener.accept()
            except OSError:
                return  # listener closed
            peer = f"{addr[0]}:{addr[1]}"
            with self._session_lock:
                if self._session_thread is not None or self._closed.is_set():
                    self.log(f"{self.slot_id}: refused {peer}: one client at a time")
                    conn.close()
                    continue
                self._session_thread = threading.Thread(
                    target=self._session,
                    args=(conn, peer),
                    name=f"serve-{self.slot_id}-client",
                    daemon=True,
                )
                self._session_thread.start()

    def _session(self, conn: socket.socket, peer: str) -> None:
        info = SessionInfo(peer, [])
        self.sessions.append(info)
        live = None
        try:
            tune_socket(conn)
            try:
                with self._station_lock:
                    live = self.station.open_slot(self.slot_id)
                self.guard(live)
                url = live.board.port.resolve()
                port = serial.serial_for_url(url, do_not_open=True, exclusive=True)
                port.baudrate = live.board.console_baud
                port.timeout = 0.1
                port.write_timeout = 10
                port.dtr = False  # both inactive: a bridge's own auto-reset circuit stays idle
                port.rts = False
                port.open()
            except (SlotBusy, PortNotFound, ServeError, serial.SerialException, OSError) as err:
                self.log(f"{self.slot_id}: refused {peer}: {err}")
                return
            self.log(f"{self.slot_id}: client {peer} connected; slot locked")
            try:
                _Session(self, live, port, conn, info).run()
            finally:
                port.close()
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            if live is not None:
                with self._station_lock:
                    live.close()  # relays released, pins freed, lock dropped
                self.log(f"{self.slot_id}: client {peer} left; relays released, slot unlocked")
            with self._session_lock:
                self._link = None
                self._session_thread = None


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


class _Session:
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
