"""The reported boot steps: the boot plan before anything is erased, the boot check of what was
written, the boot check of the original after a restore (re-exported by
:mod:`rig.operations.steps`, where every composition takes its steps from).

The plan (:mod:`rig.operations.bootplan`) adds what an app-only image needs to boot -
bootloader and partition table from the board's verified backup, otadata that selects the new
app - and refuses, before the erase, what still could not boot. The boot check then expects the
app where the plan put it (the default check, for a firmware without a console pattern).
"""

from __future__ import annotations

from collections.abc import Sequence

from rig import config
from rig.board.protocols import BoardHandle
from rig.errors import OperationError
from rig.operations.backups import Backup
from rig.operations.bootcheck import BootCheck, boot_check
from rig.operations.bootplan import (
    BootPlan,
    backup_reader,
    expected_app,
    plan_boot,
    refuse_unless_forced,
)
from rig.operations.images import FlashImage, firmware_in, layout_table
from rig.operations.report import Report
from rig.operations.session import FlasherSession

__all__ = ["boot", "boot_original", "original_firmware", "plan"]


def plan(
    report: Report,
    session: FlasherSession,
    images: Sequence[FlashImage],
    backup: Backup | None,
    board_type: config.BoardType,
    *,
    erase: bool,
    force: bool = False,
    what: str = "the firmware",
) -> BootPlan:
    """Plan writing ``images`` (after a chip erase if ``erase``): what to add from ``backup``
    (a verified backup that matches the chip, as the backup step ensured) or the board type's
    layout, and where the app will boot from. Without a backup and without an erase, the chip's
    own table and otadata are read. Refused (:class:`~rig.operations.bootplan.CannotBoot`) if
    it still cannot boot, unless ``force``."""
    with report.step("boot plan") as step:
        saved, name = backup_reader(backup)
        current = None if erase else (saved or (lambda offset, size: session.read(offset, size)))
        layout = layout_table(board_type)
        result = plan_boot(images, current=current, backup=saved, backup_name=name, layout=layout)
        step.data = result.as_dict()
        refuse_unless_forced(result, what, force)
        step.detail = result.describe()
        if result.problems:
            step.detail += f"; --force: going on although {'; '.join(result.problems)}"
    return result


def boot(
    report: Report,
    board: BoardHandle,
    pattern: str | None,
    *,
    app_offset: int | None = None,
    firmware: str | None = None,
    what: str | None = None,
    name: str = "boot check",
    tail: int | None = None,
) -> BootCheck:
    """Boot from flash and check the console: ``pattern`` shows, or (None) the default check
    with the app expected at ``app_offset`` (:mod:`rig.operations.bootcheck`); the step's data
    keep the console (its last ``tail`` characters, if given). ``what`` names the firmware in
    the detail and the error (default: ``firmware``)."""
    label = what or firmware or "the firmware"
    with report.step(name) as step:
        check = boot_check(board, pattern, app_offset=app_offset)
        console = check.console if tail is None else check.console[-tail:]
        step.data = {
            "console": console,
            "seconds": round(check.seconds, 3),
            "firmware": firmware,
            "check": "default" if pattern is None else "pattern",
            "app_offset": app_offset,
        }
        if not check.ok:
            raise OperationError(f"{label} did not boot: {check.problem}")
        if pattern is not None:
            step.detail = f"{label}: console matched {pattern!r} after {check.seconds:.1f} s"
        else:
            where = "" if app_offset is None else f" at {app_offset:#x}"
            step.detail = (
                f"{label}: the bootloader loaded the app{where}; no panic or reset within "
                f"{board.type.boot_settle:.1f} s"
            )
    return check


def original_firmware(
    flash: bytes, board_type: config.BoardType
) -> tuple[config.CatalogFirmware | None, str | None]:
    """The catalog firmware a whole-flash backup holds and its console pattern; None for a
    dump the catalog does not know (the vendor original, typically): the default boot check
    then says it booted from the partition its table and otadata select, without a crash or a
    reset loop."""
    fw = firmware_in(flash, board_type)
    return fw, (fw.console if fw is not None else None)


def boot_original(
    report: Report, board: BoardHandle, flash: bytes, board_type: config.BoardType
) -> BootCheck:
    """The restored firmware boots: its catalog console pattern, or the default check."""
    fw, pattern = original_firmware(flash, board_type)
    app = expected_app(lambda offset, size: flash[offset : offset + size])
    name = fw.name if fw is not None else None
    what = f"the restored {name}" if name else "the restored firmware"
    return boot(
        report,
        board,
        pattern,
        app_offset=None if app is None else app.offset,
        firmware=name,
        what=what,
        name="boot check original",
    )
