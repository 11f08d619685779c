"""The one RFC 2217 link (rig.hardware.rfc2217), shared by `rig serve` and the simulator's
endpoint: a client that leaves at any moment ends the link, never the thread serving it."""

from __future__ import annotations

import socket
import threading

import serial

from rig.hardware.rfc2217 import Rfc2217Link


def test_a_client_gone_before_the_telnet_negotiation_ends_the_link_quietly():
    """`rig serve` vouches for the board before it speaks to a new client; a client that gave up
    meanwhile left a closed socket, and the link's first option write got EPIPE: an unhandled
    exception in the session thread (seen as PytestUnhandledThreadExceptionWarning in the suite)."""
    ours, theirs = socket.socketpair()
    theirs.close()
    port = serial.serial_for_url("loop://", timeout=0.05)
    try:
        link = Rfc2217Link(ours, port, lambda name, value: None, name="gone")
        assert not link.alive
        done = threading.Thread(target=link.run)
        done.start()
        done.join(5)
        assert not done.is_alive()
    finally:
        port.close()
        ours.close()
