"""A station's firmware catalog at work: import a user's files (``rig firmware add``), and what
an entry is, checked the way the rig checks an image before writing it (``rig firmware show``).

Importing checks every file as :func:`rig.operations.images.check_image` does (esptool's
``image-info`` checks: magic, segments, chip id, checksum, appended SHA-256 digest; the header's
flash size and mode against the board type) and where it goes (:func:`placement_problems`: an
app at the start of an app partition of the board's layout), then copies the files into
``<last firmware directory>/<name>/`` and appends the entry, its sha256 pinned, to that
directory's ``catalog.yaml``. Nothing is copied or written if any check fails. The offset can be
left out for a bootloader (0x1000), a partition table (0x8000) and an app (the app partition the
board's layout boots: factory, else ota_0). A ``flasher_args.json`` (what ``idf.py build``
writes) stands for the files it lists.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import config
from rig.errors import BadInput
from rig.esp32 import BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET
from rig.images.info import APP, BOOTLOADER, MERGED, PARTITION_TABLE, image_info
from rig.images.otadata import boot_partition
from rig.operations.images import (
    FlashImage,
    check_image,
    check_overlaps,
    esp_images_in,
    layout_table,
    parse_offset,
    placement_problems,
)

__all__ = ["PartInfo", "describe_entry", "import_firmware", "parse_parts"]


def parse_parts(files: Sequence[str], offset: str | None) -> list[tuple[Path, int | None]]:
    """``FILE``, ``FILE@OFFSET`` or a ``flasher_args.json`` -> ``(path, offset or None)``;
    ``offset`` (``--offset``) applies to a single FILE given without one."""
    if offset is not None and (len(files) != 1 or "@" in files[0]):
        raise BadInput("--offset goes with a single FILE given without @OFFSET")
    parts: list[tuple[Path, int | None]] = []
    for spec in files:
        text, at, off = spec.rpartition("@") if "@" in spec else (spec, "", None)
        path = Path(text).expanduser()
        if not path.is_file():
            raise BadInput(f"{text}: no such file")
        if path.suffix == ".json":
            parts += _flasher_args(path)
            continue
        value = off if at else offset
        parts.append((path, None if value is None else parse_offset(value)))
    return parts


def _flasher_args(path: Path) -> list[tuple[Path, int | None]]:
    """The files an ESP-IDF build's ``flasher_args.json`` lists (``"flash_files": {"0x1000":
    "bootloader/bootloader.bin", ...}``), relative to its directory."""
    try:
        files = json.loads(path.read_text())["flash_files"]
        return [(path.parent / name, parse_offset(at)) for at, name in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BadInput(f"{path}: not a flasher_args.json with flash_files ({err})") from None


def _default_offset(path: Path, data: bytes, board_type: config.BoardType) -> int:
    kind = image_info(data).kind
    if kind in (BOOTLOADER, MERGED):
        return BOOTLOADER_OFFSET
    if kind == PARTITION_TABLE:
        return PARTITION_TABLE_OFFSET
    if kind == APP:
        app = boot_partition(layout_table(board_type), lambda _o, n: b"\xff" * n)
        if app is not None:
            return app.offset
    raise BadInput(f"{path.name} is {kind}: give its offset (FILE@OFFSET or --offset)")


def _images(parts: list[tuple[Path, int | None]], board_type: config.BoardType) -> list[FlashImage]:
    """Checked images of the parts (bad input if one fails a check or is misplaced)."""
    images = []
    for path, offset in parts:
        data = path.read_bytes()
        at = offset if offset is not None else _default_offset(path, data, board_type)
        image = FlashImage(path.name, at, data, str(path))
        check_image(image, board_type)
        problems = placement_problems(image, layout_table(board_type) or None)
        if problems:
            raise BadInput(f"{path.name} at {at:#x}: {problems[0]}")
        images.append(image)
    images.sort(key=lambda i: i.offset)
    check_overlaps(images)
    return images


def import_firmware(
    station: config.Station,
    files: Sequence[str],
    *,
    name: str | None = None,
    offset: str | None = None,
    board: str | None = None,
    console: str | None = None,
) -> config.CatalogFirmware:
    """Check ``files`` for ``board`` (default: the board type of the station's first slot),
    copy them into the station's last firmware directory and add the entry to its catalog;
    returns the entry as the station now loads it. Bad input changes nothing."""
    board_type = _board(station, board)
    images = _images(parse_parts(files, offset), board_type)
    apps = [i for i in images if image_info(i.data).kind == APP]
    name = name or Path((apps or images)[-1].name).stem
    if any(fw.name == name for fw in station.catalog):
        raise BadInput(f"the station's catalog already has a firmware named {name!r}: --name")
    directory = station.firmware_dirs[-1]
    catalog = directory / config.CATALOG_FILE
    folder = directory / name
    if folder.exists():
        raise BadInput(f"{folder} exists already: choose another --name or move it away")
    entry = config.entry_yaml(
        name,
        board_type.name,
        [(f"{name}/{image.name}", image.offset, image.sha256) for image in images],
        console,
        "imported by rig firmware add from " + ", ".join(image.source for image in images),
    )
    old = catalog.read_text(encoding="utf-8") if catalog.exists() else None
    folder.mkdir(parents=True)
    try:
        for image in images:
            (folder / image.name).write_bytes(image.data)
        _write(catalog, config.appended_catalog(catalog, entry))
        entries = config.load_catalogs(station.firmware_dirs)  # the station checked the rest
    except (config.ConfigError, OSError) as err:
        _undo(folder, catalog, old)
        raise BadInput(f"cannot add {name} to {catalog}: {err}") from err
    return next(fw for fw in entries if fw.name == name)


def _board(station: config.Station, board: str | None) -> config.BoardType:
    name = board or station.slots[0].board
    if name not in station.boards:
        known = ", ".join(sorted(station.boards))
        raise BadInput(f"station {station.name} has no {name} slot (board types: {known})")
    return station.boards[name]


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temp file, fsynced, renamed)."""
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)


def _undo(folder: Path, catalog: Path, old: str | None) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if old is None:
        catalog.unlink(missing_ok=True)
    else:
        _write(catalog, old)


# -- rig firmware show -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PartInfo:
    """One part of an entry as ``rig firmware show`` reports it."""

    file: str
    offset: int
    sha256: str
    status: str  # "ok", or why the file cannot be used
    images: list[dict[str, Any]]  # every ESP image it puts in flash: address, partition, info
    problems: list[str]  # what the write would refuse (image checks, placement)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "offset": self.offset,
            "sha256": self.sha256,
            "status": self.status,
            "images": self.images,
            "problems": self.problems,
        }


def describe_entry(fw: config.CatalogFirmware, board_type: config.BoardType) -> list[PartInfo]:
    """Each part of ``fw``: its file's state, the ESP images it holds (image-info) and where
    they land in the board's layout, and what a write would refuse."""
    table = layout_table(board_type)
    out = []
    for part in fw.parts:
        status = part.problem() or "ok"
        images: list[dict[str, Any]] = []
        problems: list[str] = []
        if status == "ok":
            data = part.file.read_bytes()
            image = FlashImage(part.file.name, part.offset, data, str(part.file))
            for at, info in esp_images_in(data, part.offset, table):
                where = next((p.label for p in table if p.offset == at), None)
                images.append({"address": at, "partition": where, **info.as_dict()})
            try:
                check_image(image, board_type)
            except BadInput as err:
                problems.append(str(err))
            problems += placement_problems(image, table or None)
        out.append(PartInfo(str(part.file), part.offset, part.sha256, status, images, problems))
    return out
