"""The rig's operations on one slot: images to write, backups before anything destructive,
boot checks. The CLI, the cycle, the batch runner and the pytest plugin all go through these.

Bad input is rejected before any relay moves: :func:`resolve_images` checks files, sha256,
alignment, fit and chip type; :func:`prepare_backups` checks the store is writable.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import esptool

from . import __version__
from .backups import Backup, BackupError, BackupStore
from .flasher import FlasherSession, Progress
from .images.esp_image import ImageError, parse_image

SECTOR = 0x1000
ESP32_CHIP_ID = 0  # esp_image_header_t.chip_id for the original ESP32
BACKUP_MODES = ("auto", "require", "skip")


class BadInput(ValueError):
    """Rejected before the board was touched."""


class OperationError(RuntimeError):
    """An operation on the board failed; the message says what state it is in."""


@dataclass(frozen=True)
class Image:
    name: str
    offset: int
    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def parse_offset(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise BadInput(f"bad offset {text!r} (use e.g. 0x10000)") from None


def resolve_images(specs: list[str], board_type: Any) -> list[Image]:
    """Catalog names or ``FILE@OFFSET`` -> checked images, sorted by offset."""
    if not specs:
        raise BadInput("nothing to write: name a catalog firmware or FILE@OFFSET")
    images = []
    for spec in specs:
        if "@" in spec:
            file, _, offset_text = spec.rpartition("@")
            path = Path(file)
            if not path.is_file():
                raise BadInput(f"{file}: no such file")
            images.append(Image(path.name, parse_offset(offset_text), path.read_bytes(), file))
            continue
        fw = next((f for f in board_type.firmware if f.name == spec), None)
        if fw is None:
            known = ", ".join(f.name for f in board_type.firmware) or "none"
            raise BadInput(
                f"no firmware {spec!r} in the {board_type.name} catalog (known: {known})"
            )
        data = Path(fw.file).read_bytes()
        if hashlib.sha256(data).hexdigest() != fw.sha256:
            raise BadInput(f"{fw.file}: sha256 does not match the catalog entry {fw.name!r}")
        images.append(Image(fw.name, fw.offset, data, str(fw.file)))
    images.sort(key=lambda i: i.offset)
    for image in images:
        check_image(image, board_type.flash_size)
    for a, b in zip(images, images[1:], strict=False):
        if b.offset < a.end:
            raise BadInput(
                f"{a.name} ({a.offset:#x}-{a.end:#x}) overlaps {b.name} at {b.offset:#x}"
            )
    return images


def check_image(image: Image, flash_size: int) -> None:
    if image.offset % SECTOR:
        raise BadInput(f"{image.name}: offset {image.offset:#x} is not 4 KB aligned")
    if not image.data:
        raise BadInput(f"{image.name}: empty file")
    if image.end > flash_size:
        raise BadInput(
            f"{image.name}: {len(image.data)} bytes at {image.offset:#x} end at {image.end:#x}, "
            f"past the {flash_size // 0x100000} MB flash"
        )
    for at, parsed in esp_images_in(image.data, image.offset):
        if parsed is None:
            raise BadInput(f"{image.name}: the ESP image at {at:#x} is not valid")
        if parsed.chip_id != ESP32_CHIP_ID:
            raise BadInput(
                f"{image.name}: the image header at {at:#x} says chip id {parsed.chip_id}, not "
                f"ESP32 ({ESP32_CHIP_ID}); it is built for another chip"
            )


# Where ESP-IDF puts images: the second-stage bootloader, and the first app partition.
IMAGE_OFFSETS = (0x1000, 0x10000)


def esp_images_in(data: bytes, offset: int) -> list[tuple[int, Any]]:
    """``(flash address, parsed image or None if invalid)`` for every ESP image (magic 0xE9)
    that ``data``, written at ``offset``, puts at its start or at a bootloader/app address."""
    found = []
    for at in sorted({offset, *IMAGE_OFFSETS}):
        rel = at - offset
        if 0 <= rel < len(data) and data[rel] == 0xE9:
            try:
                found.append((at, parse_image(data[rel:])))
            except ImageError:
                found.append((at, None))
    return found


# -- backups ----------------------------------------------------------------------------------
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


def take_backup(
    session: FlasherSession,
    store: BackupStore,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> Backup:
    """Dump the whole flash, check it against the chip's MD5, store it as a verified backup."""
    ident = session.identity
    size = session.require_flash_size()
    t0 = time.monotonic()
    data = session.read(0, size, progress)
    seconds = time.monotonic() - t0
    chip_md5 = session.md5(0, size)
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
    try:
        return store.save(ident.mac, data, chip_md5, full, flash_size=size)
    except BackupError as err:
        raise OperationError(str(err)) from err


@dataclass(frozen=True)
class BackupCheck:
    """What :func:`ensure_backup` found or did, for the step's detail and data."""

    backup: Backup | None  # the verified backup the destructive step relies on (None: skipped)
    taken: bool  # dumped just now
    chip_md5: str = ""  # the chip's MD5 of its whole flash when checked
    stale: Backup | None = None  # the latest backup, which no longer matched the chip

    @property
    def detail(self) -> str:
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
) -> BackupCheck:
    """The verified, *current* backup a destructive step relies on.

    A backup of the MAC is reused only if it :func:`matches_chip` now: settings or files the
    firmware wrote since the latest backup are not in it, and erasing or writing over them with
    only that backup would lose them. ``auto`` then dumps again; ``require`` refuses.
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
    return BackupCheck(take_backup(session, store, meta, progress), True, chip_md5, stale)


def explain_failure(err: Exception, slot_id: str, backup_id: str | None) -> str:
    """One error that names the fault and the board's state, and the way back."""
    from .flasher import PartialWrite

    text = str(err)
    if isinstance(err, PartialWrite):
        text += _way_back(slot_id, backup_id)
    return text


def explain_interruption(
    stop: BaseException,
    report: Any,
    writing: tuple[int, int] | None,
    slot_id: str,
    backup_id: str | None,
) -> str:
    """What a stop signal (Ctrl-C: ``KeyboardInterrupt``; SIGTERM/SIGHUP: ``Terminated``)
    interrupted - the report's last step - and, if a write was cut short (``writing``: the
    session's range not yet verified), the unverified range and the way back. Said once the
    ``with`` blocks have released the relays, which is why the text can say so."""
    from .flasher import describe_ranges

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


# -- boot check -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootCheck:
    ok: bool
    pattern: str
    seconds: float
    console: str


def boot_check(board: Any, pattern: str, timeout: float | None = None) -> BootCheck:
    """Boot the firmware (``run`` sequence) and wait for ``pattern`` on the console."""
    timeout = timeout or board.type.boot_timeout
    t0 = time.monotonic()
    with board.console() as ser:
        board.run()
        seen, text = board.expect(ser, pattern, timeout)
    return BootCheck(seen, pattern, time.monotonic() - t0, text)


def firmware_in(flash: bytes, board_type: Any) -> Any | None:
    """The catalog firmware whose app is the app in ``flash`` (e.g. a backup of the whole chip).

    Apps are compared image by image (header to checksum and digest), so NVS data, SPIFFS and
    0xFF padding around them do not matter.
    """
    apps = {at: flash[at : at + img.length] for at, img in esp_images_in(flash, 0) if img}
    for fw in board_type.firmware:
        data = Path(fw.file).read_bytes()
        for at, img in esp_images_in(data, fw.offset):
            rel = at - fw.offset
            is_app = img and at in apps and at != IMAGE_OFFSETS[0]  # not the shared bootloader
            if is_app and apps[at] == data[rel : rel + img.length]:
                return fw
    return None


# A firmware that boots prints IDF's app start; one that does not, the ROM's complaints.
GENERIC_BOOT = r"(cpu_start|app_start): (Pro cpu start|Project name)"
BOOT_FAILURE = re.compile(r"invalid header|csum err|flash read err|No bootable app")
