"""What ESP-IDF's second-stage bootloader prints, and which app it starts (:func:`run_bootloader`).

The ROM (:mod:`.boot`) has loaded and checked the bootloader image; from here the script goes on
with the bootloader's log. Failure modes, as ESP-IDF reports them:

* partition table rejected (bad magic, MD5, no end marker, beyond the header's flash size):
  ``E (..) flash_parts: ...``, ``E (..) boot: Failed to verify partition table``, then
  "sw_reset";
* no loadable app: ``E (..) esp_image: ...`` per candidate (invalid magic, checksum, hash),
  ``E (..) boot: Factory app partition is not bootable`` / ``OTA app partition slot N is not
  bootable``, ``E (..) boot: No bootable app partitions in the partition table``, "sw_reset".

App selection follows ``bootloader_utility.c``: no otadata partition -> factory; otadata erased
or invalid -> factory, else ``ota_0`` ("No factory image, trying OTA 0"); a valid otadata entry
selects ``(seq - 1) % ota_app_count``; a failing candidate falls back to lower indices, then
higher OTA slots, then the test app.

Texts follow ESP-IDF's bootloader/startup logs:
v3.x style for IDF 3 (``paddr=0x%08x``), v4.x style otherwise (``paddr=%08x ... size=%05xh``);
tags are ``cpu_start`` as in IDF 3.3 - 4.4. Log timestamps are the script's own clock (cumulative
delays in ms), so they stay consistent with what a reader sees. The firmware's own output is the
console script carried in a synthetic image (see :mod:`rig.images.console`); a real app prints
what the table of known firmware behaviours (:mod:`.firmware`) says, and an unknown one nothing
but the simulator's note that it does not execute firmware.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from rig.images.app_desc import AppDescriptor, find_app_descriptor
from rig.images.console import SIMULATED_APP_NOTE, read_console
from rig.images.esp_image import EspImage, ImageError, parse_image
from rig.images.partitions import (
    APP_SUBTYPES,
    DATA_SUBTYPES,
    PARTITION_TABLE_MAX_LEN,
    TYPES,
    PartitionEntry,
    PartitionTableError,
    find_boot_app,
    parse_table,
)

from .firmware import KNOWN_FIRMWARE
from .script import BootScript, ConsoleLog, Reader

__all__ = ["IMAGE_CHIP_ID", "PARTITION_TABLE_OFFSET", "run_bootloader"]

PARTITION_TABLE_OFFSET = 0x8000  # the IDF bootloader's CONFIG_PARTITION_TABLE_OFFSET default
IMAGE_CHIP_ID = 0  # ESP_CHIP_ID_ESP32: the chip id an app image must carry (esp_image_header_t)
DEFAULT_IDF_VER = "v4.4.7"  # used when neither bootloader nor app says which IDF built it
CHIP_REV_FULL = 300  # v3.0, matching the 2019 ROM
FACTORY_INDEX, TEST_INDEX = -1, 16  # bootloader_utility.c partition indices
OTADATA_SECTOR = 0x1000  # otadata holds two esp_ota_select_entry_t, one per flash sector

# Delays (seconds). A full valid boot stays well under 0.5 s.
BOOTLOADER_START = 0.029  # first "I (29) boot:" line, as on real boards
BOOT_LINE = 0.003
IMAGE_RATE = 12e6  # bytes/s the bootloader loads + hashes app segments
APP_LINE = 0.002
CONSOLE_FIRST = 0.03
CONSOLE_LINE = 0.008

_SPI_SPEED = {"80m": "80MHz", "40m": "40MHz", "26m": "26.7MHz", "20m": "20MHz"}
_SIZE_BYTES = {f"{n}MB": n << 20 for n in (1, 2, 4, 8, 16, 32, 64, 128)}
_MAP_RANGES = ((0x3F400000, 0x3F800000), (0x400D0000, 0x40400000))  # DROM, IROM: "map"


def _major(idf_ver: str) -> int:
    head = idf_ver.lstrip("vV").split(".", 1)[0]
    return int(head) if head.isdigit() else 4


def _rev(full: int) -> str:
    return f"v{full // 100}.{full % 100}"


def _bootloader_identity(read: Reader, boot: EspImage) -> tuple[str, str]:
    """(IDF version, compile time) for the bootloader's first two lines.

    IDF >= 5.2 bootloaders carry ``esp_bootloader_desc_t`` (magic byte 0x50, idf_ver[32] at 8,
    date_time[24] at 40) at the start of their DRAM segment. Older ones don't; they are built
    together with the app, so use the descriptor of the app the bootloader will look at first
    (otadata-less rule), else :data:`DEFAULT_IDF_VER`.
    """
    for seg in boot.segments:
        data = seg.data
        if 0x3FFAE000 <= seg.addr < 0x40000000 and len(data) >= 80 and data[0] == 0x50:
            ver = data[8:40].split(b"\x00", 1)[0].decode("ascii", "replace")
            stamp = data[40:64].split(b"\x00", 1)[0].decode("ascii", "replace")
            if ver:
                return ver, stamp.rsplit(" ", 1)[-1] or "00:00:00"
    try:
        app = find_boot_app(parse_table(read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_MAX_LEN)))
        if app is not None:
            desc = find_app_descriptor(parse_image(read(app.offset, app.size)))
            if desc is not None:
                return desc.idf_ver, desc.time
    except ValueError:
        pass
    return DEFAULT_IDF_VER, "00:00:00"


def _usage(p: PartitionEntry) -> str:
    """Usage column of the bootloader's table dump (bootloader_utility_load_partition_table)."""
    if p.type == TYPES["app"]:
        if p.subtype == APP_SUBTYPES["factory"]:
            return "factory app"
        if p.subtype == APP_SUBTYPES["test"]:
            return "test app"
        return "OTA app" if p.ota_index is not None else "Unknown app"
    if p.type == TYPES["data"]:
        return {
            DATA_SUBTYPES["ota"]: "OTA data",
            DATA_SUBTYPES["phy"]: "RF data",
            DATA_SUBTYPES["nvs"]: "WiFi data",
            DATA_SUBTYPES["nvs_keys"]: "NVS keys",
            DATA_SUBTYPES["efuse"]: "efuse",
        }.get(p.subtype, "Unknown data")
    return "unknown"


def _otadata_valid_seq(raw: bytes) -> int | None:
    """``ota_seq`` of an ``esp_ota_select_entry_t`` if valid (seq != 0xFFFFFFFF and
    crc == crc32_le(0xFFFFFFFF, &ota_seq, 4))."""
    seq, crc = struct.unpack_from("<I", raw, 0)[0], struct.unpack_from("<I", raw, 28)[0]
    if seq == 0xFFFFFFFF or crc != zlib.crc32(raw[:4], 0xFFFFFFFF):
        return None
    return seq


def run_bootloader(log: ConsoleLog, read: Reader, boot: EspImage) -> BootScript:
    """The bootloader ``boot`` (loaded by the ROM) runs: its banner, the partition table, the
    app it selects and loads, then that app's startup log and console script."""
    idf_ver, compile_time = _bootloader_identity(read, boot)
    v3 = _major(idf_ver) < 4
    tag_spi = "boot" if v3 else "boot.esp32"

    log.idf("I", "boot", f"ESP-IDF {idf_ver} 2nd stage bootloader", BOOTLOADER_START - log.t)
    log.idf("I", "boot", f"compile time {compile_time}", 0.0)
    if v3:
        log.idf("I", "boot", "Enabling RNG early entropy source...", 0.0)
    else:
        log.idf("I", "boot", f"chip revision: {_rev(CHIP_REV_FULL)}", BOOT_LINE)
    log.idf("I", tag_spi, f"SPI Speed      : {_SPI_SPEED.get(boot.flash_freq, '40MHz')}", BOOT_LINE)
    log.idf("I", tag_spi, f"SPI Mode       : {boot.flash_mode.upper()}", BOOT_LINE)
    log.idf("I", tag_spi, f"SPI Flash Size : {boot.flash_size}", BOOT_LINE)
    if not v3:
        log.idf("I", "boot", "Enabling RNG early entropy source...", BOOT_LINE)

    # Partition table: esp_partition_table_verify() then the listing.
    try:
        table = parse_table(
            read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_MAX_LEN), check_overlap=False
        )
        chip_size = _SIZE_BYTES.get(boot.flash_size)
        for i, p in enumerate(table):
            if chip_size is not None and (p.offset > chip_size or p.end > chip_size):
                raise PartitionTableError(
                    f"partition {i} invalid - offset {p.offset:#x} size {p.size:#x} exceeds "
                    f"flash chip size {chip_size:#x}",
                    kind="layout",
                    index=i,
                )
    except PartitionTableError as exc:
        msg = {
            "md5": "incorrect md5 checksum",
            "end": "partition table has no terminating entry, not valid",
        }.get(exc.kind, str(exc))
        log.idf("E", "flash_parts", msg, BOOT_LINE)
        log.idf("E", "boot", "Failed to verify partition table", BOOT_LINE)
        log.idf("E", "boot", "load partition table error!", BOOT_LINE)
        return log.done("sw_reset")

    log.idf("I", "boot", "Partition Table:", BOOT_LINE)
    log.idf("I", "boot", "## Label            Usage          Type ST Offset   Length", BOOT_LINE)
    for i, p in enumerate(table):
        row = f"{i:2d} {p.label:<16s} {_usage(p):<16s} {p.type:02x} {p.subtype:02x} "
        log.idf("I", "boot", row + f"{p.offset:08x} {p.size:08x}", BOOT_LINE)
    log.idf("I", "boot", "End of partition table", BOOT_LINE)

    factory = next((p for p in table if p.is_app and p.subtype == APP_SUBTYPES["factory"]), None)
    test = next((p for p in table if p.is_app and p.subtype == APP_SUBTYPES["test"]), None)
    ota = {p.ota_index: p for p in table if p.ota_index is not None}
    otadata = next(
        (p for p in table if p.type == TYPES["data"] and p.subtype == DATA_SUBTYPES["ota"]), None
    )

    def partition(index: int) -> PartitionEntry | None:
        return (
            factory if index == FACTORY_INDEX else test if index == TEST_INDEX else ota.get(index)
        )

    # bootloader_utility_get_selected_boot_partition()
    start = FACTORY_INDEX
    if otadata is not None:
        seqs = [_otadata_valid_seq(read(otadata.offset + n * OTADATA_SECTOR, 32)) for n in (0, 1)]
        valid = [s for s in seqs if s is not None]
        if not valid or not ota:
            if factory is not None:
                log.idf("I", "boot", "Defaulting to factory image", BOOT_LINE)
            else:
                log.idf("I", "boot", "No factory image, trying OTA 0", BOOT_LINE)
                start = 0
        else:
            start = (max(valid) - 1) % len(ota)

    # bootloader_utility_load_boot_image(): backwards to factory, forwards, then test.
    order = list(range(start, FACTORY_INDEX - 1, -1)) + list(range(start + 1, len(ota)))
    for index in order:
        part = partition(index)
        if part is None or part.size == 0:
            continue
        loaded = _load_app(log, read, part, v3)
        if loaded is not None:
            return _app_start(log, read, part, *loaded, boot_idf=idf_ver)
        if index == FACTORY_INDEX:
            log.idf("E", "boot", "Factory app partition is not bootable", BOOT_LINE)
        else:
            log.idf("E", "boot", f"OTA app partition slot {index} is not bootable", BOOT_LINE)
    if test is not None and test.size:
        loaded = _load_app(log, read, test, v3)
        if loaded is not None:
            log.idf("W", "boot", "Falling back to test app as only bootable partition", 0.0)
            return _app_start(log, read, test, *loaded, boot_idf=idf_ver)
    log.idf("E", "boot", "No bootable app partitions in the partition table", BOOT_LINE)
    return log.done("sw_reset")


def _load_app(
    log: ConsoleLog, read: Reader, part: PartitionEntry, v3: bool
) -> tuple[EspImage, float] | None:
    """esp_image_load(): header checks, one log line per segment, then checksum and hash.

    Returns the image and the time still owed to loading/hashing its last segment (the delay
    before the next line), or None after logging why the image was rejected.
    """
    try:
        image = parse_image(read(part.offset, part.size))
    except ImageError as exc:
        if exc.kind == "magic":
            hint = "" if v3 else " (nothing flashed here?)"
            msg = f"image at {part.offset:#x} has invalid magic byte{hint}"
        elif exc.kind == "segments":
            msg = f"image at {part.offset:#x} {exc}"
        elif exc.kind == "truncated":
            msg = f"Image length {exc.needed} doesn't fit in partition length {part.size}"
        else:
            msg = f"image at {part.offset:#x} has an invalid header: {exc}"
        log.idf("E", "esp_image", msg, BOOT_LINE)
        return None
    if image.chip_id != IMAGE_CHIP_ID and not v3:
        found = f"expected {IMAGE_CHIP_ID}, found {image.chip_id}"
        log.idf("E", "boot_comm", f"mismatch chip ID, {found}", BOOT_LINE)
        return None

    pending = BOOT_LINE
    for n, (seg, off) in enumerate(zip(image.segments, image.segment_offsets, strict=True)):
        kind = "map" if any(lo <= seg.addr < hi for lo, hi in _MAP_RANGES) else "load"
        paddr, size = part.offset + off, len(seg.data)
        if v3:
            msg = f"segment {n}: paddr={paddr:#010x} vaddr={seg.addr:#010x} size={size:#07x}"
        else:
            msg = f"segment {n}: paddr={paddr:08x} vaddr={seg.addr:08x} size={size:05x}h"
        log.idf("I", "esp_image", f"{msg} ({size:6d}) {kind}", pending)
        pending = size / IMAGE_RATE
    if not image.checksum_ok:
        calc, stored = image.calculated_checksum, image.checksum
        log.idf(
            "E", "esp_image", f"Checksum failed. Calculated {calc:#x} read {stored:#x}", pending
        )
        return None
    if image.sha256_ok is False:
        log.idf("E", "esp_image", "Image hash failed - image is corrupt", pending)
        return None
    return image, pending


def _app_start(
    log: ConsoleLog,
    read: Reader,
    part: PartitionEntry,
    image: EspImage,
    pending: float,
    *,
    boot_idf: str,
) -> BootScript:
    """The bootloader's last words, then what the app prints: a synthetic app's startup log and
    console script, a known real app's behaviour, or the simulator's note."""
    log.idf("I", "boot", f"Loaded app from partition at offset {part.offset:#x}", pending)
    log.idf("I", "boot", "Disabling RNG early entropy source...", 0.0)
    script = read_console(image)
    if script is not None:
        _startup_log(log, image, boot_idf)
        for n, line in enumerate(script.lines):
            log.raw(CONSOLE_FIRST if n == 0 else CONSOLE_LINE, line)
        if script.reset_reason is not None:
            return log.done("reset", script.reset_reason)
        return log.done("run")
    sha256 = hashlib.sha256(read(part.offset, image.length)).hexdigest()
    known = KNOWN_FIRMWARE.get(sha256)
    if known is None:
        log.raw(CONSOLE_FIRST, SIMULATED_APP_NOTE.format(offset=part.offset, sha256=sha256))
        return log.done("run")
    for delay, line in known.boot:
        log.raw(delay, line)
    return log.done("run", answers=known.answers)


def _startup_log(log: ConsoleLog, image: EspImage, boot_idf: str) -> None:
    """ESP-IDF's app startup log (``cpu_start``, ``heap_init``), v3 or v4 style."""
    desc: AppDescriptor | None = find_app_descriptor(image)
    v3 = _major(desc.idf_ver if desc else boot_idf) < 4
    app_cpu_entry = image.entry + 0x5D4  # call_start_cpu1 sits next to call_start_cpu0

    def info(msg: str, stamp: int | None = None) -> None:
        log.idf("I", "cpu_start", msg, APP_LINE, stamp)

    def app_information() -> None:
        if desc is None:
            return
        info("Application information:")
        info(f"Project name:     {desc.project_name}")
        info(f"App version:      {desc.version}")
        info(f"Compile time:     {desc.date} {desc.time}")
        info(f"ELF file SHA256:  {desc.app_elf_sha256[:8].hex()}...")
        info(f"ESP-IDF:          {desc.idf_ver}")

    heap = [
        "Initializing. RAM available for dynamic allocation:",
        "At 3FFAE6E0 len 00001920 (6 KiB): DRAM",
        "At 3FFB2A38 len 0002D5C8 (181 KiB): DRAM",
        "At 3FFE0440 len 00003AE0 (14 KiB): D/IRAM",
        "At 3FFE4350 len 0001BCB0 (111 KiB): D/IRAM",
        "At 4008B8C4 len 0001473C (81 KiB): IRAM",
    ]
    info("Pro cpu up.")
    if v3:
        app_information()
        info(f"Starting app cpu, entry point is {app_cpu_entry:#x}")
        info("App cpu up.", stamp=0)
        for line in heap:
            log.idf("I", "heap_init", line, APP_LINE)
        info("Pro cpu start user code")
    else:
        info(f"Starting app cpu, entry point is {app_cpu_entry:#x}")
        info("App cpu up.", stamp=0)
        info("Pro cpu start user code")
        info("cpu freq: 160000000")
        app_information()
        info(f"Min chip rev:     {_rev(image.min_rev_full)}")
        info(f"Max chip rev:     {_rev(image.max_rev_full)} ")
        info(f"Chip rev:         {_rev(CHIP_REV_FULL)}")
        for line in heap:
            log.idf("I", "heap_init", line, APP_LINE)
        log.idf("I", "spi_flash", "detected chip: generic", APP_LINE)
        log.idf("I", "spi_flash", f"flash io: {image.flash_mode}", APP_LINE)
    info("Starting scheduler on PRO CPU.")
    info("Starting scheduler on APP CPU.", stamp=0)
