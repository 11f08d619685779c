"""The simulated board's USB-serial bridge: a pseudo-terminal whose slave path is the port.

The chip side holds the pty master. The slave is put in raw mode at once (otherwise the line
discipline would echo the boot banner back into the chip and rewrite CR/LF before a host opens
the port); termios settings and unread data survive the host closing and reopening the slave, so
esptool can run one process after another (fact sheet §10).

Transmit runs on its own thread so that a slow or absent reader never blocks the chip, and so that
a baud change is applied exactly after the bytes queued before it ("reply at the old rate, then
switch", §2 CHANGE_BAUDRATE). With ``pacing`` on, both directions are limited to baud/10 bytes
per second at the chip's current rate (8N1: 10 bit times per byte).
"""

from __future__ import annotations

import collections
import errno
import os
import pty
import random
import select
import termios
import threading
import time
import tty
from collections.abc import Callable

_BAUD_MARK = object()
CHUNK = 4096  # unpaced reads and writes
PACED_CHUNK = 512  # paced transmit granularity: 5.6 ms at 921600, 2.6 ms at 2 Mbaud


class LineRate:
    """Paces a byte stream at baud/10 bytes per second, starting when the line goes idle.

    The schedule is absolute: a sleep that overshoots by scheduler jitter is made up on the next
    chunk instead of accumulating, so a busy line runs at the full rate, as a UART's shift
    register does. Only a real idle gap (longer than ``IDLE``) restarts the clock.
    """

    IDLE = 0.005

    def __init__(self, sleep=time.sleep, clock=time.monotonic) -> None:
        self._sleep = sleep
        self._clock = clock
        self._free_at = 0.0

    def reset(self) -> None:
        self._free_at = 0.0

    def wait(self, nbytes: int, baud: int) -> None:
        now = self._clock()
        start = self._free_at if now - self._free_at < self.IDLE else now
        self._free_at = start + nbytes * 10 / baud
        if self._free_at > now:
            self._sleep(self._free_at - now)


class PtyUart:
    """A pty pair; the slave's path is what a host (esptool, pyserial) opens."""

    def __init__(
        self,
        on_receive: Callable[[bytes], None],
        *,
        on_host_close: Callable[[], None] | None = None,
        pacing: bool = False,
        baud: int = 115200,
        name: str = "sim",
        max_baud: int | None = None,
    ) -> None:
        self._on_receive = on_receive
        self._on_host_close = on_host_close
        self.pacing = pacing
        self.baud = baud  # the chip's UART rate (what pacing uses)
        # The USB bridge's fastest rate (the CH330 does 2 Mbaud at most). Above it the bridge's
        # divisor lands on another rate, so the line runs off the rate the host asked for.
        self.max_baud = max_baud
        # The ESP32 ROM loader measures the host's rate on the SYNC preamble (0x55 pattern) and
        # follows it; the stub and a firmware run at a fixed rate. The chip sets this flag.
        self.autobaud = False
        self._noise = random.Random(0x5EED)
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(slave)
        os.close(slave)  # the host opens the slave; holding it here would hide its closes
        os.set_blocking(self._master, False)
        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._generation = 0
        self._closed = False
        self._tx_rate = LineRate()
        self._rx_rate = LineRate()
        self.host_open = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._threads = [
            threading.Thread(target=self._rx_loop, name=f"{name}-rx", daemon=True),
            threading.Thread(target=self._tx_loop, name=f"{name}-tx", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- chip side API ------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not data:
            return
        with self._cv:
            self._queue.append(data)
            self._cv.notify()

    def set_baud(self, baud: int) -> None:
        """Switch the chip's rate once everything queued so far has been transmitted."""
        with self._cv:
            self._queue.append((_BAUD_MARK, baud))
            self._cv.notify()

    def reset_baud(self, baud: int) -> None:
        """Immediate rate change (chip reset): queued output is dropped first."""
        self.drop_pending()
        self.baud = baud

    def drop_pending(self) -> None:
        """Forget output not yet handed to the pty: the chip stopped (reset, power loss)."""
        with self._cv:
            self._queue.clear()
            self._generation += 1
            self._cv.notify()

    def wait_sent(self, timeout: float = 5.0) -> bool:
        """Block until the transmit queue is empty (the host may not have read it yet)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def host_baud(self) -> int | None:
        """The rate the host set on its end (Linux shows the slave's termios on the master)."""
        try:
            speed = termios.tcgetattr(self._master)[5]
        except termios.error:
            return None
        return _SPEED_TO_BAUD.get(speed)

    def close(self) -> None:
        self._closed = True
        with self._cv:
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        try:
            os.close(self._master)
        except OSError:
            pass

    # -- threads ------------------------------------------------------------------------------
    def _rx_loop(self) -> None:
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        while not self._closed:
            events = poller.poll(50)
            hup = any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events)
            readable = any(ev & select.POLLIN for _, ev in events)
            if readable:
                try:
                    data = os.read(self._master, CHUNK)
                except BlockingIOError:
                    data = b""
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    self.host_open = True
                    self.bytes_in += len(data)
                    data = self._through_line(data, receiving=True)
                    if self.pacing:
                        self._rx_rate.wait(len(data), self.baud)
                    if data:
                        self._on_receive(data)
                    continue
            if hup:
                if self.host_open:
                    self.host_open = False
                    if self._on_host_close is not None:
                        self._on_host_close()
                time.sleep(0.01)  # nobody holds the slave: back off instead of spinning
            elif not events:
                self.host_open = True  # no hang-up reported: a host holds the slave

    def _tx_loop(self) -> None:
        while not self._closed:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.notify_all()  # wake wait_sent()
                    self._cv.wait(0.5)
                if self._closed:
                    return
                item = self._queue.popleft()
                generation = self._generation
            if isinstance(item, tuple):
                self.baud = item[1]
                continue
            view = memoryview(item)
            while view and not self._closed:
                with self._cv:
                    if generation != self._generation:
                        break  # dropped by a reset while being sent
                chunk = view[: PACED_CHUNK if self.pacing else CHUNK]
                if self.pacing:
                    self._tx_rate.wait(len(chunk), self.baud)
                wire = self._through_line(bytes(chunk), receiving=False)
                self._write(memoryview(wire))
                view = view[len(chunk) :]
            with self._cv:
                if not self._queue:
                    self._cv.notify_all()

    def _through_line(self, data: bytes, receiving: bool) -> bytes:
        """What the other end samples: the bytes themselves only if both ends agree on the rate.

        A UART tolerates a few percent of rate error; beyond that the receiver samples the
        wrong bit cells and delivers garbage (a different number of wrong bytes), which is how
        a failed baud switch shows on real hardware.
        """
        host = self.host_baud()
        if host is not None and self.max_baud is not None and host > self.max_baud:
            host = host * 3 // 4  # the nearest divisor the bridge has: a different rate
        if host is None or abs(host - self.baud) <= 0.03 * self.baud:
            return data
        if receiving and self.autobaud:
            self.baud = host  # the ROM locks onto the host's rate
            return data
        sender, sampler = (host, self.baud) if receiving else (self.baud, host)
        return self._noise.randbytes(max(1, round(len(data) * sampler / sender)))

    def _write(self, chunk: memoryview) -> int:
        while not self._closed:
            try:
                n = os.write(self._master, chunk)
                self.bytes_out += n
                return n
            except BlockingIOError:
                if not self.host_open:
                    return len(chunk)  # nobody reads the port: the bridge drops what it can't send
                select.select([], [self._master], [], 0.05)
            except OSError as err:
                if err.errno != errno.EIO:
                    raise
                time.sleep(0.01)
        return len(chunk)


_SPEED_TO_BAUD = {
    getattr(termios, f"B{b}"): b
    for b in (
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        500000,
        576000,
        921600,
        1000000,
        1152000,
        1500000,
        2000000,
        2500000,
        3000000,
    )
    if hasattr(termios, f"B{b}")
}
