"""Slot locks: one process at a time drives a slot's relays and serial port.

An ``flock`` on ``<locks>/<station>-<slot>.lock``: the kernel drops it when the holder exits,
however it exits, so there are no stale locks to clean up. The holder writes its PID and command
line into the file so a second user is told who has the slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

from rig.errors import OperationError


class SlotBusy(OperationError):
    """The slot is locked by another process."""


class SlotLock:
    def __init__(self, locks_dir: Path, station: str, slot: str) -> None:
        self.path = Path(locks_dir) / f"{station}-{slot}.lock"
        self.slot = slot
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> SlotLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SlotBusy(f"slot {self.slot} is in use by {holder} (lock {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str | None:
        """Who holds the slot now (the PID and command line it wrote), None if nobody.

        Read from /proc/locks without taking the lock: a status query must never be the reason
        a real user's acquire fails. Its lines read ``1: FLOCK ADVISORY WRITE <pid>
        <major>:<minor>:<inode> 0 EOF`` (hex device numbers; a waiter has ``->`` after the index).
        """
        try:
            st = os.stat(self.path)
            table = Path("/proc/locks").read_text()
        except OSError:
            return None
        for line in table.splitlines():
            parts = line.split()
            if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
                continue
            major, minor, inode = parts[5].split(":")
            same_dev = (int(major, 16), int(minor, 16)) == (
                os.major(st.st_dev),
                os.minor(st.st_dev),
            )
            if same_dev and int(inode) == st.st_ino:
                try:
                    return self.path.read_text().strip() or f"PID {parts[4]}"
                except OSError:
                    return f"PID {parts[4]}"
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> SlotLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    if not text:
        return "another process"
    pid, _, command = text.partition(" ")
    return f"PID {pid} ({command})" if command else f"PID {pid}"
