"""The hardware-in-the-loop suite's building blocks, as plain functions (no pytest needed).

The pytest plugin (:mod:`rig.pytest_plugin`) wraps these in fixtures; a script, a notebook or
another test runner can use them directly::

    from rig.operations import hil

    sel = hil.select(boards=["l7x"], slots=["l7x-1"])
    with hil.open_station(sel) as station:
        slot = station.open_slot("l7x-1")
        store = sel.store()
        with hil.flasher(slot) as esp:                 # download mode by relays
            dump = hil.take_backup(esp, store, sel.backup_meta(slot.id), reuse=True)
            hil.erase_and_check(esp)
            # the entry's parts, plus what it needs to boot (bootloader, table from the backup)
            plan = hil.firmware_plan(esp, slot.board_type, "custom-grbl", dump.backup)
            for image in plan.images:
                hil.write_verified(esp, image)
        fw = slot.board_type.firmware_named("custom-grbl")
        check = hil.boot(slot, fw.console, app_offset=plan.app.offset)  # console None: default
        # put the original back, onto that board only
        hil.ensure_flash(slot, 0, dump.backup.read(), expected_mac=dump.backup.mac)

Everything goes through the same layers as the CLI (station -> board -> flasher -> operations)
and the same verbs as the reported steps (:mod:`rig.operations.steps`): the dump is
:func:`~rig.operations.safeguards.take_backup`; nothing here knows or asks whether a slot is
simulated.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rig import config
from rig.board.station import LiveSlot, LiveStation
from rig.operations.artifacts import Artifacts, safe_name
from rig.operations.backups import Backup
from rig.operations.bootcheck import BootCheck, boot_check
from rig.operations.bootplan import (
    BootPlan,
    backup_reader,
    expected_app,
    plan_boot,
    refuse_unless_forced,
)
from rig.operations.fastwrite import Progress, WriteStats
from rig.operations.images import FlashImage, layout_table, resolve_images
from rig.operations.safeguards import DumpResult, Transfer, take_backup
from rig.operations.selection import (
    Selection,
    SelectionError,
    known_boards,
    parse_names,
    select,
)
from rig.operations.session import FlasherSession, Identity
from rig.operations.steps import (
    blank_md5,
    erase_and_check,
    original_firmware,
    verify_images,
    write_images,
)

__all__ = [
    "Artifacts",
    "DumpResult",
    "FlashImage",
    "Selection",
    "SelectionError",
    "SlotState",
    "Transfer",
    "WriteResult",
    "blank_md5",
    "boot",
    "catalog_images",
    "ensure_firmware",
    "ensure_flash",
    "erase_and_check",
    "expected_app",
    "firmware_plan",
    "flasher",
    "identity_properties",
    "known_boards",
    "open_station",
    "original_firmware",
    "parse_names",
    "safe_name",
    "select",
    "split_chip",
    "take_backup",
    "write_verified",
]


# -- the selection's station --------------------------------------------------------------------
def open_station(selection: Selection) -> LiveStation:
    """A live station over the selection's (overridden) config; close it to release all."""
    return LiveStation(selection.station)


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
class WriteResult:
    image: FlashImage
    stats: WriteStats
    transfer: Transfer  # bytes actually sent, and the time of the whole verified write


def catalog_images(board_type: config.BoardType, name: str) -> list[FlashImage]:
    """A catalog firmware's parts as checked images (files, sha256, alignment, fit, chip)."""
    return resolve_images([name], board_type)


def firmware_plan(
    session: FlasherSession, board_type: config.BoardType, name: str, backup: Backup | None
) -> BootPlan:
    """The catalog firmware ``name`` and what it needs to boot on the chip as it is now (an
    erased chip gets bootloader and partition table from ``backup``; otadata that selects
    another app is reset): :func:`rig.operations.bootplan.plan_boot`, refused if it still
    cannot boot."""
    saved, source = backup_reader(backup)
    plan = plan_boot(
        catalog_images(board_type, name),
        current=lambda offset, size: session.read(offset, size),
        backup=saved,
        backup_name=source,
        layout=layout_table(board_type),
    )
    refuse_unless_forced(plan, name, force=False)
    return plan


def write_verified(
    session: FlasherSession, image: FlashImage, progress: Progress | None = None
) -> WriteResult:
    """Verified fast write of ``image``, then a separate verify of it by the chip's MD5."""
    t0 = time.monotonic()
    stats, _ = write_images(session, [image], progress)
    seconds = time.monotonic() - t0
    verify_images(session, [image])
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


def ensure_firmware(
    slot: LiveSlot,
    name: str,
    backup: Backup | None,
    *,
    track: Callable[[FlasherSession], None] | None = None,
) -> BootPlan:
    """Make the chip hold the catalog firmware ``name`` and what it needs to boot
    (:func:`firmware_plan`): each image verified by MD5, written only if it differs. Only on
    the board ``backup`` is of."""
    expected = backup.mac if backup is not None else None
    with flasher(slot, track=track, expected_mac=expected) as session:
        plan = firmware_plan(session, slot.board_type, name, backup)
        for image in plan.images:
            if not session.verify(image.offset, image.data):
                session.write(image.offset, image.data)
    return plan


def boot(
    slot: LiveSlot,
    pattern: str | None,
    timeout: float | None = None,
    *,
    app_offset: int | None = None,
) -> BootCheck:
    """Boot from flash (the board's ``run`` sequence) and check the console: ``pattern``, or
    (None) the default check with the app expected at ``app_offset``; the relays are released
    afterwards (a booted firmware keeps itself powered)."""
    try:
        return boot_check(slot.board, pattern, timeout, app_offset=app_offset)
    finally:
        slot.relays.release_all()
