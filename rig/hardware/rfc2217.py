"""One RFC 2217 link: a client socket <-> a serial port, through pyserial's server-side
:class:`serial.rfc2217.PortManager`, with the client's DTR/RTS handed to a hook.

Two front ends serve a serial port over RFC 2217, and both must keep the client's modem lines away
from the wire: ``rig serve`` (:mod:`rig.operations.serve`) turns them into relay sequences for a
board without DTR/RTS, and a simulated devkit's bridge (:mod:`rig.sim.rfc2217`) feeds them through
its auto-reset circuit (a pty cannot carry them: fact sheet §3.2). Everything else - baud, data
size, parity, stop bits, purges, the bytes - passes through to the port.

PortManager acknowledges a SET_CONTROL only after the attribute assignment returns, so a hook that
runs a relay sequence delays the client until the board is ready.

A client's purge flushes the tty's input while the link's reader may sit between select() and
read(): the read then returns nothing, which pyserial reports as it reports an unplugged device
("device reports readiness to read but returned no data"). esptool purges before every sync, so
hanging up on that dropped about one stock-esptool connect in 80 under load ("timeout while
waiting for option 'purge'" on the client). The link counts purges and reads again after a read
that a purge overlapped; a port that is really gone fails the next read too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import serial
from serial.rfc2217 import IAC, M_NORMAL, PortManager

__all__ = ["LineHook", "PortLines", "Rfc2217Link", "tune_socket"]

LineHook = Callable[[str, bool], None]  # ("dtr" | "rts", asserted)


class PortLines:
    """The serial port as PortManager sees it, except that DTR/RTS go to ``on_line`` instead of
    the wire. Modem status inputs read as inactive where the port has none (a pty answers
    ENOTTY; a devkit's bridge has CTS/DSR/RI/CD inputs, but nothing drives them)."""

    def __init__(self, port: serial.SerialBase, on_line: LineHook) -> None:
        self.__dict__.update(_port=port, _on_line=on_line, purges_started=0, purges_done=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("dtr", "rts"):
            self._on_line(name, bool(value))
        else:
            setattr(self._port, name, value)

    def reset_input_buffer(self) -> None:
        """A client's purge, counted before and after (see :meth:`Rfc2217Link._port_to_client`)."""
        self.__dict__["purges_started"] += 1
        try:
            self._port.reset_input_buffer()
        finally:
            self.__dict__["purges_done"] += 1

    def _status(self, name: str) -> bool:
        try:
            return bool(getattr(self._port, name))
        except (OSError, serial.SerialException):
            return False

    cts = property(lambda self: self._status("cts"))
    dsr = property(lambda self: self._status("dsr"))
    ri = property(lambda self: self._status("ri"))
    cd = property(lambda self: self._status("cd"))


class Rfc2217Link:
    """Bytes between a client socket and a serial port through a PortManager (telnet/RFC 2217);
    the client's DTR/RTS go to ``on_line``. :meth:`run` copies both ways until the client leaves
    or :meth:`stop` is called; the caller closes the port and the socket afterwards."""

    def __init__(
        self, sock: socket.socket, port: serial.SerialBase, on_line: LineHook, *, name: str
    ) -> None:
        self.sock = sock
        self.port = port
        self._send_lock = threading.Lock()
        self.alive = True
        self._lines = PortLines(port, on_line)
        self.manager = PortManager(self._lines, self)
        self._reader = threading.Thread(target=self._port_to_client, name=f"{name}-rx", daemon=True)

    def write(self, data: bytes) -> None:  # PortManager's connection interface
        """To the client. A client that has gone (EPIPE, ECONNRESET: it may leave at any moment,
        even before the telnet negotiation that PortManager starts in ``__init__``) ends the
        link instead of raising in the thread that serves it."""
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                self.stop()

    def run(self) -> None:
        """Copy both ways until the client leaves (or :meth:`stop`)."""
        self._reader.start()
        manager = self.manager
        try:
            while self.alive:
                data = self.sock.recv(65536)
                if not data:
                    break
                if IAC not in data and manager.suboption is None and manager.mode == M_NORMAL:
                    payload = data  # fast path: plain data, the telnet filter is idle
                else:
                    payload = b"".join(manager.filter(data))
                if payload:
                    self.port.write(payload)
        except OSError:
            pass  # reset by peer, or the socket was shut down by stop()
        finally:
            self.alive = False
            self._reader.join(timeout=2)

    def stop(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _port_to_client(self) -> None:
        lines = self._lines
        while self.alive:
            purged = lines.purges_done
            try:
                data = self.port.read(self.port.in_waiting or 1)
                if data:
                    self.write(data.replace(IAC, IAC + IAC))
            except (OSError, serial.SerialException):
                if lines.purges_started != purged:
                    continue  # a purge emptied the tty under this read: the port is still there
                self.alive = False
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)


def tune_socket(conn: socket.socket, *, keepalive: bool = True) -> None:
    """No Nagle delay (a SYNC is a small packet that waits for its answer); with ``keepalive``,
    a client whose laptop sleeps or loses its network does not hold the port forever."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not keepalive:
        return
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
