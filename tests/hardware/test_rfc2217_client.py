"""The rig's RFC 2217 client (rig.hardware.rfc2217_client) against the rig's own RFC 2217 link."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import serial

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


def test_close_ends_the_reader_without_pyserials_reconnect_pause(monkeypatch):
    """pyserial's close sleeps 0.3 s after joining its reader, for servers that cannot take a
    client reconnecting at once; rig serve can (the remote slot reconnects for every flasher
    session), so the rig's client does not pause."""
    with loop_server() as url:
        client = Rfc2217Client(url, timeout=2)
        reader = client._thread
        assert reader is not None and reader.is_alive()
        pauses: list[float] = []
        real_sleep, closing = time.sleep, threading.current_thread()

        def sleep(seconds: float) -> None:
            if threading.current_thread() is closing:
                pauses.append(seconds)
            real_sleep(seconds)

        monkeypatch.setattr(time, "sleep", sleep)
        client.close()
        monkeypatch.undo()
        assert not reader.is_alive() and not client.is_open
        assert pauses == []
