"""What a file to flash is, checked the way esptool's ``image-info`` and the ESP32 check it.

Kinds, from the content (what each ESP32 stage accepts):

* ``bootloader`` - an ESP image whose segments all load into RAM: the ROM cannot map flash,
  so the second-stage bootloader it loads from 0x1000 is RAM-only;
* ``app`` - an ESP image with segments in the flash-mapped DROM / IROM ranges (esptool's
  ``ESP32ROM.DROM_MAP_START`` .. ``IROM_MAP_END``): an app runs from flash through the MMU;
* ``merged`` - a bootloader followed by more than the bootloader's region (0x7000 bytes), i.e.
  what ``esptool merge-bin`` writes from 0x1000 (bootloader, partition table, app);
* ``partition table`` - ESP-IDF's binary table (entry magic ``AA 50``);
* ``data`` - anything else (an NVS or SPIFFS image, otadata such as Arduino's boot_app0.bin).

``problems`` are what esptool's ``image-info`` or the chip rejects: a header that does not
parse (magic, segment count, a segment running past the end), a chip id other than the
ESP32's, a checksum or an appended SHA-256 digest that does not match the bytes. Whether an
image fits the board it goes to (flash size and mode, offset) is decided where the board is
known (:mod:`rig.operations.images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.esp32 import BOOTLOADER_OFFSET, IMAGE_CHIP_ID, IMAGE_MAGIC, PARTITION_TABLE_OFFSET

from .app_desc import DROM_END, DROM_START, AppDescriptor, find_app_descriptor
from .esp_image import EspImage, ImageError, Segment, parse_image
from .partitions import PartitionEntry, PartitionTableError, parse_table

__all__ = [
    "APP",
    "BOOTLOADER",
    "DATA",
    "MERGED",
    "PARTITION_TABLE",
    "TABLE_MAGIC",
    "ImageInfo",
    "flash_size_bytes",
    "image_info",
    "is_mapped",
]

BOOTLOADER, APP, MERGED, PARTITION_TABLE, DATA = (
    "bootloader",
    "app",
    "merged",
    "partition table",
    "data",
)
IROM_START, IROM_END = 0x400D0000, 0x40400000  # ESP32ROM.IROM_MAP_START / IROM_MAP_END
BOOTLOADER_REGION = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET  # 0x7000: all the ROM loads
TABLE_MAGIC = b"\xaa\x50"  # the first partition entry's magic


def is_mapped(segment: Segment) -> bool:
    """A segment the flash MMU maps (DROM data or IROM code): only apps have them."""
    return DROM_START <= segment.addr < DROM_END or IROM_START <= segment.addr < IROM_END


def flash_size_bytes(name: str) -> int | None:
    """``"4MB"`` (an image header's flash size) -> bytes; None for an unknown code."""
    return int(name[:-2]) << 20 if name.endswith("MB") and name[:-2].isdigit() else None


@dataclass(frozen=True)
class ImageInfo:
    """A file's kind, its parsed ESP image (if it starts with one), the app's descriptor (IDF
    apps since v3.3; Arduino 1.0 sketches have none), its partition table (a table file), and
    what makes it unloadable."""

    kind: str
    size: int
    image: EspImage | None = None
    app: AppDescriptor | None = None
    table: tuple[PartitionEntry, ...] | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """What ``rig firmware show`` prints: the header fields and segments as esptool's
        ``image-info`` lists them."""
        out: dict[str, Any] = {"kind": self.kind, "size": self.size, "problems": self.problems}
        img = self.image
        if img is not None:
            out["header"] = {
                "chip_id": img.chip_id,
                "flash_mode": img.flash_mode,
                "flash_size": img.flash_size,
                "flash_freq": img.flash_freq,
                "entry": f"{img.entry:#010x}",
                "min_chip_rev": f"v{img.min_rev_full // 100}.{img.min_rev_full % 100}",
                "checksum": "valid" if img.checksum_ok else "INVALID",
                "sha256_digest": {None: "none", True: "valid", False: "INVALID"}[img.sha256_ok],
                "length": img.length,
            }
            out["segments"] = [
                {
                    "addr": f"{seg.addr:#010x}",
                    "length": len(seg.data),
                    "map": "flash-mapped" if is_mapped(seg) else "RAM",
                }
                for seg in img.segments
            ]
        if self.app is not None:
            out["app"] = {
                "project": self.app.project_name,
                "version": self.app.version,
                "idf": self.app.idf_ver,
                "built": f"{self.app.date} {self.app.time}",
            }
        if self.table is not None:
            out["partitions"] = [
                {
                    "label": p.label,
                    "type": p.type_name,
                    "subtype": p.subtype_name,
                    "offset": f"{p.offset:#x}",
                    "size": f"{p.size:#x}",
                }
                for p in self.table
            ]
        return out


def _image_problems(img: EspImage) -> list[str]:
    problems = []
    if img.chip_id != IMAGE_CHIP_ID:
        problems.append(
            f"the header says chip id {img.chip_id}, not ESP32 ({IMAGE_CHIP_ID}): it is built "
            "for another chip"
        )
    if not img.checksum_ok:
        problems.append(
            f"checksum {img.checksum:#04x} does not match the segments "
            f"({img.calculated_checksum:#04x}): the image is corrupt"
        )
    if img.sha256_ok is False:
        problems.append(
            "the appended SHA-256 digest does not match the image: corrupt, or changed after "
            "the build"
        )
    return problems


def image_info(data: bytes) -> ImageInfo:
    """The kind of ``data`` and what makes it unloadable (see the module docstring)."""
    size = len(data)
    if data[:1] == bytes([IMAGE_MAGIC]):
        try:
            img = parse_image(data)
        except ImageError as err:
            return ImageInfo("ESP image", size, problems=(f"not a loadable ESP image: {err}",))
        if any(is_mapped(seg) for seg in img.segments):
            kind = APP
        else:
            kind = MERGED if size > BOOTLOADER_REGION else BOOTLOADER
        app = find_app_descriptor(img) if kind == APP else None
        return ImageInfo(kind, size, img, app, problems=tuple(_image_problems(img)))
    if data[:2] == TABLE_MAGIC:
        try:
            table = tuple(parse_table(data))
        except PartitionTableError as err:
            problem = f"not a valid partition table: {err}"
            return ImageInfo(PARTITION_TABLE, size, problems=(problem,))
        return ImageInfo(PARTITION_TABLE, size, table=table)
    return ImageInfo(DATA, size)
