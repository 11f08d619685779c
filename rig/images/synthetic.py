"""Deterministic synthetic firmware: valid ESP32 images and whole flash contents.

The project ships no third-party binaries, so the bootloader, the "vendor" app and the custom
GRBL app are generated here. Every byte derives from fixed strings through SHAKE-256 (never the
``random`` module or the clock), so the same call returns the same bytes on every machine and
Python version, and sha256 values in board configs stay valid forever.

**Console-script convention.** The simulator cannot execute Xtensa code, so what a firmware
prints is carried as data inside its image. Right after the 256-byte ``esp_app_desc_t`` at the
start of the first DROM segment sits::

    b"RIGCONSOLE\\0"  LE16 length  UTF-8 text (lines joined by "\\n")

:func:`console_script` extracts it; the simulated board "runs" a firmware by printing those lines
after the ESP-IDF startup log. An image without the block (e.g. a real firmware) boots silently.

Flash layout follows arduino-esp32's ``default.csv`` (which Grbl_Esp32 builds used): bootloader
at 0x1000, partition table at 0x8000, nvs, otadata (left erased, so the bootloader falls back to
``ota_0``), app0/app1 OTA slots, spiffs.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache

from .app_desc import APP_DESC_SIZE, AppDescriptor, first_drom_segment
from .esp_image import EspImage, Segment, build_image
from .partitions import PartitionEntry, build_table

__all__ = [
    "APP_OFFSET",
    "BOOTLOADER_OFFSET",
    "CONSOLE_MAGIC",
    "CUSTOM_GRBL",
    "DEFAULT_PARTITIONS",
    "FLASH_SIZE_4MB",
    "PARTITION_TABLE_OFFSET",
    "VENDOR_L7X",
    "Firmware",
    "app_image",
    "bootloader_image",
    "console_block",
    "console_script",
    "custom_grbl_app",
    "custom_grbl_flash",
    "merged_firmware",
    "firmware_app",
    "partition_table",
    "vendor_l7x_app",
    "vendor_l7x_flash",
]

BOOTLOADER_OFFSET = 0x1000
PARTITION_TABLE_OFFSET = 0x8000
APP_OFFSET = 0x10000
FLASH_SIZE_4MB = 0x400000

CONSOLE_MAGIC = b"RIGCONSOLE\x00"
_CONSOLE_LEN = struct.Struct("<H")

# Segment load addresses an ESP-IDF app uses (esp32 memory map / esptool ESP32ROM.MEMORY_MAP).
DROM_ADDR = 0x3F400020  # flash-mapped rodata; +0x20 = file offset of the first segment's data
DRAM_ADDR = 0x3FFB0000
IRAM_ADDR = 0x40080000
IROM_ADDR = 0x400D0020  # flash-mapped code; file offset must be == 0x20 modulo the 64 KB MMU page
MMU_PAGE = 0x10000
APP_ENTRY = 0x40081A04  # call_start_cpu0, inside the IRAM segments

# arduino-esp32 tools/partitions/default.csv
DEFAULT_PARTITIONS = (
    PartitionEntry.of("nvs", "data", "nvs", 0x9000, 0x5000),
    PartitionEntry.of("otadata", "data", "ota", 0xE000, 0x2000),
    PartitionEntry.of("app0", "app", "ota_0", 0x10000, 0x140000),
    PartitionEntry.of("app1", "app", "ota_1", 0x150000, 0x140000),
    PartitionEntry.of("spiffs", "data", "spiffs", 0x290000, 0x170000),
)


@dataclass(frozen=True)
class Firmware:
    """A firmware we can synthesise: its identity (app descriptor) and what it prints.

    ``banner`` is the one console line that tells firmwares apart; match it with
    ``re.escape(fw.banner)`` (the two shipped banners differ in the Grbl version).
    """

    name: str
    project_name: str
    version: str
    idf_ver: str
    banner: str
    date: str = "Jan  1 2020"
    time: str = "00:00:00"
    console: tuple[str, ...] = ()
    size_hint: int = 300_000


VENDOR_L7X = Firmware(
    name="vendor-l7x",
    project_name="VigoEsp32",
    version="3.0 Build 20200720",
    idf_ver="v3.3.1",
    banner="Grbl 1.1f ['$' for help]",
    date="Jul 20 2020",
    time="10:04:12",
    console=(
        "[MSG:VigoEsp32 3.0 Build 20200720]",
        "[MSG:Grbl_ESP32 Ver 1.1f Date 20200720]",
        "[MSG:Compiled with ESP32 SDK:v3.3.1]",
        "[MSG:Using machine:VigoTech VG-L7X]",
        "[MSG:Axis count 3]",
        "[MSG:Timed Steps]",
        "[MSG:Init Motors]",
        "[MSG:Laser mode enabled]",
        "[MSG:Local access point VG-L7X started, 192.168.0.1]",
        "[MSG:Captive Portal Started]",
        "[MSG:HTTP Started]",
        "[MSG:TELNET Started 23]",
        "",
        "Grbl 1.1f ['$' for help]",
    ),
    size_hint=900_000,
)

CUSTOM_GRBL = Firmware(
    name="custom-grbl",
    project_name="custom-grbl",
    version="1.3a-rig",
    idf_ver="v4.4.7",
    banner="Grbl 1.3a ['$' for help]",
    date="Mar 14 2024",
    time="16:20:31",
    console=(
        "[MSG:Grbl_ESP32 Ver 1.3a Date 20240314]",
        "[MSG:Compiled with ESP32 SDK:v4.4.7]",
        "[MSG:custom GRBL firmware]",
        "[MSG:Using machine:rig L7X custom]",
        "[MSG:Axis count 3]",
        "[MSG:RMT Steps]",
        "[MSG:Init Motors]",
        "[MSG:Laser mode enabled]",
        "[MSG:WiFi off]",
        "",
        "Grbl 1.3a ['$' for help]",
    ),
    size_hint=300_000,
)


# -- deterministic filler --------------------------------------------------------------------------
def _stream(seed: str, n: int) -> bytes:
    """``n`` reproducible pseudo-random bytes (SHAKE-256 is fixed by FIPS 202, forever)."""
    return hashlib.shake_256(seed.encode()).digest(n)


def _pseudo_code(seed: str, n: int) -> bytes:
    """Code-looking filler: 3-byte words (Xtensa's instruction width), 7 in 8 drawn from a
    224-word vocabulary, so zlib -9 shrinks it to ~63% like real firmware, not ~100% like noise
    (this decides how long a simulated compressed write-flash takes)."""
    words = n // 3 + 1
    raw = _stream(f"code/{seed}", 768 + 4 * words)
    vocab = [raw[i : i + 3] for i in range(0, 768, 3)]
    out = [vocab[raw[k]] if raw[k] < 224 else raw[k + 1 : k + 4] for k in range(768, len(raw), 4)]
    return b"".join(out)[:n]


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _strings(*texts: str) -> bytes:
    """A rodata-like blob of NUL-terminated strings, 4-byte aligned."""
    blob = b"".join(t.encode() + b"\x00" for t in texts)
    return blob + b"\x00" * (-len(blob) % 4)


# -- console script --------------------------------------------------------------------------------
def console_block(lines: tuple[str, ...] | list[str]) -> bytes:
    """Encode a console script (the block :func:`console_script` reads), 4-byte aligned."""
    text = "\n".join(lines).encode("utf-8")
    if len(text) > 0xFFFF:
        raise ValueError("console script longer than 65535 bytes")
    block = CONSOLE_MAGIC + _CONSOLE_LEN.pack(len(text)) + text
    return block + b"\x00" * (-len(block) % 4)


def console_script(image: EspImage) -> list[str] | None:
    """The console lines carried by an app image, or None if it carries none."""
    data = first_drom_segment(image)
    if data is None:
        return None
    at = APP_DESC_SIZE
    if data[at : at + len(CONSOLE_MAGIC)] != CONSOLE_MAGIC:
        return None
    at += len(CONSOLE_MAGIC)
    if at + _CONSOLE_LEN.size > len(data):
        return None
    (length,) = _CONSOLE_LEN.unpack_from(data, at)
    at += _CONSOLE_LEN.size
    if at + length > len(data):
        return None
    text = data[at : at + length].decode("utf-8", errors="replace")
    return text.split("\n") if text else []


# -- images ----------------------------------------------------------------------------------------
@cache
def bootloader_image() -> bytes:
    """A second-stage bootloader image shaped like an ESP-IDF one on real boards.

    Segments (fact sheet section 7): DRAM 0x3FFF0030 (1416 bytes), cache-as-IRAM 0x40078000
    (14804), IRAM 0x40080400 (4, the vector stub) and 0x40080404 (3356); entry 0x4008059C;
    DIO / 40 MHz / 4 MB; SHA-256 appended. The DRAM segment starts with rodata strings, so its
    first byte is not 0x50 and esptool does not mistake it for an ``esp_bootloader_desc_t``
    (which IDF only has since v5.2).
    """
    rodata = _strings(
        "ESP-IDF %s 2nd stage bootloader",
        "compile time %s",
        "Enabling RNG early entropy source...",
        "Partition Table:",
        "## Label            Usage          Type ST Offset   Length",
        "End of partition table",
        "Loaded app from partition at offset 0x%x",
        "No bootable app partitions in the partition table",
    )
    sizes = ((0x3FFF0030, 1416), (0x40078000, 14804), (0x40080400, 4), (0x40080404, 3356))
    segments = []
    for addr, size in sizes:
        data = _pseudo_code(f"bootloader/{addr:08x}", size)
        if addr == 0x3FFF0030:
            data = (rodata + data)[:size]
        segments.append(Segment(addr, data))
    return build_image(segments, entry=0x4008059C, flash_mode="dio", flash_freq="40m")


def app_image(
    *,
    project_name: str,
    version: str,
    idf_ver: str,
    date: str,
    time: str,
    console_lines: tuple[str, ...] | list[str] = (),
    size_hint: int = 300_000,
    entry: int = APP_ENTRY,
    flash_mode: str = "dio",
    flash_freq: str = "40m",
    flash_size: str = "4MB",
) -> bytes:
    """An ESP-IDF-shaped app image, about ``size_hint`` bytes, deterministic in its arguments.

    Segment order mirrors ``esptool elf2image`` output for IDF apps: DROM (app descriptor +
    console script + rodata) at 0x3F400020, DRAM at 0x3FFB0000, a first IRAM chunk at 0x40080000
    sized so that the IROM segment's data lands at a file offset == 0x20 (mod 64 KB) as the
    flash MMU requires, IROM at 0x400D0020, then the rest of IRAM.
    """
    seed = f"{project_name}/{version}/{idf_ver}"
    desc = AppDescriptor(
        project_name=project_name,
        version=version,
        idf_ver=idf_ver,
        date=date,
        time=time,
        app_elf_sha256=hashlib.sha256(f"elf/{seed}".encode()).digest(),
    )
    head = desc.pack() + console_block(tuple(console_lines))
    head += _strings(
        "E (%u) %s: %s",
        "I (%u) %s: %s",
        f"{project_name} {version}",
        f"ESP-IDF {idf_ver}",
        *console_lines,
    )
    drom_len = max(_align4(size_hint // 5), _align4(len(head)) + 0x400)
    dram_len = _align4(max(size_hint // 50, 0x800))
    iram_len = min(max(_align4(size_hint // 10), 0x2000), 0x18000)
    # IROM data offset: 0x18 (header) + 8 + drom + 8 + dram + 8 + iram1 + 8 == 0x20 (mod 64K)
    iram1_len = (0x20 - 0x38 - drom_len - dram_len) % MMU_PAGE
    if iram1_len < 0x100:
        iram1_len += MMU_PAGE
    iram2_len = max(iram_len - iram1_len, 0x400)
    used = drom_len + dram_len + iram1_len + iram2_len
    irom_len = _align4(max(size_hint - used, 0x1000))

    drom = head + _pseudo_code(f"drom/{seed}", drom_len - len(head))
    iram = _pseudo_code(f"iram/{seed}", iram1_len + iram2_len)
    segments = [
        Segment(DROM_ADDR, drom),
        Segment(DRAM_ADDR, _pseudo_code(f"dram/{seed}", dram_len)),
        Segment(IRAM_ADDR, iram[:iram1_len]),
        Segment(IROM_ADDR, _pseudo_code(f"irom/{seed}", irom_len)),
        Segment(IRAM_ADDR + iram1_len, iram[iram1_len:]),
    ]
    major = idf_ver.lstrip("v").split(".", 1)[0]
    return build_image(
        segments,
        entry=entry,
        flash_mode=flash_mode,
        flash_freq=flash_freq,
        flash_size=flash_size,
        # IDF >= 4.4.4 stamps max chip revision v3.99; earlier IDFs left the field zero.
        max_rev_full=399 if major.isdigit() and int(major) >= 4 else 0,
    )


@cache
def firmware_app(fw: Firmware) -> bytes:
    """The app image for a :class:`Firmware` (cached)."""
    return app_image(
        project_name=fw.project_name,
        version=fw.version,
        idf_ver=fw.idf_ver,
        date=fw.date,
        time=fw.time,
        console_lines=fw.console,
        size_hint=fw.size_hint,
    )


def vendor_l7x_app() -> bytes:
    return firmware_app(VENDOR_L7X)


def custom_grbl_app() -> bytes:
    """The custom GRBL app image alone, to be written at :data:`APP_OFFSET`."""
    return firmware_app(CUSTOM_GRBL)


@cache
def partition_table() -> bytes:
    return build_table(DEFAULT_PARTITIONS)


# -- flash contents --------------------------------------------------------------------------------
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
    return page + b"\xff" * (0x1000 - len(page))


def _spiffs_data(size: int) -> bytes:
    """SPIFFS-like content: 256-byte pages, each an object header (obj id, span index, flags)
    followed by high-entropy data (gzip'd web UI files are what these partitions hold)."""
    raw = _stream("spiffs/vg-l7x", size)
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
def merged_firmware(fw: Firmware) -> bytes:
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
