"""The backup policy of every destructive step: no erase or write without a verified, *current*
backup of the board's MAC, unless the user forces it.

:func:`prepare_backups` checks the policy and the store before the board is touched (bad input,
exit 2); :func:`take_backup` is the one whole-flash dump (``rig dump``, the plugin's session
backup, and every backup the policy takes); :func:`ensure_backup` finds a backup that holds
what the chip holds now (the chip's MD5 of its whole flash: :func:`matches_chip`) or takes one,
or refuses (``require``); :func:`explain_failure` and :func:`explain_interruption` say what
state a failed or interrupted operation left the flash in, and the way back.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import esptool

from rig import __version__
from rig.errors import BadInput, OperationError
from rig.operations import blankskip
from rig.operations.backups import Backup, BackupError, BackupStore
from rig.operations.fastwrite import PartialWrite, Progress, describe_ranges
from rig.operations.report import Report
from rig.operations.session import FlasherSession

__all__ = [
    "BACKUP_MODES",
    "BackupCheck",
    "BackupPolicy",
    "DumpResult",
    "Transfer",
    "current_backup",
    "ensure_backup",
    "explain_failure",
    "explain_interruption",
    "matches_chip",
    "prepare_backups",
    "take_backup",
]

BACKUP_MODES = ("auto", "require", "skip")


@dataclass(frozen=True)
class BackupPolicy:
    """The backup policy a destructive operation runs under: the store, the mode (``auto``,
    ``require``, ``skip``; checked by :func:`prepare_backups`) and what a backup taken on the
    way records about where it was taken (station, slot, board type)."""

    store: BackupStore
    mode: str
    meta: dict[str, Any]


def prepare_backups(store: BackupStore, mode: str, force: bool) -> None:
    """Validate the backup policy and the store before the board is touched."""
    if mode not in BACKUP_MODES:
        raise BadInput(f"--backup must be one of {', '.join(BACKUP_MODES)}")
    if mode == "skip" and not force:
        raise BadInput("--backup skip destroys flash without a backup: add --force to do that")
    if mode != "skip":
        try:
            store.check_writable()
        except BackupError as err:
            raise BadInput(str(err)) from err


@dataclass(frozen=True)
class Transfer:
    """Bytes moved over the link and the time it took."""

    size: int  # bytes
    seconds: float

    @property
    def bytes_per_s(self) -> int:
        return round(self.size / self.seconds) if self.seconds > 0 else 0


@dataclass(frozen=True)
class DumpResult:
    """What :func:`take_backup` did: the verified backup that holds the dump, the chip's MD5 of
    the whole flash, the read's transfer, and whether an identical backup was ``reused``."""

    backup: Backup
    chip_md5: str  # the chip's MD5 of the whole flash, taken right after the read
    transfer: Transfer  # bytes read over the link; seconds of the whole dump (MD5s included)
    reused: bool  # a verified backup of this MAC held these bytes already: not stored twice


def take_backup(
    session: FlasherSession,
    store: BackupStore,
    meta: dict[str, Any],
    progress: Progress | None = None,
    *,
    reuse: bool = False,
) -> DumpResult:
    """Dump the whole flash, check it against the chip's MD5, store it as a verified backup.

    Blocks the chip proves erased (their MD5 is that of 0xFF) are not read
    (:func:`rig.operations.blankskip.read_flash`); the backup is still the whole flash, and the
    whole of it is checked against the chip's MD5 of the whole flash before it is stored.

    With ``reuse``, a dump that a verified backup of this MAC already holds
    (:func:`current_backup`, the rule every destructive step applies before it relies on a
    backup) is not stored again - a CI runner would otherwise pile up one copy per run: that
    backup is the result, re-verified by this dump. Without it every dump is a new file (``rig
    dump``: the user asked for one). Raises :class:`~rig.errors.OperationError` if the dump
    does not match the chip or cannot be stored.
    """
    ident = session.identity
    size = session.require_flash_size()
    t0 = time.monotonic()
    data, skipped = blankskip.read_flash(session, size, progress)
    chip_md5 = session.md5(0, size)
    transfer = Transfer(skipped.read, time.monotonic() - t0)
    md5 = hashlib.md5(data).hexdigest()
    if md5 != chip_md5:
        raise OperationError(
            f"dump of {ident.mac} does not match the chip's MD5 ({md5} != {chip_md5}): not a backup"
        )
    existing = current_backup(store, ident.mac, size, chip_md5) if reuse else None
    if existing is not None:
        return DumpResult(existing, chip_md5, transfer, reused=True)
    full = {
        **meta,
        "chip": ident.chip,
        "flash_id": f"{ident.flash_id:06x}",
        "flash_size": size,
        "baud": ident.baud,
        "seconds": round(transfer.seconds, 3),
        "bytes_read": transfer.size,  # the rest was proven erased by the chip's MD5
        "rig_version": __version__,
        "esptool_version": esptool.__version__,
    }
    try:
        backup = store.save(ident.mac, data, chip_md5, full, flash_size=size)
    except BackupError as err:
        raise OperationError(str(err)) from err
    return DumpResult(backup, chip_md5, transfer, reused=False)


@dataclass(frozen=True)
class BackupCheck:
    """What :func:`ensure_backup` found or did, for the step's detail and data."""

    backup: Backup | None  # the verified backup the destructive step relies on (None: skipped)
    taken: bool  # dumped just now
    chip_md5: str = ""  # the chip's MD5 of its whole flash when checked
    stale: Backup | None = None  # the latest backup, which no longer matched the chip
    deferred: bool = False  # none matched, and the dump was left to the caller (dump=False)

    @property
    def detail(self) -> str:
        if self.deferred:
            latest = f"latest {self.stale.id}" if self.stale is not None else "none yet"
            return f"no verified backup matches the chip ({latest}); not dumped yet"
        if self.backup is None:
            return "skipped (--force)"
        if not self.taken:
            return f"verified backup exists and matches the chip (chip MD5): {self.backup.id}"
        if self.stale is not None:
            return f"flash changed since backup {self.stale.id}: took {self.backup.id}"
        return f"took {self.backup.id}"

    @property
    def data(self) -> dict[str, Any]:
        if self.backup is None:
            return {}
        return {
            "id": self.backup.id,
            "path": str(self.backup.path),
            "sha256": self.backup.sha256,
            "taken": self.taken,
            "chip_md5": self.chip_md5,
            "stale": self.stale.id if self.stale else None,
        }


def matches_chip(backup: Backup, flash_size: int, chip_md5: str) -> bool:
    """The one rule for "this backup holds what the chip holds now": the same size as the whole
    flash, and the MD5 recorded when it was verified equals the chip's MD5 of its whole flash.

    MD5 because the chip computes it (SPI_FLASH_MD5 in the ROM loader and the stub), so a
    destructive step can check that the backup is current without reading 4 MB back. A backup
    that only covers part of the flash is never current, whatever its MD5."""
    return backup.size == flash_size and backup.meta.get("md5", "").lower() == chip_md5.lower()


def current_backup(store: BackupStore, mac: str, flash_size: int, chip_md5: str) -> Backup | None:
    """The newest intact verified backup of ``mac`` that :func:`matches_chip`, or None.

    Any backup of the MAC will do, not only the latest: a board restored to an older backup
    holds exactly that backup's bytes."""
    for backup in reversed(store.list(mac)):
        if backup.mac == mac and matches_chip(backup, flash_size, chip_md5) and backup.intact():
            return backup
    return None


def ensure_backup(
    session: FlasherSession,
    store: BackupStore,
    mode: str,
    meta: dict[str, Any],
    progress: Progress | None = None,
    *,
    dump: bool = True,
) -> BackupCheck:
    """The verified, *current* backup a destructive step relies on.

    A backup of the MAC is reused only if it :func:`matches_chip` now: settings or files the
    firmware wrote since the latest backup are not in it, and erasing or writing over them with
    only that backup would lose them. ``auto`` then dumps again; ``require`` refuses.
    ``dump=False`` checks without dumping: ``auto`` then returns a ``deferred`` check (no
    backup), and the caller must take one before anything destructive (``rig serve``'s start-up
    check under labgrid, whose acquire has 10 s).
    """
    if mode == "skip":
        return BackupCheck(None, False)
    ident = session.identity
    size = session.require_flash_size()
    chip_md5 = session.md5(0, size)
    current = current_backup(store, ident.mac, size, chip_md5)
    if current is not None:
        return BackupCheck(current, False, chip_md5)
    stale = store.latest(ident.mac)
    if mode == "require":
        if stale is None:
            raise OperationError(
                f"no verified backup of {ident.mac} in {store.root}: take one with "
                f"`rig dump --slot {session.board.slot_id}` (or use --backup auto)"
            )
        raise OperationError(
            f"the flash of {ident.mac} changed since its latest backup {stale.id} (chip MD5 "
            f"{chip_md5}, backup {stale.meta.get('md5')}) and no verified backup matches it: "
            f"take a fresh one with `rig dump --slot {session.board.slot_id}` "
            "(or use --backup auto)"
        )
    if not dump:
        return BackupCheck(None, False, chip_md5, stale, deferred=True)
    taken = take_backup(session, store, meta, progress).backup
    return BackupCheck(taken, True, chip_md5, stale)


def explain_failure(err: Exception, slot_id: str, backup_id: str | None) -> str:
    """One error that names the fault and the board's state, and the way back."""
    text = str(err)
    if isinstance(err, PartialWrite):
        text += _way_back(slot_id, backup_id)
    return text


def explain_interruption(
    stop: BaseException,
    report: Report,
    writing: tuple[int, int] | None,
    slot_id: str,
    backup_id: str | None,
) -> str:
    """What a stop signal (Ctrl-C: ``KeyboardInterrupt``; SIGTERM/SIGHUP: ``Terminated``)
    interrupted - the report's last step - and, if a write was cut short (``writing``: the
    session's range not yet verified), the unverified range and the way back. Said once the
    ``with`` blocks have released the relays, which is why the text can say so."""
    what = "interrupted (SIGINT)" if isinstance(stop, KeyboardInterrupt) else str(stop)
    step = report.steps[-1].name if report.steps else "connect"
    text = f"{what} during {step}; relays released"
    if writing is not None:
        text += f"; flash partly written: {describe_ranges([writing])} unverified"
        text += _way_back(slot_id, backup_id)
    return text


def _way_back(slot_id: str, backup_id: str | None) -> str:
    if backup_id is None:
        return "; no backup of this board was taken"
    return f"; verified backup {backup_id} exists: run `rig restore --slot {slot_id}`"
