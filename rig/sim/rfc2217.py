"""A simulated board's USB-serial bridge as an RFC 2217 endpoint: a transport that carries DTR/RTS.

A pty cannot carry modem lines (esptool gets ENOTTY, fact sheet §3.2), so a simulated devkit on a
pty can only be reset through its contacts. Over RFC 2217 the host's DTR/RTS reach the board:
:meth:`rig.sim.board.SimBoard.set_modem_lines` feeds them through the devkit's two-transistor
auto-reset circuit, so stock esptool's ``--before default-reset`` and ``--after hard-reset`` work
as on a real devkit; an l7x ignores them, as its CH330 has no DTR/RTS.

The endpoint fronts the board's pty: for each client it opens the pty like any host would
(baud changes land in the pty's termios, where the board's UART sees them), runs pyserial's
server-side :class:`serial.rfc2217.PortManager` on the socket, and acknowledges every line change
at once, as a USB bridge does. When the client leaves, DTR and RTS drop (a tty closing with
HUPCL) and the pty is closed, so the board's ``on_close`` policy applies as on the pty transport.
One client at a time; a second one is refused. Loopback only by default.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import serial
from serial.rfc2217 import IAC, M_NORMAL, PortManager

from .board import SimBoard

__all__ = ["Rfc2217Endpoint"]


class _Lines:
    """The pty as PortManager sees it: DTR/RTS go to the board, not to the (line-less) pty."""

    def __init__(self, port: serial.Serial, endpoint: Rfc2217Endpoint) -> None:
        self.__dict__.update(_port=port, _endpoint=endpoint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("dtr", "rts"):
            self._endpoint._set_line(name, bool(value))
        else:
            setattr(self._port, name, value)

    # A devkit's bridge has CTS/DSR/RI/CD inputs, but nothing drives them.
    cts = dsr = ri = cd = False


class Rfc2217Endpoint:
    """Serve ``board`` on ``rfc2217://host:port`` (``port=0``: any free one) until :meth:`close`."""

    def __init__(self, board: SimBoard, host: str = "127.0.0.1", port: int = 0) -> None:
        self.board = board
        self._listener = socket.create_server((host, port))
        self.host = host
        self.port = self._listener.getsockname()[1]
        self.clients = 0  # connections served so far
        self._lines = (False, False)  # the current client's (DTR, RTS)
        self._conn: socket.socket | None = None
        self._client: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"{board.name}-rfc2217", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"rfc2217://{self.host}:{self.port}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not)
        with contextlib.suppress(OSError):
            self._listener.close()
        conn, client = self._conn, self._client
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        if client is not None:
            client.join(timeout=5)  # lines dropped and pty closed before the board goes

    def __enter__(self) -> Rfc2217Endpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one client at a time -------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._conn is not None:
                conn.close()  # one client at a time, like a serial port
                continue
            self._conn = conn
            self._client = threading.Thread(
                target=self._serve,
                args=(conn,),
                name=f"{self.board.name}-rfc2217-client",
                daemon=True,
            )
            self._client.start()

    def _serve(self, conn: socket.socket) -> None:
        self.clients += 1
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pty = serial.Serial(self.board.port, baudrate=115200, timeout=0.05)
        self._lines = (False, False)
        alive = threading.Event()
        alive.set()

        def send(data: bytes) -> None:
            with self._send_lock:
                conn.sendall(data)

        manager = PortManager(_Lines(pty, self), _Connection(send))

        def chip_to_host() -> None:
            while alive.is_set():
                try:
                    data = pty.read(pty.in_waiting or 1)
                    if data:
                        send(data.replace(IAC, IAC + IAC))
                except (OSError, serial.SerialException):
                    break
            alive.clear()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

        reader = threading.Thread(target=chip_to_host, daemon=True)
        reader.start()
        try:
            while alive.is_set():
                data = conn.recv(65536)
                if not data:
                    break
                if IAC not in data and manager.suboption is None and manager.mode == M_NORMAL:
                    pty.write(data)
                else:
                    payload = b"".join(manager.filter(data))
                    if payload:
                        pty.write(payload)
        except OSError:
            pass
        finally:
            alive.clear()
            reader.join(timeout=2)
            self._set_lines(False, False)  # the host closed its tty: DTR and RTS drop
            pty.close()
            with contextlib.suppress(OSError):
                conn.close()
            self._conn = None

    def _set_line(self, name: str, value: bool) -> None:
        dtr, rts = self._lines
        self._set_lines(value if name == "dtr" else dtr, value if name == "rts" else rts)

    def _set_lines(self, dtr: bool, rts: bool) -> None:
        self._lines = (dtr, rts)
        self.board.set_modem_lines(dtr, rts)


class _Connection:
    def __init__(self, send) -> None:
        self.write = send
