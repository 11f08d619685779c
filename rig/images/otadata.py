"""The otadata partition: which app partition ESP-IDF's second-stage bootloader starts.

Facts (ESP-IDF ``bootloader_common.c`` / ``bootloader_utility.c``, v3.3 .. v5.x; ``otatool.py``):

* otadata is two flash sectors (0x2000 bytes); each starts with an ``esp_ota_select_entry_t``
  of 32 bytes: ``uint32 ota_seq; uint8 seq_label[20]; uint32 ota_state; uint32 crc`` with
  ``crc = crc32_le(UINT32_MAX, &ota_seq, 4)`` (otatool: ``binascii.crc32(pack("<I", seq),
  0xFFFFFFFF)``).
* An entry is valid when ``ota_seq != 0xFFFFFFFF``, its ``ota_state`` is neither INVALID (3) nor
  ABORTED (4), and the CRC matches (``bootloader_common_ota_select_valid``).
* Selection (``bootloader_utility_get_selected_boot_partition``): no otadata partition ->
  factory; no valid entry -> factory if the table has one, else ``ota_0``; otherwise the valid
  entry with the highest ``ota_seq`` selects ``ota_[(seq - 1) % number of OTA app partitions]``.

An erased otadata therefore boots factory, else ``ota_0``: what Arduino's ``boot_app0.bin`` and
esptool's ``erase-region 0xe000 0x2000`` rely on. :func:`otadata_selecting` makes the otadata
that selects a given app partition: erased when that is enough, else one entry.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence

from .partitions import APP_SUBTYPES, DATA_SUBTYPES, TYPES, PartitionEntry

__all__ = [
    "OTADATA_SIZE",
    "boot_partition",
    "otadata_partition",
    "otadata_selecting",
    "selected_seq",
]

Reader = Callable[[int, int], bytes]

OTADATA_SIZE = 0x2000  # two sectors, one esp_ota_select_entry_t at the start of each
_SECTOR = 0x1000
_ENTRY = struct.Struct("<I20sII")  # ota_seq, seq_label, ota_state, crc
_UNSET = 0xFFFFFFFF
_REJECTED_STATES = (3, 4)  # ESP_OTA_IMG_INVALID, ESP_OTA_IMG_ABORTED


def _crc(seq: int) -> int:
    return zlib.crc32(struct.pack("<I", seq), _UNSET)


def selected_seq(raw: bytes) -> int | None:
    """The highest valid ``ota_seq`` of the two entries in ``raw`` (the otadata's 0x2000
    bytes), or None when neither is valid (erased, corrupt, rejected)."""
    valid = []
    for at in (0, _SECTOR):
        seq, _, state, crc = _ENTRY.unpack_from(raw.ljust(OTADATA_SIZE, b"\xff"), at)
        if seq != _UNSET and state not in _REJECTED_STATES and crc == _crc(seq):
            valid.append(seq)
    return max(valid) if valid else None


def otadata_partition(table: Sequence[PartitionEntry]) -> PartitionEntry | None:
    return next(
        (p for p in table if p.type == TYPES["data"] and p.subtype == DATA_SUBTYPES["ota"]), None
    )


def _factory(table: Sequence[PartitionEntry]) -> PartitionEntry | None:
    return next((p for p in table if p.is_app and p.subtype == APP_SUBTYPES["factory"]), None)


def _ota_slots(table: Sequence[PartitionEntry]) -> list[PartitionEntry]:
    return sorted((p for p in table if p.ota_index is not None), key=lambda p: p.subtype)


def boot_partition(table: Sequence[PartitionEntry], read: Reader) -> PartitionEntry | None:
    """The app partition the bootloader selects first for ``table``, reading otadata through
    ``read(offset, size)`` (None: the table has no app it could select). Whether that app's
    image is valid is the caller's business: the bootloader then falls back to another."""
    factory, slots = _factory(table), _ota_slots(table)
    otadata = otadata_partition(table)
    if otadata is None or not slots:
        return factory
    seq = selected_seq(read(otadata.offset, OTADATA_SIZE))
    if seq is None:
        return factory if factory is not None else slots[0]
    index = (seq - 1) % len(slots)
    return next((p for p in slots if p.ota_index == index), None)


def otadata_selecting(table: Sequence[PartitionEntry], target: PartitionEntry) -> bytes:
    """The 0x2000 bytes of otadata that make the bootloader select ``target``: erased if that
    is enough (factory, or ``ota_0`` of a table without factory), else one valid entry whose
    ``ota_seq`` selects ``target``; ValueError if no otadata can (an app that is not in the
    table, an OTA slot past a gap in the numbering)."""
    erased = b"\xff" * OTADATA_SIZE
    if boot_partition(table, lambda _o, n: b"\xff" * n) == target:
        return erased
    if target.ota_index is not None:
        seq = target.ota_index + 1  # (seq - 1) % count == ota_index when the slots have no gap
        entry = _ENTRY.pack(seq, b"\xff" * 20, _UNSET, _crc(seq))
        raw = entry + erased[len(entry) :]
        if boot_partition(table, lambda offset, n: raw[:n]) == target:
            return raw
    raise ValueError(f"no otadata makes the bootloader select {target.label} ({target.offset:#x})")
