"""The simulated board's USB-serial bridge: a pseudo-terminal whose slave path is the port.

The chip side holds the pty master. The slave is put in raw mode at once (otherwise the line
discipline would echo the boot banner back into the chip and rewrite CR/LF before a host opens
the port); termios settings and unread data survive the host closing and reopening the slave, so
esptool can run one process after another (fact sheet §10).

Transmit runs on its own thread so that a slow or absent reader never blocks the chip, and so that
a baud change is applied exactly after the bytes queued before it ("reply at the old rate, then
switch", §2 CHANGE_BAUDRATE). With ``pacing`` on, both directions are limited to baud/10 bytes
per second at the chip's current rate (:class:`~rig.sim.transport.line.LineRate`).

Fault injection (:mod:`rig.sim.faults`) hooks in here: a *tap* sees every chunk crossing the
bridge and returns what arrives, with actions between the bytes (:meth:`PtyUart.silence` for a
stall, :meth:`PtyUart.unplug` for a bumped USB cable). An unplugged bridge's pty vanishes (an open
host handle gets I/O errors) and :meth:`PtyUart.replug` brings it back under a new path; the
optional ``alias`` is a symlink that always names the current pty, as ``/dev/serial/by-id`` does
for a real bridge, and is absent while the bridge is unplugged.
"""

from __future__ import annotations

import collections
import contextlib
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
from pathlib import Path

from .line import SPEED_TO_BAUD, LineRate, bridge_rate, garbled, rates_agree

_BAUD_MARK = object()
CHUNK = 4096  # unpaced reads and writes
PACED_CHUNK = 512  # paced transmit granularity: 5.6 ms at 921600, 2.6 ms at 2 Mbaud


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
        alias: str | os.PathLike | None = None,
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
        # Fault injection: tap(data, to_chip) -> [bytes | action, ...] (rig.sim.faults).
        self.tap: Callable[[bytes, bool], list] | None = None
        self._io = threading.RLock()  # guards the master fd against an unplug swapping it
        self._master, self.path = self._open_pty()
        self.alias = Path(alias) if alias is not None else None
        self.present = True  # False while unplugged
        self.unplugs = 0
        self._spare: tuple[int, str] | None = None  # the pty waiting to be plugged in
        self._on_replug: Callable[[], None] | None = None
        self._timers: list[threading.Timer] = []
        self._silent_until = 0.0
        self._make_alias()
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
        with self._io:
            if self._master < 0:
                return None
            try:
                speed = termios.tcgetattr(self._master)[5]
            except termios.error:
                return None
        return SPEED_TO_BAUD.get(speed)

    @property
    def port(self) -> str:
        """What a host should open: the stable alias if there is one, else the pty itself."""
        return str(self.alias) if self.alias is not None else self.path

    # -- faults -------------------------------------------------------------------------------
    def silence(self, seconds: float) -> None:
        """A stall: nothing crosses the bridge, either way, for ``seconds`` (bytes wait)."""
        self._silent_until = max(self._silent_until, time.monotonic() + seconds)

    def unplug(self, gone: float | None = None, on_replug: Callable[[], None] | None = None):
        """The USB bridge vanishes: the pty is closed under the host (its handle gets I/O
        errors), output in flight is lost, the alias disappears. After ``gone`` seconds (None:
        only when :meth:`replug` is called) it enumerates again under a new path."""
        with self._io:
            if not self.present or self._closed:
                return
            # The replacement exists before the old one is freed, so it gets another name, as
            # a re-enumerated USB bridge does while a process still holds the old node.
            self._spare = self._open_pty()
            self._on_replug = on_replug
            old, self._master = self._master, -1
            self.present = False
            self.unplugs += 1
            self._remove_alias()
            os.close(old)
            self.host_open = False
        self.drop_pending()
        if gone is not None:
            timer = threading.Timer(gone, self.replug)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def replug(self) -> None:
        """The bridge enumerates again: a new pty path, the alias pointing at it."""
        with self._io:
            if self.present or self._closed or self._spare is None:
                return
            self._master, self.path = self._spare
            self._spare = None
            self.present = True
            self.host_open = False
            self._make_alias()
            on_replug, self._on_replug = self._on_replug, None
        if on_replug is not None:
            on_replug()

    def close(self) -> None:
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        with self._cv:
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        with self._io:
            self._remove_alias()
            for fd in (self._master, self._spare[0] if self._spare else -1):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master, self._spare = -1, None

    # -- pty and alias ------------------------------------------------------------------------
    @staticmethod
    def _open_pty() -> tuple[int, str]:
        master, slave = pty.openpty()
        try:
            tty.setraw(slave)
            attrs = termios.tcgetattr(slave)
            attrs[4] = attrs[5] = termios.B115200
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            path = os.ttyname(slave)
        finally:
            os.close(slave)  # the host opens the slave; holding it here would hide its closes
        os.set_blocking(master, False)
        return master, path

    def _make_alias(self) -> None:
        """Point the alias at the current pty, atomically (a reader never sees it missing)."""
        if self.alias is None:
            return
        self.alias.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.alias.with_name(f".{self.alias.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.path, tmp)
        os.replace(tmp, self.alias)

    def _remove_alias(self) -> None:
        if self.alias is None:
            return
        with contextlib.suppress(OSError):
            if os.readlink(self.alias) == self.path:
                os.unlink(self.alias)

    def _wait_silence(self) -> None:
        while not self._closed:
            left = self._silent_until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def _tapped(self, data: bytes, to_chip: bool) -> list:
        if self.tap is None or not data:
            return [data] if data else []
        return self.tap(data, to_chip)

    # -- threads ------------------------------------------------------------------------------
    def _rx_loop(self) -> None:
        poller = select.poll()
        fd = -1
        while not self._closed:
            current = self._master
            if current != fd:  # unplugged or re-enumerated: watch the new pty
                if fd >= 0:
                    with contextlib.suppress(KeyError, ValueError):
                        poller.unregister(fd)
                fd = current
                if fd >= 0:
                    poller.register(fd, select.POLLIN)
            if fd < 0:
                time.sleep(0.02)
                continue
            events = poller.poll(50)
            hup = any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events)
            readable = any(ev & select.POLLIN for _, ev in events)
            if readable:
                with self._io:
                    if self._master != fd:
                        continue
                    try:
                        data = os.read(fd, CHUNK)
                    except BlockingIOError:
                        data = b""
                    except OSError as err:
                        if err.errno not in (errno.EIO, errno.EBADF):
                            raise
                        data = b""
                if data:
                    self.host_open = True
                    self.bytes_in += len(data)
                    data = self._through_line(data, receiving=True)
                    if self.pacing:
                        self._rx_rate.wait(len(data), self.baud)
                    for part in self._tapped(data, to_chip=True):
                        if callable(part):
                            part()
                            continue
                        self._wait_silence()
                        if self._master == fd:  # bytes after an unplug never arrive
                            self._on_receive(part)
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
                for part in self._tapped(wire, to_chip=False):
                    if callable(part):
                        part()
                        continue
                    self._wait_silence()
                    self._write(memoryview(part))
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
        if host is None:
            return data
        host = bridge_rate(host, self.max_baud)
        if rates_agree(host, self.baud):
            return data
        if receiving and self.autobaud:
            self.baud = host  # the ROM locks onto the host's rate
            return data
        sender, sampler = (host, self.baud) if receiving else (self.baud, host)
        return garbled(data, sender, sampler, self._noise)

    def _write(self, chunk: memoryview) -> int:
        """Hand ``chunk`` to the pty (all of it, or drop it if nobody can receive it)."""
        total = len(chunk)
        while chunk and not self._closed:
            with self._io:
                fd = self._master
                if fd < 0:
                    return total  # unplugged: the bridge is gone, and so are the bytes
                try:
                    n = os.write(fd, chunk)
                    self.bytes_out += n
                    chunk = chunk[n:]
                    continue
                except BlockingIOError:
                    if not self.host_open:
                        return total  # nobody reads the port: the bridge drops what it can't send
                except OSError as err:
                    if err.errno not in (errno.EIO, errno.EBADF):
                        raise
                    fd = -1
            if fd < 0:
                time.sleep(0.01)
                continue
            try:
                select.select([], [fd], [], 0.05)
            except (OSError, ValueError):
                time.sleep(0.01)  # unplugged meanwhile
        return total
