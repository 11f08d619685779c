"""The scripted cycle: identify -> backup -> boot plan -> erase -> write -> verify -> boot check ->
restore the original -> verify -> boot check. It is what a person does by hand on an L7X, minus
the ways it goes wrong: no destructive step without a verified backup of this MAC, no write to a
board whose MAC changed under us, every written region verified by the chip's own MD5, nothing
erased for an image that could not boot afterwards (the boot plan adds bootloader, partition
table and otadata from the backup for an app-only image), and a firmware that does not boot
never left on the board: the backup goes back, and the report says so.

A composition of the reported steps (:mod:`rig.operations.steps`); the restore is the one
``rig restore`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rig import config
from rig.board.station import LiveSlot
from rig.errors import OperationError
from rig.operations import steps
from rig.operations.backups import Backup, BackupStore
from rig.operations.bootplan import BootPlan
from rig.operations.fastwrite import WriteStats
from rig.operations.images import FlashImage
from rig.operations.report import Report
from rig.operations.safeguards import BackupCheck, BackupPolicy
from rig.operations.session import FlasherSession
from rig.operations.steps import PhaseProgress, Run

__all__ = ["PhaseProgress", "install", "run_cycle"]


def install(
    report: Report,
    session: FlasherSession,
    images: Sequence[FlashImage],
    policy: BackupPolicy,
    board_type: config.BoardType,
    *,
    force: bool = False,
    progress: PhaseProgress | None = None,
) -> tuple[BackupCheck, BootPlan, WriteStats]:
    """``rig write`` without the command line (the labgrid flashing driver writes this way too):
    the backup policy, the boot plan without an erase (otadata reset when it would boot another
    app than the one written; refused if the result could not boot, unless ``force``), then a
    verified fast write per image. The caller has checked where each image goes
    (:func:`~rig.operations.images.check_placement`) before the board was touched. Returns the
    backup check, the plan (its images are what was written) and the bytes written and skipped."""
    check = steps.backup(report, session, policy, progress)
    what = " + ".join(image.name for image in images)
    plan = steps.plan(
        report, session, images, check.backup, board_type, erase=False, force=force, what=what
    )
    total = WriteStats()
    for image in plan.images:
        stats = steps.write(report, session, [image], progress, name=f"write {image.name}")
        total = WriteStats(
            total.written + stats.written,
            total.skipped + stats.skipped,
            total.regions + stats.regions,
        )
    return check, plan, total


def run_cycle(
    slot: LiveSlot,
    store: BackupStore,
    images: Sequence[FlashImage],
    *,
    console_pattern: str | None,
    keep: bool = False,
    backup_mode: str = "auto",
    meta: dict[str, Any] | None = None,
    progress: PhaseProgress | None = None,
    report: Report | None = None,
    force: bool = False,
) -> Report:
    """Run the whole cycle on an open slot; the report says which step failed and why.
    ``console_pattern`` None: the default boot check. ``force``: erase even with flash
    encryption or secure boot enabled, and write an image the boot plan says cannot boot.

    A stop signal (``KeyboardInterrupt``, ``Terminated``) propagates after ``report.error`` says
    what it interrupted and what state the flash is in: pass ``report`` to print it then.
    """
    report = report if report is not None else Report("cycle", slot.id)
    meta = {"board_type": slot.board_type.name, "slot": slot.id, **(meta or {})}
    firmware = " + ".join(image.name for image in images)
    with steps.reported(report, slot.id) as run:
        session = FlasherSession(
            slot.board, expected_mac=slot.config.expected_mac, force_erase=force
        )
        with run.open(session):
            ident = steps.identify(report, session)
            policy = BackupPolicy(store, backup_mode, meta)
            check = steps.backup(report, session, policy, progress)
            plan = steps.plan(
                report,
                session,
                images,
                check.backup,
                slot.board_type,
                erase=True,
                force=force,
                what=firmware,
            )
            steps.erase(report, session, blank_check=True)
            steps.write(report, session, plan.images, progress)
            steps.verify(report, session, plan.images)
        app_offset = plan.app.offset if plan.app is not None else None
        try:
            steps.boot(
                report, slot.board, console_pattern, app_offset=app_offset, firmware=firmware
            )
        except OperationError as failure:
            if check.backup is None:
                raise
            _put_back(report, slot, run, check.backup, ident.mac, progress, failure)
        if not keep and check.backup is not None:
            _restore(report, slot, run, check.backup, ident.mac, progress)
    return report


def _restore(
    report: Report,
    slot: LiveSlot,
    run: Run,
    backup: Backup,
    mac: str,
    progress: PhaseProgress | None,
) -> None:
    """The backup back onto the board (the board with this MAC only), verified, booted."""
    with run.open(FlasherSession(slot.board, expected_mac=mac)) as session:
        flash = steps.restore(report, session, backup, progress)
    steps.boot_original(report, slot.board, flash, slot.board_type)


def _put_back(
    report: Report,
    slot: LiveSlot,
    run: Run,
    backup: Backup,
    mac: str,
    progress: PhaseProgress | None,
    failure: OperationError,
) -> None:
    """The new firmware did not boot: restore the backup rather than leave a board that does
    not start, then fail with both what happened and what the board holds now."""
    try:
        _restore(report, slot, run, backup, mac, progress)
    except OperationError as err:
        raise OperationError(
            f"{failure}; restoring backup {backup.id} failed too: {err} - run "
            f"`rig restore --slot {slot.id}`"
        ) from err
    raise OperationError(
        f"{failure}; restored backup {backup.id} (verified, and it boots): the board holds "
        "its original firmware again"
    ) from failure
