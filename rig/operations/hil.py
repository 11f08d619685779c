"""The hardware-in-the-loop suite's building blocks, as plain functions (no pytest needed).

The pytest plugin (:mod:`rig.pytest_plugin`) wraps these in fixtures; a script, a notebook or
another test runner can use them directly::

    from rig.operations import hil

    sel = hil.select(boards=["l7x"], slots=["l7x-1"])
    with hil.open_station(sel) as station:
        slot = station.open_slot("l7x-1")
        store = hil.backup_store(sel)
        with hil.flasher(slot) as esp:                 # download mode by relays
            dump = hil.dump_backup(esp, store, hil.backup_meta(sel, slot))
            hil.erase_and_check(esp)
            hil.write_verified(esp, hil.catalog_image(slot.board_type, "custom-grbl"))
        check = hil.boot(slot, slot.board_type.firmware_named("custom-grbl").console)
        # put the original back, onto that board only
        hil.ensure_flash(slot, 0, dump.backup.read(), expected_mac=dump.backup.mac)

Everything goes through the same layers as the CLI (station -> board -> flasher -> operations);
nothing here knows or asks whether a slot is simulated.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import esptool

from rig import __version__, config
from rig.board.station import LiveSlot, LiveStation
from rig.errors import OperationError
from rig.operations.artifacts import Artifacts, safe_name
from rig.operations.backups import Backup, BackupStore
from rig.operations.bootcheck import GENERIC_BOOT, BootCheck, boot_check
from rig.operations.fastwrite import WriteStats
from rig.operations.images import FlashImage, firmware_in, resolve_images
from rig.operations.safeguards import current_backup
from rig.operations.selection import (
    Selection,
    SelectionError,
    known_boards,
    parse_names,
    select,
)
from rig.operations.session import FlasherSession, Identity

__all__ = [
    "Artifacts",
    "DumpResult",
    "FlashImage",
    "Selection",
    "SelectionError",
    "SlotState",
    "Transfer",
    "WriteResult",
    "backup_meta",
    "backup_store",
    "blank_md5",
    "boot",
    "catalog_image",
    "dump_backup",
    "ensure_flash",
    "erase_and_check",
    "flasher",
    "identity_properties",
    "known_boards",
    "open_station",
    "original_firmware",
    "parse_names",
    "safe_name",
    "select",
    "split_chip",
    "write_verified",
]


# -- the selection's station, store and backup metadata ------------------------------------------
def open_station(selection: Selection) -> LiveStation:
    """A live station over the selection's (overridden) config; close it to release all."""
    return LiveStation(selection.station)


def backup_store(selection: Selection) -> BackupStore:
    return BackupStore(selection.backups)


def backup_meta(selection: Selection, slot: LiveSlot | config.Slot) -> dict[str, Any]:
    cfg = slot.config if isinstance(slot, LiveSlot) else slot
    return {"station": selection.station.name, "slot": cfg.id, "board_type": cfg.board}


# -- per-slot state ----------------------------------------------------------------------------
@dataclass
class SlotState:
    """What a run has learnt about one slot's board."""

    slot_id: str
    identity: Identity | None = None
    dump: DumpResult | None = None  # the session's verified backup
    touched: bool = False  # a test that could change the flash ran since the last restore

    @property
    def backup(self) -> Backup | None:
        return self.dump.backup if self.dump is not None else None


# -- flasher sessions --------------------------------------------------------------------------
@contextlib.contextmanager
def flasher(
    slot: LiveSlot,
    *,
    track: Callable[[FlasherSession], None] | None = None,
    expected_mac: str | None = None,
) -> Iterator[FlasherSession]:
    """A connected flasher session (board put in download mode by its relays).

    ``track`` sees the session before it connects (to collect its esptool log even when the
    connect fails). ``expected_mac`` (default: the slot's configured one) makes the connect
    refuse any other board (:class:`~rig.operations.errors.WrongBoard`) before anything is read or
    written. On exit - normal, failed connect, exception, signal - the port is closed and every
    relay of the slot is released.
    """
    session = FlasherSession(slot.board, expected_mac=expected_mac or slot.config.expected_mac)
    if track is not None:
        track(session)
    try:
        session.connect()
        yield session
    finally:
        try:
            session.close()
        finally:
            slot.relays.release_all()


def split_chip(description: str) -> tuple[str, str]:
    """``"ESP32-D0WD-V3 (revision v3.0)"`` -> ``("ESP32-D0WD-V3", "v3.0")``."""
    match = re.fullmatch(r"\s*(.*?)\s*\(revision\s+([^)]+)\)\s*", description)
    if match:
        return match.group(1), match.group(2)
    return description.strip(), ""


def identity_properties(identity: Identity) -> dict[str, str]:
    """The JUnit properties of a board's identity."""
    chip, revision = split_chip(identity.chip)
    return {
        "mac": identity.mac,
        "chip": chip,
        "revision": revision,
        "flash_id": f"{identity.flash_id:06x}",
        "flash_size": str(identity.flash_size),
        "baud": str(identity.baud),
    }


# -- measured operations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Transfer:
    size: int  # bytes
    seconds: float

    @property
    def bytes_per_s(self) -> int:
        return round(self.size / self.seconds) if self.seconds > 0 else 0


@dataclass(frozen=True)
class DumpResult:
    backup: Backup
    chip_md5: str  # the chip's MD5 of the whole flash, taken right after the read
    transfer: Transfer
    reused: bool  # identical to the store's latest verified backup of this MAC: not stored twice


@dataclass(frozen=True)
class WriteResult:
    image: FlashImage
    stats: WriteStats
    transfer: Transfer  # bytes actually sent, and the time of the whole verified write


@functools.lru_cache(maxsize=8)
def blank_md5(size: int) -> str:
    return hashlib.md5(b"\xff" * size).hexdigest()


def dump_backup(
    session: FlasherSession,
    store: BackupStore,
    meta: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> DumpResult:
    """Read the whole flash, check it against the chip's own MD5, keep it as a verified backup.

    A dump that a verified backup of this MAC already holds is not stored again (a CI runner
    would otherwise pile up one copy per run): that backup is returned, re-verified by this
    dump. "Already holds" is :func:`~rig.operations.safeguards.current_backup`, the one rule every
    destructive step applies before it relies on a backup. Raises
    :class:`~rig.errors.OperationError` if the dump does not match the chip.
    """
    ident = session.identity
    size = session.require_flash_size()
    t0 = time.monotonic()
    data = session.read(0, size, progress)
    seconds = time.monotonic() - t0
    chip_md5 = session.md5(0, size)
    if hashlib.md5(data).hexdigest() != chip_md5:
        raise OperationError(
            f"dump of {ident.mac} does not match the chip's MD5 ({chip_md5}): not a backup"
        )
    transfer = Transfer(len(data), seconds)
    existing = current_backup(store, ident.mac, size, chip_md5)
    if existing is not None:
        return DumpResult(existing, chip_md5, transfer, reused=True)
    full = {
        **meta,
        "chip": ident.chip,
        "flash_id": f"{ident.flash_id:06x}",
        "flash_size": size,
        "baud": ident.baud,
        "seconds": round(seconds, 3),
        "rig_version": __version__,
        "esptool_version": esptool.__version__,
    }
    backup = store.save(ident.mac, data, chip_md5, full, flash_size=size)
    return DumpResult(backup, chip_md5, transfer, False)


def erase_and_check(session: FlasherSession) -> tuple[bool, str]:
    """Chip erase, then the chip's MD5 of the whole flash: ``(blank, chip_md5)``."""
    size = session.require_flash_size()
    session.erase_chip()
    chip_md5 = session.md5(0, size)
    return chip_md5 == blank_md5(size), chip_md5


def catalog_image(board_type: config.BoardType, name: str) -> FlashImage:
    """A catalog firmware as a checked image (file, sha256, alignment, fit, chip type)."""
    (image,) = resolve_images([name], board_type)
    return image


def write_verified(
    session: FlasherSession, image: FlashImage, progress: Callable[[int, int], None] | None = None
) -> WriteResult:
    """Verified fast write of ``image``, then a separate verify of it by the chip's MD5."""
    t0 = time.monotonic()
    stats = session.write(image.offset, image.data, progress)
    seconds = time.monotonic() - t0
    if not session.verify(image.offset, image.data):
        raise OperationError(f"{image.name} at {image.offset:#x}: chip MD5 differs after writing")
    return WriteResult(image, stats, Transfer(stats.written, seconds))


def ensure_flash(
    slot: LiveSlot,
    offset: int,
    data: bytes,
    *,
    track: Callable[[FlasherSession], None] | None = None,
    expected_mac: str | None = None,
) -> WriteStats | None:
    """Make the chip hold ``data`` at ``offset``: verify by MD5, write only if it differs.

    Returns None when it already matched, else the stats of the (verified) write. With
    ``expected_mac`` (a backup's MAC when ``data`` is that backup) another board is refused
    before its flash is read or written.
    """
    with flasher(slot, track=track, expected_mac=expected_mac) as session:
        if session.verify(offset, data):
            return None
        return session.write(offset, data)


def original_firmware(flash: bytes, board_type: config.BoardType) -> tuple[Any | None, str]:
    """The catalog firmware a whole-flash backup holds and its console pattern (a generic
    ESP-IDF app start when the backup's app is not in the catalog)."""
    fw = firmware_in(flash, board_type)
    return fw, (fw.console if fw is not None else GENERIC_BOOT)


def boot(slot: LiveSlot, pattern: str, timeout: float | None = None) -> BootCheck:
    """Boot from flash (the board's ``run`` sequence) and wait for ``pattern`` on the console;
    the relays are released afterwards (a booted firmware keeps itself powered)."""
    try:
        return boot_check(slot.board, pattern, timeout)
    finally:
        slot.relays.release_all()
