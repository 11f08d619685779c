"""Slot locks between processes: a clear error naming the holder, no stale locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rig.hardware.locks import SlotBusy, SlotLock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rig.hardware.locks import SlotLock
    lock = SlotLock(Path(sys.argv[1]), "sim", "l7x-1").acquire()
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


def test_second_process_gets_an_error_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SlotBusy) as err:
            SlotLock(tmp_path, "sim", "l7x-1").acquire()
        assert f"PID {holder.pid}" in str(err.value)
        assert "slot l7x-1 is in use" in str(err.value)
        # Another slot of the same station is free.
        with SlotLock(tmp_path, "sim", "l7x-2"):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # The holder died without cleaning up: the kernel dropped its flock, no stale lock.
    with SlotLock(tmp_path, "sim", "l7x-1") as lock:
        assert lock.held


def test_lock_is_reentrant_within_the_holder_and_released_on_exit(tmp_path):
    lock = SlotLock(tmp_path, "sim", "devkitc-1")
    with lock:
        assert lock.acquire() is lock
        with pytest.raises(SlotBusy):
            SlotLock(tmp_path, "sim", "devkitc-1").acquire()  # another open file description
    assert not lock.held
    SlotLock(tmp_path, "sim", "devkitc-1").acquire().release()
