"""A simulated board's USB-serial bridge as an RFC 2217 endpoint: a transport that carries DTR/RTS.

A pty cannot carry modem lines (esptool gets ENOTTY, fact sheet §3.2), so a simulated devkit on a
pty can only be reset through its contacts. Over RFC 2217 the host's DTR/RTS reach the board:
:meth:`rig.sim.board.SimBoard.set_modem_lines` feeds them through the devkit's two-transistor
auto-reset circuit, so stock esptool's ``--before default-reset`` and ``--after hard-reset`` work
as on a real devkit; an l7x ignores them, as its CH330 has no DTR/RTS.

The endpoint fronts the board's pty: for each client it opens the pty like any host would
(baud changes land in the pty's termios, where the board's UART sees them) and runs the rig's own
RFC 2217 link on the socket (:class:`rig.hardware.rfc2217.Rfc2217Link`, the one ``rig serve``
runs), with the client's DTR/RTS handed to the board, which takes each change at once, as a USB
bridge does. When the client leaves, DTR and RTS drop (a tty closing with HUPCL) and the pty is
closed, so the board's ``on_close`` policy applies as on the pty transport. One client at a time;
a second one is refused. Loopback only by default.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import serial

from rig.hardware.rfc2217 import Rfc2217Link, tune_socket

from .board import SimBoard

__all__ = ["Rfc2217Endpoint"]


class Rfc2217Endpoint:
    """Serve ``board`` on ``rfc2217://host:port`` (``port=0``: any free one) until :meth:`close`."""

    def __init__(self, board: SimBoard, host: str = "127.0.0.1", port: int = 0) -> None:
        self.board = board
        self._listener = socket.create_server((host, port))
        self.host = host
        self.port = self._listener.getsockname()[1]
        self.clients = 0  # connections served so far
        self._conn: socket.socket | None = None
        self._client: threading.Thread | None = None
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
                conn.shutdown(socket.SHUT_RDWR)  # ends the client's link
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
        tune_socket(conn, keepalive=False)  # a local client that dies is closed by its kernel
        try:
            pty = serial.Serial(self.board.port, baudrate=115200, timeout=0.05)
        except serial.SerialException:  # unplugged: no pty to front, the client is turned away
            self._hang_up(conn)
            return
        try:
            Rfc2217Link(conn, pty, self._set_line, name=f"{self.board.name}-rfc2217").run()
        finally:
            self.board.set_modem_lines(False, False)  # the host closed its tty: DTR and RTS drop
            pty.close()
            self._hang_up(conn)

    def _hang_up(self, conn: socket.socket) -> None:
        # free the endpoint before the client can see the hang-up: a client that connects again
        # as soon as its socket closes must not be turned away as a second client
        self._conn = None
        with contextlib.suppress(OSError):
            conn.close()

    def _set_line(self, name: str, asserted: bool) -> None:
        """One of the client's lines changed: the board gets both, as its bridge drives them."""
        dtr, rts = self.board.modem_lines
        if name == "dtr":
            dtr = asserted
        else:
            rts = asserted
        self.board.set_modem_lines(dtr, rts)
