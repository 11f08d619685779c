"""The reported steps, once: identify, backup, dump, boot plan, erase, write, verify, boot check,
restore (the boot plan and the boot checks from :mod:`rig.operations.bootsteps`).

Library verbs in the style of esptool's ``cmds`` (``read_flash(esp, ...)``): each takes the
:class:`~rig.operations.report.Report` first, then the flasher session (or the board), is typed,
returns what it found, and writes one :class:`~rig.operations.report.ReportStep` into the report
- its name, a line for people, data for JSON; failed, with the error, if it raises. The command
line (``rig identify | dump | erase | write | verify | restore``), the scripted cycle
(:mod:`rig.operations.cycle`), the batch attempt (:mod:`rig.operations.batch.attempt`) and the
pytest plugin (through :mod:`rig.operations.hil`, which uses the unreported verbs below) compose
them; none of them writes a step of its own.

:func:`reported` turns how a composition ended into the report's ``ok`` and ``error`` (the
failure, or what a stop signal interrupted, with the state of the flash and the way back).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence

from rig.board.station import LiveSlot
from rig.errors import OperationError
from rig.operations.backups import Backup, BackupStore

# The boot steps (the plan before an erase, the boot checks) are reported steps too, in a module
# of their own; every composition reaches them here.
from rig.operations.bootsteps import boot, boot_original, original_firmware, plan
from rig.operations.errors import FlasherError
from rig.operations.fastwrite import Progress, WriteStats
from rig.operations.images import FlashImage
from rig.operations.report import Report
from rig.operations.safeguards import (
    BackupCheck,
    BackupPolicy,
    DumpResult,
    ensure_backup,
    explain_failure,
    explain_interruption,
    take_backup,
)
from rig.operations.session import FlasherSession, Identity
from rig.signals import Terminated

__all__ = [
    "PhaseProgress",
    "Run",
    "backup",
    "backup_of",
    "blank_md5",
    "boot",
    "boot_original",
    "describe",
    "dump",
    "erase",
    "erase_and_check",
    "flash_size",
    "identify",
    "on_board",
    "original_firmware",
    "phase",
    "plan",
    "reported",
    "restore",
    "verify",
    "verify_images",
    "write",
    "write_images",
]

PhaseProgress = Callable[[str, int, int], None]  # (phase, done, total)


def phase(progress: PhaseProgress | None, name: str) -> Progress | None:
    """``progress`` as the session's ``(done, total)`` callback of the phase ``name``."""
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


def describe(ident: Identity) -> str:
    """One line for people: chip, MAC, flash, crystal, baud, enabled security features."""
    return (
        f"{ident.chip}, MAC {ident.mac}, flash {ident.manufacturer}/{ident.device} "
        f"{ident.size_text}, {ident.crystal_mhz} MHz crystal, {ident.baud} baud"
        + "".join(f", {feature} enabled" for feature in ident.security)
    )


def _where(images: Sequence[FlashImage]) -> str:
    return ", ".join(f"{image.name} at {image.offset:#x}" for image in images)


# -- the verbs without a report (the plugin's building blocks use them too) -----------------------
@functools.lru_cache(maxsize=8)
def blank_md5(size: int) -> str:
    """The MD5 of ``size`` erased bytes (NOR flash erases to 0xFF)."""
    return hashlib.md5(b"\xff" * size).hexdigest()


def erase_and_check(session: FlasherSession) -> tuple[bool, str]:
    """Chip erase, then the chip's MD5 of the whole flash: ``(blank, chip_md5)``."""
    size = session.require_flash_size()
    session.erase_chip()
    chip_md5 = session.md5(0, size)
    return chip_md5 == blank_md5(size), chip_md5


def write_images(
    session: FlasherSession, images: Sequence[FlashImage], progress: Progress | None = None
) -> tuple[WriteStats, list[WriteStats]]:
    """Verified fast write of each image: the stats of them all, and of each."""
    each = [session.write(image.offset, image.data, progress) for image in images]
    total = WriteStats(
        written=sum(s.written for s in each),
        skipped=sum(s.skipped for s in each),
        regions=sum(s.regions for s in each),
    )
    return total, each


def verify_images(session: FlasherSession, images: Sequence[FlashImage]) -> None:
    """The chip's MD5 of each image's region equals the image's; else a :class:`FlasherError`
    (transient: the MD5 came over the link)."""
    for image in images:
        if not session.verify(image.offset, image.data):
            raise FlasherError(
                f"{session.board.slot_id}: {image.name} at {image.offset:#x}: chip MD5 differs"
            )


def backup_of(session: FlasherSession, store: BackupStore, chosen: Backup | None = None) -> Backup:
    """The backup to restore onto the connected board: ``chosen``, else its latest."""
    mac = _identity(session).mac
    backup = chosen or store.latest(mac)
    if backup is None:
        raise OperationError(f"no verified backup of {mac} in {store.root}")
    return backup


def _identity(session: FlasherSession) -> Identity:
    if session.identity is None:
        raise FlasherError(f"{session.board.slot_id}: not connected")
    return session.identity


# -- the reported steps ----------------------------------------------------------------------------
def identify(
    report: Report,
    session: FlasherSession,
    *,
    name: str = "identify",
    detail: Callable[[Identity], str] = describe,
) -> Identity:
    """The chip's identity (connecting the session first if it is not connected yet: a failed
    connect is then this step's failure - the batch calls it ``connect``)."""
    with report.step(name) as step:
        ident = session.identity if session.identity is not None else session.connect()
        report.mac = ident.mac
        step.data = ident.as_dict()
        step.detail = detail(ident)
    return ident


def flash_size(report: Report, session: FlasherSession) -> int:
    """The flash size is known and the board type's (nothing could be dumped safely else)."""
    with report.step("flash size") as step:
        size = session.require_flash_size()
        step.detail = f"{size >> 20} MB, as the board type says"
    return size


def backup(
    report: Report, session: FlasherSession, policy: BackupPolicy, progress: PhaseProgress | None
) -> BackupCheck:
    """The backup policy before a destructive step (:func:`ensure_backup`); the report keeps
    the backup's id for the way back if a later step fails."""
    with report.step("backup") as step:
        store, mode, meta = policy.store, policy.mode, policy.meta
        check = ensure_backup(session, store, mode, meta, phase(progress, "backup"))
        report.data["backup_id"] = check.backup.id if check.backup else None
        step.data, step.detail = check.data, check.detail
    return check


def dump(
    report: Report, session: FlasherSession, policy: BackupPolicy, progress: PhaseProgress | None
) -> DumpResult:
    """The whole flash into the policy's store as a new verified backup, whatever the store
    holds already (:func:`take_backup`: ``rig dump``, a backup on demand)."""
    with report.step("dump") as step:
        result = take_backup(session, policy.store, policy.meta, phase(progress, "dump"))
        backup = result.backup
        seconds = round(result.transfer.seconds, 3)
        step.data = {"id": backup.id, "path": str(backup.path), "sha256": backup.sha256}
        step.data["seconds"] = seconds
        step.data["bytes_read"] = result.transfer.size
        rate = backup.size / max(seconds, 1e-9) / 1024
        step.detail = (
            f"{backup.id} ({backup.size} B, {result.transfer.size} B read, the rest proven "
            f"erased by chip MD5; {rate:.0f} KiB/s, chip MD5 verified)"
        )
    return result


def erase(
    report: Report,
    session: FlasherSession,
    region: tuple[int, int] | None = None,
    *,
    blank_check: bool = False,
) -> None:
    """Erase ``region`` (offset, size), or the whole chip - then, with ``blank_check``, prove
    it blank by the chip's MD5 of the whole flash."""
    with report.step("erase") as step:
        if region is not None:
            session.erase_region(*region)
            step.detail = f"{region[0]:#x}+{region[1]:#x}"
        elif blank_check:
            blank, _ = erase_and_check(session)
            if not blank:
                raise OperationError("flash is not blank after the chip erase")
            step.detail = f"{_identity(session).size_text} blank (chip MD5)"
        else:
            session.erase_chip()
            step.detail = "whole chip"


def write(
    report: Report,
    session: FlasherSession,
    images: Sequence[FlashImage],
    progress: PhaseProgress | None = None,
    *,
    name: str = "write",
) -> WriteStats:
    """Verified fast write of ``images`` (only the blocks that differ are sent)."""
    with report.step(name) as step:
        total, each = write_images(session, images, phase(progress, "write"))
        step.data = {
            "bytes_written": total.written,
            "bytes_skipped": total.skipped,
            "images": [
                {
                    "name": image.name,
                    "offset": image.offset,
                    "sha256": image.sha256,
                    "bytes_written": stats.written,
                    "bytes_skipped": stats.skipped,
                }
                for image, stats in zip(images, each, strict=True)
            ],
        }
        step.detail = (
            f"{_where(images)}: wrote {total.written} B, skipped {total.skipped} B unchanged, "
            "chip MD5 verified"
        )
    return total


def verify(
    report: Report, session: FlasherSession, images: Sequence[FlashImage], *, name: str = "verify"
) -> None:
    """The chip's MD5 of each image's region matches the image (:func:`verify_images`)."""
    with report.step(name) as step:
        verify_images(session, images)
        step.detail = f"chip MD5 matches {_where(images)}"


def restore(
    report: Report,
    session: FlasherSession,
    backup: Backup,
    progress: PhaseProgress | None = None,
) -> bytes:
    """Write ``backup`` back onto the board it was taken from (verified fast write of the
    whole flash), then verify the whole flash against it; returns the restored bytes.

    Refused before anything is written if the backup is of another MAC, or is not the whole
    flash (a store written by an older rig may hold a partial "backup": restoring it would
    leave the rest as it is now)."""
    mac = _identity(session).mac
    if backup.mac != mac:
        raise OperationError(f"backup {backup.id} is of {backup.mac}, this board is {mac}")
    report.data["backup_id"] = backup.id
    data = backup.read()
    size = session.require_flash_size()
    if len(data) != size:
        raise OperationError(
            f"backup {backup.id} holds {len(data)} bytes, the flash has {size}: it is not the "
            "whole flash, so restoring it would leave the rest as it is now - refusing"
        )
    with report.step("restore") as step:
        stats = session.write(0, data, phase(progress, "restore"))
        step.data = {
            "backup": backup.id,
            "bytes_written": stats.written,
            "bytes_skipped": stats.skipped,
        }
        step.detail = (
            f"{backup.id}: wrote {stats.written} B, skipped {stats.skipped} B unchanged, "
            "chip MD5 verified"
        )
    with report.step("verify original") as step:
        if not session.verify(0, data):
            raise OperationError("restored flash does not match the backup")
        step.detail = "chip MD5 of the whole flash matches the backup"
    return data


# -- a reported run --------------------------------------------------------------------------------
class Run:
    """The flasher sessions of one reported run; the last one opened is the one a stop signal
    can cut short (its ``writing`` range is then unverified)."""

    def __init__(self) -> None:
        self.session: FlasherSession | None = None

    def open(self, session: FlasherSession) -> FlasherSession:
        self.session = session
        return session


@contextlib.contextmanager
def reported(report: Report, slot_id: str) -> Iterator[Run]:
    """Run the steps of the ``with`` block into ``report``: ``ok`` if it completes; else the
    failure in ``report.error`` (not raised: the report carries it) with the state of the flash
    and the way back (``report.data["backup_id"]``, set by :func:`backup` and :func:`restore`).

    A stop signal (``KeyboardInterrupt``, ``Terminated``) propagates, after ``report.error``
    says what it interrupted and what state the flash is in."""
    run = Run()
    try:
        yield run
        report.ok = True
    except (KeyboardInterrupt, Terminated) as stop:
        writing = run.session.writing if run.session is not None else None
        backup_id = report.data.get("backup_id")
        report.error = explain_interruption(stop, report, writing, slot_id, backup_id)
        raise
    except Exception as err:
        report.error = explain_failure(err, slot_id, report.data.get("backup_id"))


def on_board(
    report: Report,
    slot: LiveSlot,
    body: Callable[[FlasherSession], object],
    *,
    force_erase: bool = False,
) -> Report:
    """Connect to the board in the open ``slot`` (its expected MAC applied), identify it, run
    ``body(session)`` (more steps), all :func:`reported`."""
    with reported(report, slot.id) as run:
        session = FlasherSession(
            slot.board, expected_mac=slot.config.expected_mac, force_erase=force_erase
        )
        with run.open(session):
            identify(report, session)
            body(session)
    return report
