"""Deterministic synthetic firmware: valid ESP32 images the rig and its simulator use.

The project ships no third-party binaries, so the bootloader, the "vendor" app and the custom
GRBL app are generated here. Every byte derives from fixed strings through SHAKE-256 (never the
``random`` module or the clock), so the same call returns the same bytes on every machine and
Python version, and sha256 values in board configs stay valid forever. What a firmware prints is
carried in its image (:mod:`rig.images.console`); whole flash contents built from these images
are in :mod:`rig.images.flash_contents`.

Flash layout follows arduino-esp32's ``default.csv`` (which Grbl_Esp32 builds used): bootloader
at 0x1000, partition table at 0x8000, nvs, otadata (left erased, so the bootloader falls back to
``ota_0``), app0/app1 OTA slots, spiffs. The offsets are the ESP32's (:mod:`rig.esp32`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from rig.esp32 import APP_OFFSET

from .app_desc import AppDescriptor
from .console import console_block
from .esp_image import Segment, build_image
from .partitions import PartitionEntry, build_table

__all__ = [
    "APP_OFFSET",
    "CUSTOM_GRBL",
    "DEFAULT_PARTITIONS",
    "FLASH_SIZE_4MB",
    "VENDOR_L7X",
    "SyntheticFirmware",
    "app_image",
    "bootloader_image",
    "custom_grbl_app",
    "firmware_app",
    "partition_table",
    "stream",
    "vendor_l7x_app",
]

FLASH_SIZE_4MB = 0x400000

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
    PartitionEntry.of("app0", "app", "ota_0", APP_OFFSET, 0x140000),
    PartitionEntry.of("app1", "app", "ota_1", 0x150000, 0x140000),
    PartitionEntry.of("spiffs", "data", "spiffs", 0x290000, 0x170000),
)


@dataclass(frozen=True)
class SyntheticFirmware:
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


VENDOR_L7X = SyntheticFirmware(
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

CUSTOM_GRBL = SyntheticFirmware(
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
def stream(seed: str, n: int) -> bytes:
    """``n`` reproducible pseudo-random bytes (SHAKE-256 is fixed by FIPS 202, forever)."""
    return hashlib.shake_256(seed.encode()).digest(n)


def _pseudo_code(seed: str, n: int) -> bytes:
    """Code-looking filler: 3-byte words (Xtensa's instruction width), 7 in 8 drawn from a
    224-word vocabulary, so zlib -9 shrinks it to ~63% like real firmware, not ~100% like noise
    (this decides how long a simulated compressed write-flash takes)."""
    words = n // 3 + 1
    raw = stream(f"code/{seed}", 768 + 4 * words)
    vocab = [raw[i : i + 3] for i in range(0, 768, 3)]
    out = [vocab[raw[k]] if raw[k] < 224 else raw[k + 1 : k + 4] for k in range(768, len(raw), 4)]
    return b"".join(out)[:n]


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _strings(*texts: str) -> bytes:
    """A rodata-like blob of NUL-terminated strings, 4-byte aligned."""
    blob = b"".join(t.encode() + b"\x00" for t in texts)
    return blob + b"\x00" * (-len(blob) % 4)


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
    console_lines: tuple[str, ...] | list[str] | None = (),
    reset_reason: int | None = None,
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

    ``console_lines`` is what the simulated board prints once the app runs, and
    ``reset_reason`` how it then resets (a crash loop; :mod:`rig.images.console`); ``None``
    lines: no console script at all, like a real firmware (the simulator then has nothing to
    print for it unless its table of known firmware behaviours knows the image).
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
    head = desc.pack()
    if console_lines is not None:
        head += console_block(tuple(console_lines), reset_reason=reset_reason)
    head += _strings(
        "E (%u) %s: %s",
        "I (%u) %s: %s",
        f"{project_name} {version}",
        f"ESP-IDF {idf_ver}",
        *(console_lines or ()),
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
def firmware_app(fw: SyntheticFirmware) -> bytes:
    """The app image for a :class:`SyntheticFirmware` (cached)."""
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
