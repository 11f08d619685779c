"""The rig's RFC 2217 client (rig.hardware.rfc2217_client) against the rig's own RFC 2217 link."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import serial
from serial.rfc2217 import TelnetSubnegotiation

from rig.hardware.rfc2217 import Rfc2217Link
from rig.hardware.rfc2217_client import Rfc2217Client

# pyserial 3.5's RFC 2217 client (the base class) calls Thread.setDaemon/setName.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")


@contextlib.contextmanager
def loop_server() -> Iterator[str]:
    """An RFC 2217 server for one client, in front of pyserial's ``loop://`` (what the client
    writes comes back); yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = serial.serial_for_url("loop://", timeout=0.05)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                Rfc2217Link(conn, port, lambda name, value: None, name="loop").run()

    server = threading.Thread(target=serve)
    server.start()
    try:
        yield f"rfc2217://127.0.0.1:{listener.getsockname()[1]}?timeout=5"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        server.join(5)
        port.close()


def test_bytes_and_0xff_cross_the_connection_both_ways():
    with loop_server() as url:
        client = Rfc2217Client(url, timeout=2)
        try:
            payload = bytes(range(256)) * 4  # 0xFF travels as telnet's IAC IAC
            client.write(payload)
            assert client.read(len(payload)) == payload
        finally:
            client.close()


@contextlib.contextmanager
def sleeps_of_this_thread() -> Iterator[list[float]]:
    """Every ``time.sleep`` the calling thread makes meanwhile (others are let through)."""
    pauses: list[float] = []
    real_sleep, caller = time.sleep, threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is caller:
            pauses.append(seconds)
        real_sleep(seconds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "sleep", sleep)
        yield pauses


def test_acknowledgements_are_awaited_on_the_answer_not_in_50_ms_sleeps(monkeypatch):
    """pyserial's ``TelnetSubnegotiation.wait`` sleeps 50 ms before it first looks for the
    server's acknowledgement: open() sends five (flow control, DTR, RTS, two purges), so a
    connect paid 0.25 s for them, and every reset of a remote slot is line changes."""
    sleeping_waits: list[str] = []
    pyserial_wait = TelnetSubnegotiation.wait

    def wait(option, timeout):
        sleeping_waits.append(option.name)
        return pyserial_wait(option, timeout)

    monkeypatch.setattr(TelnetSubnegotiation, "wait", wait)
    with loop_server() as url:
        client = Rfc2217Client(url, timeout=2)
        try:
            client.dtr = True
            client.rts = True
            client.reset_input_buffer()
            assert client._rfc2217_options["control"].is_ready()
            assert client._rfc2217_options["purge"].is_ready()
        finally:
            client.close()
    assert sleeping_waits == []


def test_close_ends_the_reader_without_pyserials_reconnect_pause():
    """pyserial's close sleeps 0.3 s after joining its reader, for servers that cannot take a
    client reconnecting at once; rig serve can (the remote slot reconnects for every flasher
    session), so the rig's client does not pause."""
    with loop_server() as url:
        client = Rfc2217Client(url, timeout=2)
        reader = client._thread
        assert reader is not None and reader.is_alive()
        with sleeps_of_this_thread() as pauses:
            client.close()
        assert not reader.is_alive() and not client.is_open
        assert pauses == []
