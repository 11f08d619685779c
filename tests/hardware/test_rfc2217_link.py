"""The one RFC 2217 link (rig.hardware.rfc2217), shared by `rig serve` and the simulator's
endpoint: a client that leaves at any moment ends the link, never the thread serving it."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import serial
from serial.rfc2217 import (
    COM_PORT_OPTION,
    IAC,
    PURGE_DATA,
    PURGE_RECEIVE_BUFFER,
    SB,
    SE,
    SERVER_PURGE_DATA,
)

from rig.hardware.rfc2217 import Rfc2217Link

PURGES = 2000  # the race hit ~1 purge in 300 on a loaded 2-core machine


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


@dataclass
class PtyLink:
    """A link serving a pty's slave (a board's UART behind a USB bridge) to ``client``."""

    master: int
    link: Rfc2217Link
    client: socket.socket
    served: threading.Thread


@contextlib.contextmanager
def pty_link(name: str) -> Iterator[PtyLink]:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), baudrate=115200, timeout=0.05)
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    link = Rfc2217Link(ours, port, lambda name, value: None, name=name)
    served = threading.Thread(target=link.run)
    served.start()
    try:
        yield PtyLink(master, link, theirs, served)
    finally:
        link.stop()
        served.join(5)
        port.close()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        ours.close()
        theirs.close()


def test_a_purge_racing_the_ports_reader_keeps_the_link():
    """esptool purges the input before every sync; pyserial's read then met the flush between
    select() and read() on the tty ("device reports readiness to read but returned no data",
    which it also says for an unplugged device) and the link hung up on a client it was serving:
    stock esptool failed with "timeout while waiting for option 'purge'" under load (1 in ~80
    connects). Here a board chatters on a pty while the client purges again and again."""
    purge = IAC + SB + COM_PORT_OPTION + PURGE_DATA + PURGE_RECEIVE_BUFFER + IAC + SE
    ack = IAC + SB + COM_PORT_OPTION + SERVER_PURGE_DATA + PURGE_RECEIVE_BUFFER + IAC + SE
    chatter = threading.Event()
    with pty_link("purge") as pl:

        def board() -> None:
            while not chatter.is_set():
                os.write(pl.master, b"ets Jun  8 2016 00:22:57\r\n")
                time.sleep(0.0005)

        talker = threading.Thread(target=board)
        talker.start()
        stream = b""
        try:
            for sent in range(PURGES):
                try:
                    pl.client.sendall(purge)
                except OSError as err:
                    raise AssertionError(f"the link hung up after {sent} purges: {err}") from None
                while ack not in stream:
                    data = pl.client.recv(65536)
                    assert data, f"the link hung up after {sent} purges"
                    stream = stream[-len(ack) :] + data
                stream = stream.split(ack, 1)[1]
            assert pl.link.alive
        finally:
            chatter.set()
            talker.join()


def test_a_port_that_goes_away_still_ends_the_link():
    """The purge allowance must not hide an unplugged adapter: the pty's other side closes (as a
    USB-serial device vanishes), reads fail, and the link hangs up on its client."""
    with pty_link("unplug") as pl:
        os.close(pl.master)
        pl.served.join(5)
        assert not pl.served.is_alive() and not pl.link.alive
        while pl.client.recv(65536):  # the telnet negotiation, then the hang-up (or a timeout)
            pass
