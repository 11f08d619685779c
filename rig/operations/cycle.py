"""The scripted cycle: identify -> backup -> erase -> write -> verify -> boot check -> restore the
original -> verify -> boot check. It is what a person does by hand on an L7X, minus the ways it
goes wrong: no destructive step without a verified backup of this MAC, no write to a board whose
MAC changed under us, every written region verified by the chip's own MD5.

A composition of the reported steps (:mod:`rig.operations.steps`); the restore is the one
``rig restore`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rig.board.station import LiveSlot
from rig.operations import steps
from rig.operations.backups import BackupStore
from rig.operations.images import FlashImage
from rig.operations.report import Report
from rig.operations.safeguards import BackupPolicy
from rig.operations.session import FlasherSession
from rig.operations.steps import PhaseProgress

__all__ = ["PhaseProgress", "run_cycle"]


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
            steps.erase(report, session, blank_check=True)
            steps.write(report, session, images, progress)
            steps.verify(report, session, images)
        steps.boot(report, slot.board, console_pattern, firmware=firmware)
        if not keep and check.backup is not None:
            with run.open(FlasherSession(slot.board, expected_mac=ident.mac)) as session:
                flash = steps.restore(report, session, check.backup, progress)
            steps.boot_original(report, slot.board, flash, slot.board_type)
    return report
