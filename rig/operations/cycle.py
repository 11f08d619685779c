"""The scripted cycle: identify -> backup -> erase -> write -> verify -> boot check -> restore the
original -> verify -> boot check. It is what a person does by hand on an L7X, minus the ways it
goes wrong: no destructive step without a verified backup of this MAC, no write to a board whose
MAC changed under us, every written region verified by the chip's own MD5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from rig.board.station import LiveSlot
from rig.errors import OperationError
from rig.operations.backups import Backup, BackupStore
from rig.operations.bootcheck import GENERIC_BOOT, boot_check
from rig.operations.images import FlashImage, firmware_in
from rig.operations.report import Report
from rig.operations.safeguards import ensure_backup, explain_failure, explain_interruption
from rig.operations.session import FlasherSession
from rig.signals import Terminated

__all__ = ["PhaseProgress", "run_cycle"]

PhaseProgress = Callable[[str, int, int], None]  # (phase, done, total)


def _progress(progress: PhaseProgress | None, phase: str):
    if progress is None:
        return None
    return lambda done, total: progress(phase, done, total)


def run_cycle(
    slot: LiveSlot,
    store: BackupStore,
    images: Sequence[FlashImage],
    *,
    console_pattern: str,
    keep: bool = False,
    backup_mode: str = "auto",
    meta: dict[str, Any] | None = None,
    progress: PhaseProgress | None = None,
    report: Report | None = None,
    force: bool = False,
) -> Report:
    """Run the whole cycle on an open slot; the report says which step failed and why.
    ``force``: erase even with flash encryption or secure boot enabled.

    A stop signal (``KeyboardInterrupt``, ``Terminated``) propagates after ``report.error`` says
    what it interrupted and what state the flash is in: pass ``report`` to print it then.
    """
    board = slot.board
    report = report if report is not None else Report("cycle", slot.id)
    backup = None
    meta = {"board_type": slot.board_type.name, "slot": slot.id, **(meta or {})}
    sessions: list[FlasherSession] = []  # the last one is the one a stop can cut short
    try:
        sessions.append(
            FlasherSession(board, expected_mac=slot.config.expected_mac, force_erase=force)
        )
        with sessions[-1] as session:
            with report.step("identify") as step:
                ident = session.identity
                report.mac = ident.mac
                step.data = ident.as_dict()
                step.detail = (
                    f"{ident.chip}, flash {ident.manufacturer}/{ident.device} "
                    f"{ident.size_text}, {ident.baud} baud"
                )
            with report.step("backup") as step:
                check = ensure_backup(
                    session, store, backup_mode, meta, _progress(progress, "backup")
                )
                backup = check.backup
                step.data, step.detail = check.data, check.detail
            with report.step("erase") as step:
                session.erase_chip()
                size = session.require_flash_size()
                blank = hashlib.md5(b"\xff" * size).hexdigest()
                if session.md5(0, size) != blank:
                    raise OperationError("flash is not blank after the chip erase")
                step.detail = f"{ident.size_text} blank (chip MD5)"
            with report.step("write") as step:
                written = 0
                for image in images:
                    stats = session.write(image.offset, image.data, _progress(progress, "write"))
                    written += stats.written
                step.data = {"bytes_written": written}
                step.detail = ", ".join(f"{i.name} at {i.offset:#x}" for i in images)
            with report.step("verify") as step:
                for image in images:
                    if not session.verify(image.offset, image.data):
                        raise OperationError(f"{image.name} at {image.offset:#x}: MD5 mismatch")
                step.detail = "chip MD5 matches every image"
        with report.step("boot check") as step:
            check = boot_check(board, console_pattern)
            step.data = {"console": check.console}
            if not check.ok:
                raise OperationError(f"console never showed {console_pattern!r}")
            step.detail = f"console matched {console_pattern!r}"
        if not keep and backup is not None:
            sessions.append(FlasherSession(board, expected_mac=ident.mac))
            _restore(report, slot, sessions[-1], backup, progress)
        report.ok = True
    except (KeyboardInterrupt, Terminated) as stop:
        writing = sessions[-1].writing if sessions else None
        backup_id = backup.id if backup else None
        report.error = explain_interruption(stop, report, writing, slot.id, backup_id)
        raise
    except Exception as err:
        report.error = explain_failure(err, slot.id, backup.id if backup else None)
    return report


def _restore(
    report: Report,
    slot: LiveSlot,
    session: FlasherSession,
    backup: Backup,
    progress: PhaseProgress | None,
) -> None:
    """Write ``backup`` back through ``session`` (not yet connected), verify it, boot it."""
    board = slot.board
    data = backup.read()
    with session:
        with report.step("restore") as step:
            stats = session.write(0, data, _progress(progress, "restore"))
            step.data = {
                "backup": backup.id,
                "bytes_written": stats.written,
                "bytes_skipped": stats.skipped,
            }
            step.detail = f"{backup.id}: wrote {stats.written} B, skipped {stats.skipped} B"
        with report.step("verify original") as step:
            if not session.verify(0, data):
                raise OperationError("restored flash does not match the backup")
            step.detail = "chip MD5 of the whole flash matches the backup"
    fw = firmware_in(data, slot.board_type)
    pattern = fw.console if fw is not None else GENERIC_BOOT
    with report.step("boot check original") as step:
        check = boot_check(board, pattern)
        step.data = {"console": check.console, "firmware": fw.name if fw else None}
        if not check.ok:
            raise OperationError(f"the restored firmware's console never showed {pattern!r}")
        step.detail = f"{fw.name if fw else 'firmware'}: console matched {pattern!r}"
