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
client's rate change lands (:class:`~rig.operations.serve.session.ClientSession`).

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

from rig.board.station import LiveSlot, LiveStation
from rig.errors import OperationError
from rig.hardware.locks import SlotBusy
from rig.hardware.ports import PortNotFound
from rig.hardware.rfc2217 import Rfc2217Link, tune_socket
from rig.operations.backups import BackupStore
from rig.operations.safeguards import BackupCheck, ensure_backup
from rig.operations.serve.session import ClientSession
from rig.operations.session import FlasherSession

__all__ = ["ServeError", "SessionInfo", "SlotServer", "is_loopback", "rfc2217_url"]


# How long a new client waits for the last one's session to release the slot (a relay bank,
# a port, a simulated board's 4 MB flash saved) before it is turned away as a second client.
LEAVE_TIMEOUT = 10.0

# How long a new client waits for the connected one's hang-up to arrive before it is turned away
# as a second client. A client that closes and reconnects at once (the rig's remote slot, once
# per flasher session) sends its FIN before its new SYN; on loopback and most links they arrive
# in that order, so the old connection reads as closed at once, and this only covers a FIN
# overtaken on the way.
HANG_UP_GRACE = 0.5


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
    backup store (default: the station's). ``defer_backup``: the start-up check (:meth:`check`)
    identifies the board and applies the policy but leaves a dump the flash needs to the first
    client's connect (see :meth:`check`).
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
        defer_backup: bool = False,
    ) -> None:
        self.station = station
        self.slot_id = slot_id
        self.board_type = station.config.board_of(slot_id)
        self.backup_mode = backup_mode
        self.defer_backup = defer_backup
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
        self._leaving = threading.Event()  # the current session's client has gone
        self._link: Rfc2217Link | None = None
        self._session_thread: threading.Thread | None = None
        self.sessions: collections.deque[SessionInfo] = collections.deque(maxlen=100)
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"serve-{slot_id}", daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def check(self) -> BackupCheck:
        """Fail fast, at start-up: the slot can be locked, its relays opened and its port found,
        and :meth:`guard` vouches for the board (then everything is freed again).

        With ``defer_backup``, a flash that no verified backup holds is not dumped here - the
        first client's connect dumps it (every connect runs :meth:`guard`, which dumps). This is
        for labgrid's exporter, which starts ``rig serve`` on an acquire: labgrid's coordinator
        gives the exporter 10 s to answer an acquire (``ExporterCommand.wait`` in
        labgrid/remote/coordinator.py), while a dump of a 4 MB L7X at 2 Mbaud alone takes
        ~21 s. An identify and a whole-flash MD5 fit; the dump would not. The identity, the
        expected MAC and ``--backup require`` are still checked here, so an acquire is still
        refused with the reason."""
        try:
            with self._station_lock:
                live = self.station.open_slot(self.slot_id)
            try:
                url = live.board.port.resolve()
                if url.startswith("/") and not os.path.exists(url):
                    raise PortNotFound(f"{self.slot_id}: serial port {url} does not exist")
                return self.guard(live, dump=not self.defer_backup)
            finally:
                with self._station_lock:
                    live.close()
        except (SlotBusy, PortNotFound) as err:
            raise ServeError(str(err)) from err

    def guard(self, live: LiveSlot, *, dump: bool = True) -> BackupCheck:
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
                check = ensure_backup(
                    session, self.store, self.backup_mode, self._meta(), dump=dump
                )
                mac = session.identity.mac
        except OperationError as err:  # the link, a refusal, no download mode, the backup
            reason = str(err).removeprefix(f"{self.slot_id}: ")
            raise ServeError(f"{self.slot_id}: not served: {reason}") from err
        finally:
            live.relays.release_all()
        later = ": the first client's connect takes one" if check.deferred else ""
        self.log(f"{self.slot_id}: {mac}: {check.detail}{later} ({time.monotonic() - t0:.1f} s)")
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
            self._await_leaving_session()
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

    def _await_leaving_session(self) -> None:
        """A client that reconnects at once - as the rig's own remote slot does between two
        flasher sessions - waits for the last one to release the slot (relays, port, lock)
        instead of being turned away as a second client: when the last client has hung up,
        whether or not its session has noticed yet (:data:`HANG_UP_GRACE`)."""
        with self._session_lock:
            thread, link = self._session_thread, self._link
        if thread is None:
            return
        if not self._leaving.is_set():
            if link is None:
                return  # its board is still being checked: that client is still waiting
            deadline = time.monotonic() + HANG_UP_GRACE
            while not _hung_up(link.sock):
                if time.monotonic() > deadline:
                    return  # still connected: the new client is a second one
                time.sleep(0.01)
        thread.join(timeout=LEAVE_TIMEOUT)

    def _session(self, conn: socket.socket, peer: str) -> None:
        info = SessionInfo(peer, [])
        self.sessions.append(info)
        self._leaving.clear()
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
                ClientSession(self, live, port, conn, info).run()
            finally:
                port.close()
        finally:
            self._leaving.set()
            with contextlib.suppress(OSError):
                conn.close()
            if live is not None:
                with self._station_lock:
                    live.close()  # relays released, pins freed, lock dropped
                self.log(f"{self.slot_id}: client {peer} left; relays released, slot unlocked")
            with self._session_lock:
                self._link = None
                self._session_thread = None


def _hung_up(sock: socket.socket) -> bool:
    """The client at the other end of ``sock`` has closed it (an end of stream is waiting, or
    the socket is closed already). Peeks: the session's own reader consumes nothing less."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
