"""The whole-flash read that skips proven-blank flash: the one dump path (:func:`read_flash`).

The wire is the limit only for bytes that must cross it. Most of a board's flash is erased (the
second OTA slot, unused data partitions), and the chip can prove that without sending a byte: a
64 KB block (:data:`rig.esp32.BLOCK`) whose MD5, computed on the chip (SPI_FLASH_MD5 in the ROM
loader and the stub), equals the MD5 of 64 KB of 0xFF holds 0xFF - an MD5 collision with the
erased pattern is not something flash content produces. Those blocks are filled in as 0xFF;
every other block is read, in contiguous runs so the read keeps streaming at the line rate.

Never assumed: a block whose MD5 check fails (the session gave up on it after its own
reconnects) is read. The caller still verifies the assembled whole flash against the chip's MD5
of the whole flash (:func:`rig.operations.safeguards.take_backup`), so a block wrongly taken as
blank could not become a backup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

from rig.esp32 import BLOCK
from rig.operations.errors import FlasherError, WrongBoard
from rig.operations.fastwrite import Progress
from rig.operations.session import FlasherSession

__all__ = ["BlankSkip", "erased_md5", "read_flash"]


@dataclass
class BlankSkip:
    """What a blank-skipping read did."""

    read: int = 0  # bytes read over the link
    blank: int = 0  # bytes proven erased by the chip's MD5, not read
    unchecked: list[int] = field(default_factory=list)  # blocks whose MD5 failed: read instead


@cache
def erased_md5(size: int) -> str:
    """The MD5 of ``size`` bytes of erased NOR flash (all 0xFF)."""
    return hashlib.md5(b"\xff" * size).hexdigest()


def read_flash(
    session: FlasherSession, size: int, progress: Progress | None = None
) -> tuple[bytes, BlankSkip]:
    """Flash ``0..size``: blocks proven blank by the chip's MD5 as 0xFF, the rest read."""
    stats = BlankSkip()
    runs: list[tuple[int, int]] = []  # (start, end) of the blocks to read
    for start in range(0, size, BLOCK):
        end = min(start + BLOCK, size)
        if _proven_blank(session, start, end - start, stats):
            stats.blank += end - start
        elif runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    total = sum(end - start for start, end in runs)
    flash = bytearray(b"\xff" * size)
    for start, end in runs:

        def run_progress(done: int, _total: int, base: int = stats.read) -> None:
            if progress is not None:
                progress(base + done, total)

        flash[start:end] = session.read(start, end - start, run_progress)
        stats.read += end - start
    if progress is not None:
        progress(total, total)
    return bytes(flash), stats


def _proven_blank(session: FlasherSession, start: int, size: int, stats: BlankSkip) -> bool:
    try:
        return session.md5(start, size) == erased_md5(size)
    except WrongBoard:
        raise
    except FlasherError:
        stats.unchecked.append(start)
        return False
