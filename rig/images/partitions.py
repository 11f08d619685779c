"""ESP-IDF binary partition table (what ``gen_esp32part.py`` writes at 0x8000).

Format facts (``gen_esp32part.py`` and the bootloader's ``esp_partition_table_verify``):

* Up to ``0xC00`` bytes of 32-byte entries ``<2sBBII16sI``: magic ``AA 50`` (LE16 ``0x50AA``),
  type, subtype, offset, size, label (16 bytes, NUL padded), flags (bit 0 encrypted, bit 1
  readonly).
* Optionally an MD5 entry: ``EB EB`` + 14 x ``FF`` + MD5 of all preceding entry bytes. Both
  gen_esp32part and the bootloader check it only when present.
* End: an entry whose magic is ``0xFFFF`` with type and subtype ``0xFF``; the rest of the
  0xC00 bytes are ``0xFF``. An erased table is therefore a *valid, empty* table to the bootloader.

The bootloader does not reject overlapping partitions (gen_esp32part does), so
:func:`parse_table` checks overlaps only when asked.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from rig.errors import BadInput
from rig.esp32 import APP_SUBTYPES, DATA_SUBTYPES, PARTITION_TYPES

__all__ = [
    "APP_SUBTYPES",
    "DATA_SUBTYPES",
    "FLAG_ENCRYPTED",
    "FLAG_READONLY",
    "PARTITION_TABLE_MAX_LEN",
    "TYPES",
    "PartitionEntry",
    "PartitionTableError",
    "build_table",
    "find_boot_app",
    "parse_table",
]

PARTITION_TABLE_MAX_LEN = 0xC00
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
_ENTRY = struct.Struct("<2sBBII16sI")
ENTRY_LEN = _ENTRY.size  # 32
FLAG_ENCRYPTED = 0x1
FLAG_READONLY = 0x2

TYPES = PARTITION_TYPES
_SUBTYPES = {TYPES["app"]: APP_SUBTYPES, TYPES["data"]: DATA_SUBTYPES}


class PartitionTableError(BadInput):
    """A table that fails verification. ``kind``: "magic", "md5", "end" (no end marker),
    "overlap", or "layout" (left to callers that know the chip size); ``index`` is the
    offending entry, ``value`` the bad magic (kind "magic")."""

    def __init__(
        self, reason: str, *, kind: str, index: int | None = None, value: int | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.index = index
        self.value = value


def _lookup(table: dict[str, int], value: int) -> str | None:
    return next((name for name, code in table.items() if code == value), None)


@dataclass(frozen=True)
class PartitionEntry:
    """One partition. ``type``/``subtype`` are the raw codes; see :meth:`of` for names."""

    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @classmethod
    def of(
        cls,
        label: str,
        type: str | int,
        subtype: str | int,
        offset: int,
        size: int,
        flags: int = 0,
    ) -> PartitionEntry:
        """Build from CSV-style names: ``of("nvs", "data", "nvs", 0x9000, 0x5000)``."""
        t = TYPES[type] if isinstance(type, str) else type
        if isinstance(subtype, str):
            try:
                st = _SUBTYPES[t][subtype]
            except KeyError:
                raise ValueError(f"unknown subtype {subtype!r} for type {type!r}") from None
        else:
            st = subtype
        return cls(label, t, st, offset, size, flags)

    @property
    def type_name(self) -> str:
        return _lookup(TYPES, self.type) or f"{self.type:#04x}"

    @property
    def subtype_name(self) -> str:
        return _lookup(_SUBTYPES.get(self.type, {}), self.subtype) or f"{self.subtype:#04x}"

    @property
    def is_app(self) -> bool:
        return self.type == TYPES["app"]

    @property
    def ota_index(self) -> int | None:
        """N for an ``ota_N`` app partition, else None."""
        if self.is_app and 0x10 <= self.subtype <= 0x1F:
            return self.subtype - 0x10
        return None

    @property
    def end(self) -> int:
        return self.offset + self.size

    def pack(self) -> bytes:
        label = self.label.encode("utf-8")
        if len(label) > 16:
            raise ValueError(f"partition label {self.label!r} is longer than 16 bytes")
        return _ENTRY.pack(
            ENTRY_MAGIC, self.type, self.subtype, self.offset, self.size, label, self.flags
        )


def build_table(entries: Iterable[PartitionEntry], *, md5: bool = True) -> bytes:
    """The 0xC00-byte table: entries, the MD5 entry, 0xFF fill (gen_esp32part ``to_binary``)."""
    body = b"".join(e.pack() for e in entries)
    if md5:
        body += MD5_MAGIC + b"\xff" * 14 + hashlib.md5(body).digest()
    if len(body) >= PARTITION_TABLE_MAX_LEN:  # room for at least the end marker
        raise ValueError(f"partition table of {len(body)} bytes is too long")
    return body + b"\xff" * (PARTITION_TABLE_MAX_LEN - len(body))


def parse_table(data: bytes, *, check_overlap: bool = True) -> list[PartitionEntry]:
    """Entries up to the end marker, verifying the MD5 entry if there is one.

    Raises :class:`PartitionTableError` on a bad entry magic, an MD5 mismatch, a missing end
    marker, and (if ``check_overlap``) overlapping partitions.
    """
    data = bytes(data[:PARTITION_TABLE_MAX_LEN])
    entries: list[PartitionEntry] = []
    for index in range(len(data) // ENTRY_LEN):
        raw = data[index * ENTRY_LEN : (index + 1) * ENTRY_LEN]
        magic = raw[:2]
        if magic == ENTRY_MAGIC:
            _, t, st, offset, size, label, flags = _ENTRY.unpack(raw)
            name = label.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
            entries.append(PartitionEntry(name, t, st, offset, size, flags))
        elif magic == MD5_MAGIC:
            want = hashlib.md5(data[: index * ENTRY_LEN]).digest()
            if raw[16:] != want:
                raise PartitionTableError(
                    f"incorrect md5 checksum (entry {index}: stored {raw[16:].hex()}, "
                    f"computed {want.hex()})",
                    kind="md5",
                    index=index,
                )
        elif magic == b"\xff\xff" and raw[2] == 0xFF and raw[3] == 0xFF:
            break
        else:
            value = int.from_bytes(magic, "little")
            raise PartitionTableError(
                f"partition {index} invalid magic number {value:#x}",
                kind="magic",
                index=index,
                value=value,
            )
    else:
        raise PartitionTableError("partition table has no terminating entry", kind="end")

    if check_overlap:
        ordered = sorted(enumerate(entries), key=lambda ie: ie[1].offset)
        for (_, a), (j, b) in zip(ordered, ordered[1:], strict=False):
            if b.offset < a.end:
                raise PartitionTableError(
                    f"partition {b.label!r} at {b.offset:#x} overlaps {a.label!r} "
                    f"({a.offset:#x}..{a.end:#x})",
                    kind="overlap",
                    index=j,
                )
    return entries


def find_boot_app(entries: Iterable[PartitionEntry]) -> PartitionEntry | None:
    """The app the bootloader starts when otadata is absent or erased: factory, else ota_0
    (the lowest-numbered OTA slot here), else None."""
    apps = [e for e in entries if e.is_app]
    factory = next((e for e in apps if e.subtype == APP_SUBTYPES["factory"]), None)
    if factory is not None:
        return factory
    ota = sorted((e for e in apps if e.ota_index is not None), key=lambda e: e.subtype)
    return ota[0] if ota else None
