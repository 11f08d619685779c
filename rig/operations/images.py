"""Images to write, checked before any relay moves: catalog names or ``FILE@OFFSET``, files,
sha256, 4 KB alignment, fit in the flash, the ESP image headers and their chip id.

Bad input is rejected before the board is touched (:class:`rig.errors.BadInput`): an image for
another chip, or one that overlaps another, never reaches a flasher session.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from rig import config
from rig.errors import BadInput
from rig.esp32 import APP_OFFSET, BOOTLOADER_OFFSET, IMAGE_CHIP_ID, IMAGE_MAGIC, SECTOR
from rig.images.esp_image import EspImage, ImageError, parse_image

__all__ = [
    "IMAGE_OFFSETS",
    "FlashImage",
    "check_image",
    "esp_images_in",
    "firmware_in",
    "parse_offset",
    "resolve_images",
]


@dataclass(frozen=True)
class FlashImage:
    """Bytes to write at an offset; ``source`` is the file or catalog entry they came from."""

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


def resolve_images(specs: list[str], board_type: config.BoardType) -> list[FlashImage]:
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
            images.append(FlashImage(path.name, parse_offset(offset_text), path.read_bytes(), file))
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
        images.append(FlashImage(fw.name, fw.offset, data, str(fw.file)))
    images.sort(key=lambda i: i.offset)
    for image in images:
        check_image(image, board_type.flash_size)
    for a, b in zip(images, images[1:], strict=False):
        if b.offset < a.end:
            raise BadInput(
                f"{a.name} ({a.offset:#x}-{a.end:#x}) overlaps {b.name} at {b.offset:#x}"
            )
    return images


def check_image(image: FlashImage, flash_size: int) -> None:
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
        if parsed.chip_id != IMAGE_CHIP_ID:
            raise BadInput(
                f"{image.name}: the image header at {at:#x} says chip id {parsed.chip_id}, not "
                f"ESP32 ({IMAGE_CHIP_ID}); it is built for another chip"
            )


# Where ESP-IDF puts images: the second-stage bootloader, and the first app partition.
IMAGE_OFFSETS = (BOOTLOADER_OFFSET, APP_OFFSET)


def esp_images_in(data: bytes, offset: int) -> list[tuple[int, EspImage | None]]:
    """``(flash address, parsed image or None if invalid)`` for every ESP image (magic 0xE9)
    that ``data``, written at ``offset``, puts at its start or at a bootloader/app address."""
    found = []
    for at in sorted({offset, *IMAGE_OFFSETS}):
        rel = at - offset
        if 0 <= rel < len(data) and data[rel] == IMAGE_MAGIC:
            try:
                found.append((at, parse_image(data[rel:])))
            except ImageError:
                found.append((at, None))
    return found


def firmware_in(flash: bytes, board_type: config.BoardType) -> config.CatalogFirmware | None:
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
