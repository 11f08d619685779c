"""pyserial's RFC 2217 client with a reader that moves bytes in chunks, for the rig's own remote
slots (:mod:`rig.board.remote`).

pyserial's client (``serial.rfc2217.Serial``; the same in pyserial-labgrid) runs every received
byte through its telnet state machine in Python and queues it as an item of its own: reading a
4 MB flash over ``rig serve`` cost 14 CPU-seconds in the client (18 s wall on loopback, against
1.7 s for the same read on a local port), far above the wire time of a real board at 2 Mbaud.
:class:`Rfc2217Client` keeps the protocol as it is - option negotiation, SET_CONTROL
acknowledgements, purges, the telnet states - and changes how data is stored: a chunk without
an IAC byte, received while no command or subnegotiation is pending, goes into one byte buffer
at once; ``read``/``in_waiting`` work on that buffer. Chunks with IAC go through the same
per-byte states as pyserial's loop (RFC 854: IAC IAC is a data 0xFF; IAC SB ... IAC SE a
subnegotiation; IAC DO/DONT/WILL/WONT an option).

It also waits for the server's answers (a purge, a line change - acknowledged once its relay
sequence has played -, new port settings) on a condition the reader notifies, where pyserial
sleeps in 50 ms steps (19 such waits cost 1.35 s per flasher connect), and its read timeout is
local, as in pyserial-labgrid: the path behaves the same whichever ``serial`` package won
(:mod:`rig.labgrid.serialpkg`).
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Callable

from serial import SerialException
from serial.rfc2217 import (
    DO,
    DONT,
    IAC,
    M_IAC_SEEN,
    M_NEGOTIATE,
    M_NORMAL,
    RFC2217_PARITY_MAP,
    RFC2217_STOPBIT_MAP,
    SB,
    SE,
    SET_CONTROL_USE_HW_FLOW_CONTROL,
    SET_CONTROL_USE_NO_FLOW_CONTROL,
    SET_CONTROL_USE_SW_FLOW_CONTROL,
    WILL,
    WONT,
)
from serial.rfc2217 import Serial as _Rfc2217Serial
from serial.serialutil import PortNotOpenError, iterbytes

__all__ = ["Rfc2217Client"]


class _Bytes:
    """What pyserial's client calls its read queue, as one byte buffer: ``put`` a chunk (None:
    the connection is gone), ``qsize`` the bytes waiting, ``take`` up to ``size`` of them."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._closed = False
        self._ready = threading.Condition()

    def put(self, chunk: bytes | None) -> None:
        with self._ready:
            if chunk is None:
                self._closed = True
            else:
                self._data += chunk
            self._ready.notify_all()

    def qsize(self) -> int:
        return len(self._data)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Everything waiting (pyserial's ``reset_input_buffer`` empties the queue with it)."""
        data = self.take(len(self._data) or 1, timeout if block else 0)
        if not data:
            raise queue.Empty
        return data

    def take(self, size: int, timeout: float | None) -> bytes | None:
        """Up to ``size`` bytes once at least one is there, b"" on timeout, None once closed
        and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._data:
                if self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return b""
                self._ready.wait(left)
            data = bytes(self._data[:size])
            del self._data[:size]
            return data


class Rfc2217Client(_Rfc2217Serial):
    """``serial.rfc2217.Serial`` with a chunked read path and answer waits that wake on the
    answer (see the module doc)."""

    def __init__(self, *args, **kwargs) -> None:
        self._answers = threading.Condition()  # notified whenever the server answered something
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        """pyserial's, without the 0.3 s it sleeps after joining its reader "in case of quick
        reconnects": ``rig serve`` lets a client that reconnects at once wait for the last one's
        release (its ``_await_leaving_session``), and the rig's remote slot closes and reopens
        its connection for every flasher session."""
        reader, self._thread = self._thread, None  # pyserial sleeps only when it joins a reader
        super().close()  # shuts the socket down: the reader ends
        if reader is not None:
            reader.join(7)

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        """The read timeout is the client's own: unlike pyserial 3.5 (whose setter renegotiates
        every port setting with the server, waiting for each answer - esptool sets it twice per
        command), nothing goes over the wire; pyserial-labgrid does the same."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"Not a valid timeout: {timeout!r}")
        self._timeout = timeout

    # -- waiting for the server's answers -------------------------------------------------------
    def _await(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._answers:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SerialException(f"timeout while waiting for {what}")
                self._answers.wait(min(left, 0.05))

    def _await_option(self, option, timeout: float) -> None:
        """The acknowledgement of a purge or a line change."""
        self._await(option.is_ready, timeout, f"option {option.name!r}")

    # pyserial's two senders that wait for an acknowledgement (``TelnetSubnegotiation.wait``
    # sleeps 50 ms before it first looks), here waiting on the answer. ``open`` sends five of
    # them (flow control, DTR, RTS, two purges) - 0.25 s per connect in 50 ms sleeps.
    def rfc2217_send_purge(self, value: bytes) -> None:
        item = self._rfc2217_options["purge"]
        item.set(value)
        self._await_option(item, self._network_timeout)

    def rfc2217_set_control(self, value: bytes) -> None:
        item = self._rfc2217_options["control"]
        item.set(value)
        if self._ignore_set_control_answer:  # pyserial's mode for servers that do not answer
            time.sleep(0.1)
        else:
            self._await_option(item, self._network_timeout)

    def _telnet_process_subnegotiation(self, suboption: bytes) -> None:
        super()._telnet_process_subnegotiation(suboption)
        with self._answers:
            self._answers.notify_all()

    def _telnet_negotiate_option(self, command: bytes, option: bytes) -> None:
        super()._telnet_negotiate_option(command, option)
        with self._answers:
            self._answers.notify_all()

    def _reconfigure_port(self) -> None:
        """pyserial's, waiting on the answers rather than in 50 ms sleeps (esptool changes the
        baud rate twice per session; pyserial-labgrid skips unchanged values, so does this)."""
        if self._socket is None:
            raise SerialException("Can only operate on open ports")
        if self._write_timeout is not None:
            raise NotImplementedError("write_timeout is currently not supported")
        if not 0 < self._baudrate < 2**32:
            raise ValueError(f"invalid baudrate: {self._baudrate!r}")
        settings = self._rfc2217_port_settings
        settings["baudrate"].set(struct.pack(b"!I", self._baudrate))
        settings["datasize"].set(struct.pack(b"!B", self._bytesize))
        settings["parity"].set(struct.pack(b"!B", RFC2217_PARITY_MAP[self._parity]))
        settings["stopsize"].set(struct.pack(b"!B", RFC2217_STOPBIT_MAP[self._stopbits]))
        items = list(settings.values())
        self._await(lambda: all(o.active for o in items), self._network_timeout, "port settings")
        if self._rtscts and self._xonxoff:
            raise ValueError("xonxoff and rtscts together are not supported")
        if self._rtscts:
            self.rfc2217_set_control(SET_CONTROL_USE_HW_FLOW_CONTROL)
        elif self._xonxoff:
            self.rfc2217_set_control(SET_CONTROL_USE_SW_FLOW_CONTROL)
        else:
            self.rfc2217_set_control(SET_CONTROL_USE_NO_FLOW_CONTROL)

    @property
    def _read_buffer(self) -> _Bytes | None:
        return self.__dict__.get("_bytes")

    @_read_buffer.setter
    def _read_buffer(self, value) -> None:  # pyserial sets a Queue on open, None on close
        self.__dict__["_bytes"] = None if value is None else _Bytes()

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return self._read_buffer.qsize()

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytearray()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while len(data) < size:
            reader_gone = self._thread is None or not self._thread.is_alive()
            if reader_gone and not self._read_buffer.qsize():
                raise SerialException("connection failed (reader thread died)")
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            chunk = self._read_buffer.take(size - len(data), left)
            if not chunk:  # timeout (b"") or connection gone (None)
                break
            data += chunk
        return bytes(data)

    def _telnet_read_loop(self) -> None:
        """pyserial's loop (same states and calls), with the data fast path."""
        mode = M_NORMAL
        suboption = None
        telnet_command = None
        buffer = self._read_buffer
        while self.is_open:
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                buffer.put(None)
                break
            if not data:
                buffer.put(None)
                break
            if mode == M_NORMAL and suboption is None and IAC not in data:
                buffer.put(data)
                continue
            plain = bytearray()
            for byte in iterbytes(data):
                if mode == M_NORMAL:
                    if byte == IAC:
                        mode = M_IAC_SEEN
                    elif suboption is not None:
                        suboption += byte
                    else:
                        plain += byte
                elif mode == M_IAC_SEEN:
                    mode = M_NORMAL
                    if byte == IAC:
                        if suboption is not None:
                            suboption += IAC
                        else:
                            plain += IAC
                    elif byte == SB:
                        suboption = bytearray()
                    elif byte == SE:
                        buffer.put(bytes(plain))
                        plain.clear()
                        self._telnet_process_subnegotiation(bytes(suboption))
                        suboption = None
                    elif byte in (DO, DONT, WILL, WONT):
                        telnet_command = byte
                        mode = M_NEGOTIATE
                    else:
                        self._telnet_process_command(byte)
                elif mode == M_NEGOTIATE:
                    self._telnet_negotiate_option(telnet_command, byte)
                    mode = M_NORMAL
            if plain:
                buffer.put(bytes(plain))
