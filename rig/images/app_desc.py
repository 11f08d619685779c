"""ESP-IDF application description (``esp_app_desc_t``), the app's self-identification.

The 256-byte struct (IDF v3.3 .. v5.x, ``components/esp_app_format``)::

    uint32_t magic_word;        // 0xABCD5432
    uint32_t secure_version;
    uint32_t reserv1[2];
    char     version[32];
    char     project_name[32];
    char     time[16];
    char     date[16];
    char     idf_ver[32];
    uint8_t  app_elf_sha256[32];
    uint32_t reserv2[20];       // IDF >= 5.1 carves efuse/mmu fields out of this; kept raw

The linker places it at the very start of the first DROM segment (vaddr ``0x3F400020``, file
offset ``0x20``), which is where esptool's ``image-info`` and the IDF app's ``cpu_start`` log look
for it. Strings are ``strncpy``-filled: NUL-terminated unless they fill the field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .esp_image import EspImage

__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_SIZE",
    "DROM_END",
    "DROM_START",
    "AppDescriptor",
    "find_app_descriptor",
    "first_drom_segment",
]

APP_DESC_MAGIC = 0xABCD5432
_STRUCT = struct.Struct("<II8s32s32s16s16s32s32s80s")
APP_DESC_SIZE = _STRUCT.size  # 256
DROM_START, DROM_END = 0x3F400000, 0x3F800000  # ESP32ROM.DROM_MAP_START / DROM_MAP_END


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _field(text: str, size: int, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > size:
        raise ValueError(f"{name} {text!r} is longer than {size} bytes")
    return raw


@dataclass(frozen=True)
class AppDescriptor:
    """Decoded ``esp_app_desc_t``; ``pack(parse(b)) == b`` for any valid struct."""

    project_name: str
    version: str
    idf_ver: str
    date: str  # "Jul 20 2020" (__DATE__)
    time: str  # "10:04:12" (__TIME__)
    secure_version: int = 0
    app_elf_sha256: bytes = b"\x00" * 32
    reserv1: bytes = b"\x00" * 8
    reserv2: bytes = b"\x00" * 80

    def pack(self) -> bytes:
        if len(self.app_elf_sha256) != 32:
            raise ValueError("app_elf_sha256 must be 32 bytes")
        return _STRUCT.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            self.reserv1,
            _field(self.version, 32, "version"),
            _field(self.project_name, 32, "project_name"),
            _field(self.time, 16, "time"),
            _field(self.date, 16, "date"),
            _field(self.idf_ver, 32, "idf_ver"),
            self.app_elf_sha256,
            self.reserv2,
        )

    @classmethod
    def parse(cls, data: bytes) -> AppDescriptor:
        """Decode the struct at the start of ``data``; ``ValueError`` if it is not one."""
        if len(data) < APP_DESC_SIZE:
            raise ValueError(f"app descriptor needs {APP_DESC_SIZE} bytes, got {len(data)}")
        (magic, secure, r1, version, project, time, date, idf_ver, elf_sha, r2) = _STRUCT.unpack(
            bytes(data[:APP_DESC_SIZE])
        )
        if magic != APP_DESC_MAGIC:
            raise ValueError(f"bad app descriptor magic {magic:#010x} (want {APP_DESC_MAGIC:#x})")
        return cls(
            project_name=_cstr(project),
            version=_cstr(version),
            idf_ver=_cstr(idf_ver),
            date=_cstr(date),
            time=_cstr(time),
            secure_version=secure,
            app_elf_sha256=elf_sha,
            reserv1=r1,
            reserv2=r2,
        )


def first_drom_segment(image: EspImage) -> bytes | None:
    """Data of the first segment mapped in DROM (esptool's ``image_info`` rule), or None."""
    for seg in image.segments:
        if DROM_START <= seg.addr < DROM_END:
            return seg.data
    return None


def find_app_descriptor(image: EspImage) -> AppDescriptor | None:
    """The app descriptor at the start of the first DROM segment, or None (e.g. a bootloader)."""
    data = first_drom_segment(image)
    if data is None:
        return None
    try:
        return AppDescriptor.parse(data)
    except ValueError:
        return None
