"""Images to write, checked before any relay moves: catalog names or ``FILE@OFFSET``, files,
sha256, 4 KB alignment, fit in the flash, and every ESP image in them checked as esptool's
``image-info`` and the chip check it (magic, segments, chip id, checksum, appended SHA-256
digest; the header's flash size and a bootloader's flash mode against the board type).

:func:`check_placement` then checks what each image is against where it goes (a bootloader at
0x1000, a partition table at 0x8000, an app at the start of an app partition of the board's
table, nothing that is not an app where an app partition starts): writing an app at 0x1000
overwrites the bootloader and the board then prints ``flash read err, 1000``.

Bad input is rejected before the board is touched (:class:`rig.errors.BadInput`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rig import config
from rig.errors import BadInput
from rig.esp32 import (
    APP_OFFSET,
    BLOCK,
    BOOTLOADER_OFFSET,
    IMAGE_MAGIC,
    PARTITION_TABLE_OFFSET,
    SECTOR,
)
from rig.images.info import (
    APP,
    BOOTLOADER,
    BOOTLOADER_REGION,
    MERGED,
    PARTITION_TABLE,
    TABLE_MAGIC,
    ImageInfo,
    flash_size_bytes,
    image_info,
)
from rig.images.partitions import PartitionEntry

__all__ = [
    "FlashImage",
    "PlacementError",
    "check_image",
    "check_overlaps",
    "check_placement",
    "esp_images_in",
    "firmware_in",
    "layout_table",
    "parse_offset",
    "placement_problems",
    "resolve_images",
]

_QUAD = ("qio", "qout")


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


class PlacementError(BadInput):
    """An image whose kind does not belong where it would be written."""


def parse_offset(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise BadInput(f"bad offset {text!r} (use e.g. 0x10000)") from None


def _file_image(spec: str) -> FlashImage:
    file, _, offset_text = spec.rpartition("@")
    path = Path(file).expanduser()
    if not path.is_file():
        raise BadInput(f"{file}: no such file")
    return FlashImage(path.name, parse_offset(offset_text), path.read_bytes(), file)


def _catalog_images(spec: str, board_type: config.BoardType) -> list[FlashImage]:
    """The parts of the catalog entry ``spec``, their files checked first (a ConfigError that
    names the entry, the file and where it looked)."""
    fw = next((f for f in board_type.firmware if f.name == spec), None)
    if fw is None:
        known = ", ".join(f.name for f in board_type.firmware) or "none"
        raise BadInput(
            f"no firmware {spec!r} in the station's catalog for board type {board_type.name} "
            f"(known: {known}; `rig firmware list`), and not FILE@OFFSET"
        )
    fw.check_files()
    return [
        FlashImage(
            fw.name if len(fw.parts) == 1 else f"{fw.name}:{part.file.name}",
            part.offset,
            part.file.read_bytes(),
            str(part.file),
        )
        for part in fw.parts
    ]


def resolve_images(specs: list[str], board_type: config.BoardType) -> list[FlashImage]:
    """Catalog names or ``FILE@OFFSET`` -> checked images, sorted by offset."""
    if not specs:
        raise BadInput("nothing to write: name a catalog firmware or FILE@OFFSET")
    images = []
    for spec in specs:
        images += [_file_image(spec)] if "@" in spec else _catalog_images(spec, board_type)
    images.sort(key=lambda i: i.offset)
    for image in images:
        check_image(image, board_type)
    check_overlaps(images)
    return images


def check_overlaps(images: Sequence[FlashImage]) -> None:
    """No two of ``images`` (sorted by offset) overlap."""
    for a, b in zip(images, images[1:], strict=False):
        if b.offset < a.end:
            raise BadInput(
                f"{a.name} ({a.offset:#x}-{a.end:#x}) overlaps {b.name} at {b.offset:#x}"
            )


def check_image(image: FlashImage, board_type: config.BoardType) -> None:
    """Alignment, fit, and every ESP image in it: loadable, for an ESP32, and for this board's
    flash (the header's size no bigger; a bootloader's mode one the board is wired for)."""
    flash_size = board_type.flash_size
    if image.offset % SECTOR:
        raise BadInput(f"{image.name}: offset {image.offset:#x} is not 4 KB aligned")
    if not image.data:
        raise BadInput(f"{image.name}: empty file")
    if image.end > flash_size:
        raise BadInput(
            f"{image.name}: {len(image.data)} bytes at {image.offset:#x} end at {image.end:#x}, "
            f"past the {flash_size // 0x100000} MB flash"
        )
    for at, info in esp_images_in(image.data, image.offset, layout_table(board_type)):
        for problem in info.problems + _board_problems(info, board_type):
            raise BadInput(f"{image.name}: the image at {at:#x}: {problem}")


def _board_problems(info: ImageInfo, board_type: config.BoardType) -> tuple[str, ...]:
    img = info.image
    if img is None:
        return ()
    problems = []
    size = flash_size_bytes(img.flash_size)
    if size is not None and size > board_type.flash_size:
        problems.append(
            f"its header says a {img.flash_size} flash, the {board_type.name} has "
            f"{board_type.flash_size >> 20} MB"
        )
    mode = board_type.flash.mode
    if info.kind == BOOTLOADER and mode not in (None, *_QUAD) and img.flash_mode in _QUAD:
        problems.append(
            f"a bootloader for {img.flash_mode.upper()} flash cannot boot the {board_type.name}, "
            f"whose flash is wired for {mode.upper()}"
        )
    return tuple(problems)


def layout_table(board_type: config.BoardType) -> list[PartitionEntry]:
    """The board type's known layout as partition entries (its typed ``app``/``data``
    regions; the bootloader and the table are not partitions of a table)."""
    return [
        PartitionEntry.of(r.name[:16], r.type, r.subtype, r.offset, r.size)
        for r in board_type.layout
        if r.type in ("app", "data") and r.subtype is not None
    ]


def esp_images_in(
    data: bytes, offset: int, table: Sequence[PartitionEntry] = ()
) -> list[tuple[int, ImageInfo]]:
    """``(flash address, info)`` for every ESP image (magic 0xE9) that ``data``, written at
    ``offset``, puts at its start, at the bootloader's address or where an app partition of
    ``table`` starts (the first app partition's usual 0x10000 if there is none). The first
    image of a merged file is seen as the bootloader it is; a bootloader longer than the
    0x7000 bytes the ROM loads is a problem (the ROM reports ``flash read err``)."""
    apps = [p.offset for p in table if p.is_app] or [APP_OFFSET]
    found = []
    for at in sorted({offset, BOOTLOADER_OFFSET, *apps}):
        rel = at - offset
        if 0 <= rel < len(data) and data[rel] == IMAGE_MAGIC:
            info = image_info(data[rel:])
            if info.kind == MERGED:
                info = replace(info, kind=BOOTLOADER)
            if info.kind == BOOTLOADER and info.image.length > BOOTLOADER_REGION:
                problem = (
                    f"the bootloader is {info.image.length} bytes, more than the "
                    f"{BOOTLOADER_REGION:#x} the ROM loads"
                )
                info = replace(info, problems=(*info.problems, problem))
            found.append((at, info))
    return found


# -- what goes where --------------------------------------------------------------------------
def placement_problems(image: FlashImage, table: Sequence[PartitionEntry] | None) -> list[str]:
    """Why ``image`` does not belong at its offset (empty: it does). ``table`` is the board's
    partition table (None: unknown; an app then needs a 64 KB aligned offset past the table,
    where ESP-IDF requires app partitions to start)."""
    problems = []
    end = image.end
    apps = [p for p in table if p.is_app] if table is not None else None
    starts = {p.offset: p for p in apps} if apps is not None else {}
    for at, info in esp_images_in(image.data, image.offset, table or ()):
        if at == BOOTLOADER_OFFSET and info.kind != BOOTLOADER:
            problems.append(
                f"an {info.kind} image at {at:#x}, where the second-stage bootloader goes (the "
                f"ROM loads it from there){_app_hint(apps)}"
            )
        elif info.kind == BOOTLOADER and at != BOOTLOADER_OFFSET:
            problems.append(
                f"a bootloader image at {at:#x}: the ROM loads it from {BOOTLOADER_OFFSET:#x}"
            )
        elif info.kind == APP:
            problems += _app_problems(at, info, apps, starts)
    if image.data[:2] == TABLE_MAGIC and image.offset != PARTITION_TABLE_OFFSET:
        problems.append(
            f"a partition table at {image.offset:#x}: the bootloader reads it at "
            f"{PARTITION_TABLE_OFFSET:#x}"
        )
    if image.offset <= PARTITION_TABLE_OFFSET < end:
        rel = PARTITION_TABLE_OFFSET - image.offset
        if image_info(image.data[rel : rel + 0xC00]).kind != PARTITION_TABLE:
            problems.append(
                f"it covers {PARTITION_TABLE_OFFSET:#x}, where the partition table goes, with "
                "something that is not one"
            )
    for start, part in starts.items():
        rel = start - image.offset
        there = image.data[rel : rel + part.size] if 0 <= rel < len(image.data) else b""
        if there[:1] not in (b"", bytes([IMAGE_MAGIC])) and there.strip(b"\xff"):
            problems.append(
                f"it puts data that is not an app image at {start:#x}, where app partition "
                f"{part.label} starts"
            )
    return problems


def _app_problems(
    at: int,
    info: ImageInfo,
    apps: list[PartitionEntry] | None,
    starts: dict[int, PartitionEntry],
) -> list[str]:
    if apps is None:
        if at % BLOCK or at < BLOCK:
            return [
                f"an app image at {at:#x}: app partitions start at 64 KB boundaries past the "
                "partition table"
            ]
        return []
    part = starts.get(at)
    if part is None:
        return [f"an app image at {at:#x}, not the start of an app partition{_app_hint(apps)}"]
    length = info.image.length if info.image is not None else info.size
    if length > part.size:
        return [f"the app ({length} bytes) does not fit partition {part.label} ({part.size:#x})"]
    return []


def _app_hint(apps: list[PartitionEntry] | None) -> str:
    if not apps:
        return ""
    where = ", ".join(f"{p.label} at {p.offset:#x}" for p in apps)
    return f"; apps go to an app partition ({where})"


def check_placement(
    images: Sequence[FlashImage], table: Sequence[PartitionEntry] | None, *, force: bool = False
) -> list[str]:
    """Raise :class:`PlacementError` for the first image that does not belong where it would
    be written (``force``: return the problems instead, to be reported)."""
    problems = [f"{image.name}: {p}" for image in images for p in placement_problems(image, table)]
    if problems and not force:
        raise PlacementError(
            f"{problems[0]} - refusing before any relay moves (--force to write it anyway)"
        )
    return problems


def firmware_in(flash: bytes, board_type: config.BoardType) -> config.CatalogFirmware | None:
    """The catalog firmware whose app is the app in ``flash`` (e.g. a backup of the whole chip).

    Apps are compared image by image (header to checksum and digest), so NVS data, SPIFFS and
    0xFF padding around them do not matter. Entries whose files are missing are skipped.
    """
    table = layout_table(board_type)
    apps = {
        at: flash[at : at + info.image.length]
        for at, info in esp_images_in(flash, 0, table)
        if info.kind == APP and info.image is not None
    }
    for fw in board_type.firmware:
        for part in fw.parts:
            if part.problem() is not None:
                break
            data = part.file.read_bytes()
            for at, info in esp_images_in(data, part.offset, table):
                rel = at - part.offset
                app = info.kind == APP and info.image is not None
                if app and at in apps and apps[at] == data[rel : rel + info.image.length]:
                    return fw
    return None
