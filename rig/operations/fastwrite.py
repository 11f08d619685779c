"""The verified fast write, as functions of a flasher session (esptool's ``cmds`` style: the
session first): compare the chip with the image by the chip's own MD5, write only what differs,
verify everything.

Blocks are compared by MD5 computed on the chip (SPI_FLASH_MD5, in the ROM loader and the stub):
64 KB first (:data:`rig.esp32.BLOCK`), refined to 4 KB erase sectors (:data:`rig.esp32.SECTOR`)
where a block differs, so an unchanged image costs one MD5 per block and no transfer. A failure
is recovered by the session (reconnect, the next lower baud if a rate keeps failing) and the
write resumes from the last verified block. When it gives up, the error says which ranges are
unverified (:class:`PartialWrite`), and whether that is the link (:class:`WriteInterrupted`:
worth another attempt) or the flash (:class:`FlashDefect`: every write went through and the same
range never verified - a bad or worn sector that another attempt writes in vain).

:class:`rig.operations.session.FlasherSession` offers these as its ``write``, ``verify`` and
``differing_runs`` methods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from esptool.cmds import write_flash
from esptool.loader import ESPLoader

from rig.board.protocols import BoardHandle
from rig.errors import OperationError
from rig.esp32 import BLOCK, SECTOR
from rig.operations.errors import FlasherError, WrongBoard

__all__ = [
    "FlashDefect",
    "PartialWrite",
    "WriteInterrupted",
    "WriteSession",
    "WriteStats",
    "describe_ranges",
    "differing_runs",
    "verify",
    "write",
]

Progress = Callable[[int, int], None]  # (done, total)
T = TypeVar("T")

# esptool's write_flash verifies by MD5 itself; these are its words for "the data did not stick".
ESPTOOL_VERIFY_FAILURES = ("MD5 of file does not match", "Write failed, the written flash")


class PartialWrite(OperationError):
    """A write gave up with part of the image unverified; ``unverified`` holds the ranges."""

    def __init__(self, message: str, unverified: list[tuple[int, int]]) -> None:
        super().__init__(message)
        self.unverified = unverified


class WriteInterrupted(PartialWrite, FlasherError):
    """The link kept failing before the write verified: another attempt (a reconnect) compares
    again and resumes from the last verified block."""


class FlashDefect(PartialWrite):
    """The link worked every time, but the same range never verified: the flash itself does
    not keep what is programmed there (a bad or worn sector). Not worth another attempt."""


class _VerifyMismatch(FlasherError):
    """Written without a link error, but the chip's MD5 still differs."""


def is_verify_mismatch(err: BaseException) -> bool:
    """The write went through but did not stick: the link was fine (the session does not count
    it against the baud rate)."""
    return isinstance(err, _VerifyMismatch)


def describe_ranges(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(f"{start:#x}-{end - 1:#x}" for start, end in ranges) or "nothing"


@dataclass
class WriteStats:
    written: int = 0  # bytes sent to the chip
    skipped: int = 0  # bytes already equal on the chip (checked by MD5, never assumed)
    regions: int = 0


class WriteSession(Protocol):
    """What the verified write needs of a connected session
    (:class:`~rig.operations.session.FlasherSession`)."""

    board: BoardHandle
    retries: int  # how often a failed transfer is resumed after a reconnect
    writing: tuple[int, int] | None  # the range of a write not yet verified
    progress: Progress | None  # where esptool's progress of the current call goes

    def md5(self, offset: int, length: int) -> str: ...
    def require_flash_size(self) -> int: ...
    def call(self, what: str, fn: Callable[[ESPLoader], T]) -> T: ...
    def recover(self, what: str, attempt: int, err: FlasherError) -> None: ...


def write(
    session: WriteSession, offset: int, data: bytes, progress: Progress | None = None
) -> WriteStats:
    """Verified fast write: MD5 the chip per block, write only what differs, verify all.

    Blocks are compared by the chip's own MD5 (64 KB, refined to 4 KB sectors where a block
    differs), never by what we believe was written before. After a failure the session
    reconnects and compares again, so the write resumes from the last verified block. Every
    written run and finally the whole image are checked against the chip's MD5.
    """
    session.require_flash_size()
    stats = WriteStats()
    session.writing = (offset, offset + len(data))
    first_scan = True
    mismatches: list[list[tuple[int, int]]] = []  # what stayed wrong after each clean write
    for attempt in range(session.retries + 1):
        try:
            runs = differing_runs(session, offset, data)
            if first_scan:
                stats.skipped = len(data) - sum(len(c) for _, c in runs)
                first_scan = False
            _write_runs(session, runs, stats, progress)
            if session.md5(offset, len(data)) != hashlib.md5(data).hexdigest():
                raise _VerifyMismatch(
                    f"{session.board.slot_id}: {offset:#x}+{len(data):#x} does not match the "
                    "image after writing (chip MD5 differs)"
                )
            session.writing = None
            return stats
        except WrongBoard:
            raise
        except FlasherError as err:
            if isinstance(err, _VerifyMismatch):
                mismatches.append(_unverified(session, offset, data))
            if attempt == session.retries:
                unverified = _unverified(session, offset, data)
                text = f"{err}; flash partly written: {describe_ranges(unverified)} unverified"
                if len(mismatches) == attempt + 1 and all(m == unverified for m in mismatches):
                    raise FlashDefect(
                        f"{text}; every write went through but {describe_ranges(unverified)} "
                        "never verified: the flash does not keep what is programmed there "
                        "(bad or worn sector), and a restore will fail there too",
                        unverified,
                    ) from err
                raise WriteInterrupted(text, unverified) from err
            session.recover(f"write: {err}", attempt, err)
    raise AssertionError("unreachable")


def _write_runs(session: WriteSession, runs, stats: WriteStats, progress: Progress | None) -> None:
    total = sum(len(chunk) for _, chunk in runs)
    done = 0
    for run_offset, chunk in runs:
        if progress is not None:
            # esptool reports compressed bytes; scale them onto this run's share.
            def run_progress(d: int, t: int, base: int = done, size: int = len(chunk)) -> None:
                progress(base + d * size // max(t, 1), total)

            session.progress = run_progress
        try:
            session.call(
                f"write {run_offset:#x}+{len(chunk):#x}",
                lambda esp, o=run_offset, c=chunk: write_flash(esp, [(o, c)], compress=True),
            )
        except FlasherError as err:
            if any(text in str(err) for text in ESPTOOL_VERIFY_FAILURES):
                raise _VerifyMismatch(str(err)) from err  # written, but did not stick
            raise
        finally:
            session.progress = None
        done += len(chunk)
        stats.written += len(chunk)
        stats.regions += 1
    if progress is not None:
        progress(total, total)


def _unverified(session: WriteSession, offset: int, data: bytes) -> list[tuple[int, int]]:
    """The ranges that do not (or cannot now) be shown to match ``data`` (one look, no
    further recovery: the caller is giving up)."""
    retries, session.retries = session.retries, 0
    try:
        return [(o, o + len(c)) for o, c in differing_runs(session, offset, data)]
    except FlasherError:
        return [(offset, offset + len(data))]
    finally:
        session.retries = retries


def differing_runs(session: WriteSession, offset: int, data: bytes) -> list[tuple[int, bytes]]:
    """Contiguous runs of ``data`` whose chip content differs (by chip-side MD5)."""
    dirty: list[tuple[int, int]] = []  # (start, end) relative to offset
    for start in range(0, len(data), BLOCK):
        end = min(start + BLOCK, len(data))
        if _same(session, offset + start, data[start:end]):
            continue
        for s in range(start, end, SECTOR):
            e = min(s + SECTOR, end)
            if not _same(session, offset + s, data[s:e]):
                if dirty and dirty[-1][1] == s:
                    dirty[-1] = (dirty[-1][0], e)
                else:
                    dirty.append((s, e))
    return [(offset + s, data[s:e]) for s, e in dirty]


def _same(session: WriteSession, address: int, chunk: bytes) -> bool:
    return session.md5(address, len(chunk)) == hashlib.md5(chunk).hexdigest()


def verify(session: WriteSession, offset: int, data: bytes) -> bool:
    return session.md5(offset, len(data)) == hashlib.md5(data).hexdigest()
