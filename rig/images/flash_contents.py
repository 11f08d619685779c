"""Whole flash contents: what a board's flash holds, byte for byte, for the simulator and tests.

A VG-L7X as it leaves the factory (bootloader, partition table, an NVS page of Grbl settings, the
vendor app, a SPIFFS partition of web UI files), the same board after the custom GRBL firmware is
written, and the merged bootloader + table + app file boards like the L7X are re-flashed with.
Offsets are the ESP32's (:mod:`rig.esp32`) and arduino-esp32's ``default.csv``
(:data:`~rig.images.synthetic.DEFAULT_PARTITIONS`). Deterministic like the images.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache, lru_cache

from rig.esp32 import APP_OFFSET, BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET, SECTOR

from .synthetic import (
    DEFAULT_PARTITIONS,
    FLASH_SIZE_4MB,
    SyntheticFirmware,
    bootloader_image,
    custom_grbl_app,
    firmware_app,
    partition_table,
    stream,
    vendor_l7x_app,
)

__all__ = ["custom_grbl_flash", "merged_firmware", "vendor_l7x_flash"]


def _nvs_entry(ns: int, dtype: int, key: str, value: bytes) -> bytes:
    """An NVS item: ns, type, span 1, chunk 0xFF, crc32, key[16], data[8] (0xFF padded)."""
    head = bytes((ns, dtype, 1, 0xFF))
    body = key.encode().ljust(16, b"\x00")[:15] + b"\x00" + value.ljust(8, b"\xff")
    return head + struct.pack("<I", zlib.crc32(head + body, 0xFFFFFFFF)) + body


def _nvs_page() -> bytes:
    """One ACTIVE NVS page (IDF nvs_page.hpp): header, entry-state bitmap, items, 0xFF rest.

    Header: state 0xFFFFFFFE (ACTIVE), seq 0, version 0xFE, 19 x 0xFF, crc32 of bytes 4..27.
    Bitmap: two bits per entry, 0b10 = written.
    """
    u8, u16, i32 = 0x01, 0x02, 0x14
    items = [
        _nvs_entry(0, u8, "nvs.net80211", b"\x01"),
        _nvs_entry(0, u8, "phy", b"\x02"),
        _nvs_entry(0, u8, "Grbl_ESP32", b"\x03"),
        _nvs_entry(1, u8, "opmode", b"\x02"),
        _nvs_entry(1, u8, "ap.chan", b"\x01"),
        _nvs_entry(1, u16, "bcn.interval", struct.pack("<H", 100)),
        _nvs_entry(2, i32, "cal_version", struct.pack("<i", 4397)),
    ]
    settings = [("StepPulse", 10), ("IdleDelay", 255), ("LaserMode", 1), ("MaxSpindle", 1000)]
    settings += [(f"{axis}/StepsPerMm", 80_000) for axis in "XYZ"]
    settings += [(f"{axis}/MaxRate", 600_000) for axis in "XYZ"]
    items += [_nvs_entry(3, i32, key, struct.pack("<i", value)) for key, value in settings]
    header = struct.pack("<II", 0xFFFFFFFE, 0) + b"\xfe" + b"\xff" * 19
    header += struct.pack("<I", zlib.crc32(header[4:28], 0xFFFFFFFF))
    bitmap = bytearray(b"\xff" * 32)
    for i in range(len(items)):
        bitmap[i // 4] &= ~(1 << ((i % 4) * 2)) & 0xFF
    page = header + bytes(bitmap) + b"".join(items)
    return page + b"\xff" * (SECTOR - len(page))


def _spiffs_data(size: int) -> bytes:
    """SPIFFS-like content: 256-byte pages, each an object header (obj id, span index, flags)
    followed by high-entropy data (gzip'd web UI files are what these partitions hold)."""
    raw = stream("spiffs/vg-l7x", size)
    pages = []
    for n in range(size // 256):
        obj, span = 1 + (n // 64) % 40, n % 64
        pages.append(struct.pack("<HHB", obj, span, 0xF8) + raw[n * 256 + 5 : (n + 1) * 256])
    return b"".join(pages)


def _flash(size: int, parts: list[tuple[int, bytes]]) -> bytes:
    if size < FLASH_SIZE_4MB:
        raise ValueError(f"flash of {size:#x} bytes is smaller than the 4 MB layout")
    flash = bytearray(b"\xff" * size)
    for offset, data in parts:
        flash[offset : offset + len(data)] = data
    return bytes(flash)


@lru_cache(maxsize=4)
def vendor_l7x_flash(size: int = FLASH_SIZE_4MB) -> bytes:
    """A whole flash as a VG-L7X leaves the factory: bootloader, table, NVS, vendor app, spiffs."""
    spiffs = DEFAULT_PARTITIONS[-1]
    return _flash(
        size,
        [
            (BOOTLOADER_OFFSET, bootloader_image()),
            (PARTITION_TABLE_OFFSET, partition_table()),
            (DEFAULT_PARTITIONS[0].offset, _nvs_page()),
            (APP_OFFSET, vendor_l7x_app()),
            (spiffs.offset, _spiffs_data(spiffs.size)),
        ],
    )


@cache
def merged_firmware(fw: SyntheticFirmware) -> bytes:
    """Bootloader + partition table + app as one file to write at :data:`BOOTLOADER_OFFSET`.

    What ``esptool merge-bin 0x1000 bootloader.bin 0x8000 partitions.bin 0x10000 app.bin``
    makes (gaps filled with 0xFF): the complete set a board needs to boot after a chip erase,
    which is how firmware for boards like the L7X is distributed and catalogued.
    """
    parts = [
        (BOOTLOADER_OFFSET, bootloader_image()),
        (PARTITION_TABLE_OFFSET, partition_table()),
        (APP_OFFSET, firmware_app(fw)),
    ]
    end = APP_OFFSET + len(parts[-1][1])
    return _flash(FLASH_SIZE_4MB, parts)[BOOTLOADER_OFFSET:end]


@lru_cache(maxsize=4)
def custom_grbl_flash(size: int = FLASH_SIZE_4MB) -> bytes:
    """A whole flash with the custom GRBL app (same bootloader and table), otherwise erased."""
    return _flash(
        size,
        [
            (BOOTLOADER_OFFSET, bootloader_image()),
            (PARTITION_TABLE_OFFSET, partition_table()),
            (APP_OFFSET, custom_grbl_app()),
        ],
    )
