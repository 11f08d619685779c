"""What the simulated ESP32 prints on UART0 after a reset: pure functions returning a script.

The board module decides *when* (IO0 sampled at the rising edge of EN / power) and plays the
script: for each ``(delay, text)`` it sleeps ``delay`` seconds and writes ``text + "\\r\\n"``,
then acts on :attr:`BootScript.then`:

* ``"wait"``: stay silent until the next reset. After :func:`download_boot` this is the ROM
  serial loader waiting for esptool; after :func:`spi_boot` it is a ROM that halted
  (``ets_main.c 371`` after a bootloader checksum error) and answers nothing.
* ``"run"``: the firmware keeps running silently.
* ``"rtcwdt_reset"``: the ROM found no image at 0x1000 and its RTC watchdog fires; boot again
  with ``spi_boot(read, reset_reason=0x10)`` (``rst:0x10 (RTCWDT_RTC_RESET)``).
* ``"sw_reset"``: the ESP-IDF 2nd-stage bootloader gave up (bad partition table, no bootable app)
  and called ``bootloader_reset()``, a software system reset: boot again with
  ``spi_boot(read, reset_reason=0x3)`` (``rst:0x3 (SW_RESET)``), as real boards loop.

:attr:`BootScript.next_reset_reason` gives that reason (None for "wait" / "run").

Failure modes, as the ROM / ESP-IDF report them:

* no ``0xE9`` magic at 0x1000: ``invalid header: 0x%08x`` (first word, little-endian) 8 times
  ~45 ms apart, then "rtcwdt_reset";
* bootloader checksum wrong: the load lines, ``csum err:0x<calculated>!=0x<stored>``,
  ``ets_main.c 371``, then "wait" (halted); a bootloader whose segment headers run past the
  0x1000..0x8000 region gets ``flash read err, 1000`` + ``ets_main.c 371`` instead;
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

Texts follow the ESP32 rev v3 ROM (fact sheet section 7) and ESP-IDF's bootloader/startup logs:
v3.x style for IDF 3 (``paddr=0x%08x``), v4.x style otherwise (``paddr=%08x ... size=%05xh``);
tags are ``cpu_start`` as in IDF 3.3 - 4.4. Log timestamps are the script's own clock (cumulative
delays in ms), so they stay consistent with what a reader sees. The firmware's own output is the
console script carried in the image (see ``rig.images.synthetic``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from rig.images.app_desc import AppDescriptor, find_app_descriptor
from rig.images.console import console_script
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

__all__ = [
    "BOOT_MODES",
    "RESET_REASONS",
    "ROM_DATE",
    "BootScript",
    "download_boot",
    "rom_banner",
    "spi_boot",
]

Reader = Callable[[int, int], bytes]

ROM_DATE = "ets Jul 29 2019 12:21:46"  # ESP32 rev v3 (ECO3) ROM
# ESP-IDF RESET_REASON (rom/rtc.h) for ESP32.
RESET_REASONS = {
    0x1: "POWERON_RESET",
    0x3: "SW_RESET",
    0x4: "OWDT_RESET",
    0x5: "DEEPSLEEP_RESET",
    0x6: "SDIO_RESET",
    0x7: "TG0WDT_SYS_RESET",
    0x8: "TG1WDT_SYS_RESET",
    0x9: "RTCWDT_SYS_RESET",
    0xA: "INTRUSION_RESET",
    0xB: "TGWDT_CPU_RESET",
    0xC: "SW_CPU_RESET",
    0xD: "RTCWDT_CPU_RESET",
    0xE: "EXT_CPU_RESET",
    0xF: "RTCWDT_BROWN_OUT_RESET",
    0x10: "RTCWDT_RTC_RESET",
}
STRAP_DOWNLOAD = 0x03  # GPIO0 low (GPIO5 and MTDO high)
STRAP_SPI = 0x13  # GPIO0 high
BOOT_MODES = {
    STRAP_DOWNLOAD: "DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2)",
    STRAP_SPI: "SPI_FAST_FLASH_BOOT",
}
NEXT_RESET_REASON = {"rtcwdt_reset": 0x10, "sw_reset": 0x3}
# Kept here rather than taken from rig.esp32, so the simulator stays a referee of the rig's facts
# (tests/sim/test_sim_facts.py checks both against esptool's ESP32ROM).
BOOTLOADER_OFFSET = 0x1000  # where the ROM loads the 2nd-stage bootloader from (SPI boot)
PARTITION_TABLE_OFFSET = 0x8000  # the IDF bootloader's CONFIG_PARTITION_TABLE_OFFSET default

BOOTLOADER_REGION = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET  # 0x7000, the most the ROM loads
DEFAULT_IDF_VER = "v4.4.7"  # used when neither bootloader nor app says which IDF built it
CHIP_REV_FULL = 300  # v3.0, matching the 2019 ROM
FACTORY_INDEX, TEST_INDEX = -1, 16  # bootloader_utility.c partition indices
INVALID_HEADER_REPEATS = 8
INVALID_HEADER_PERIOD = 0.045

# Delays (seconds). A full valid boot stays well under 0.5 s.
ROM_LOAD_RATE = 10e6  # bytes/s the ROM copies the bootloader at (40 MHz DIO)
BOOTLOADER_START = 0.029  # first "I (29) boot:" line, as on real boards
BOOT_LINE = 0.003
IMAGE_RATE = 12e6  # bytes/s the bootloader loads + hashes app segments
APP_LINE = 0.002
CONSOLE_FIRST = 0.03
CONSOLE_LINE = 0.008

_SPI_SPEED = {"80m": "80MHz", "40m": "40MHz", "26m": "26.7MHz", "20m": "20MHz"}
_CLOCK_DIV = {"80m": 1, "40m": 2, "26m": 3, "20m": 4}
_SIZE_BYTES = {f"{n}MB": n << 20 for n in (1, 2, 4, 8, 16, 32, 64, 128)}
_MAP_RANGES = ((0x3F400000, 0x3F800000), (0x400D0000, 0x40400000))  # DROM, IROM: "map"


@dataclass(frozen=True)
class BootScript:
    """Console lines with the delay (s) *before* each, and what the chip does afterwards."""

    lines: tuple[tuple[float, str], ...]
    then: str  # "wait" | "run" | "rtcwdt_reset" | "sw_reset"

    @property
    def next_reset_reason(self) -> int | None:
        """Reset reason for the automatic reboot that follows, if any."""
        return NEXT_RESET_REASON.get(self.then)

    @property
    def duration(self) -> float:
        return sum(delay for delay, _ in self.lines)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.lines]

    def text(self) -> str:
        """Everything as the serial port sees it (lines ended with CR LF)."""
        return "".join(text + "\r\n" for _, text in self.lines)


class _Log:
    """Accumulates lines; ``t`` is the time since reset, which IDF log stamps show in ms."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.t = 0.0

    def raw(self, delay: float, text: str) -> None:
        self.t += delay
        self.lines.append((delay, text))

    def idf(self, level: str, tag: str, msg: str, delay: float, stamp: int | None = None) -> None:
        ms = round((self.t + delay) * 1000) if stamp is None else stamp
        self.raw(delay, f"{level} ({ms}) {tag}: {msg}")

    def done(self, then: str) -> BootScript:
        return BootScript(tuple(self.lines), then)


def rom_banner(reset_reason: int, strap: int) -> list[str]:
    """The three lines every ROM boot starts with: date, blank, ``rst:..,boot:..``."""
    try:
        reason = RESET_REASONS[reset_reason]
    except KeyError:
        raise ValueError(f"unknown ESP32 reset reason {reset_reason:#x}") from None
    mode = BOOT_MODES.get(strap, "?")
    return [ROM_DATE, "", f"rst:{reset_reason:#x} ({reason}),boot:{strap:#x} ({mode})"]


def download_boot(reset_reason: int = 0x1) -> BootScript:
    """GPIO0 low at reset: the ROM serial loader announces itself and waits for esptool."""
    log = _Log()
    for text in rom_banner(reset_reason, STRAP_DOWNLOAD):
        log.raw(0.0, text)
    log.raw(0.0, "waiting for download")
    return log.done("wait")


def _safe_reader(read: Reader) -> Reader:
    """Reads past the chip return 0xFF instead of raising (only a table can point there)."""

    def safe(offset: int, length: int) -> bytes:
        try:
            data = bytes(read(offset, length))
        except ValueError:
            data = b""
        return data + b"\xff" * (length - len(data))

    return safe


def _major(idf_ver: str) -> int:
    head = idf_ver.lstrip("vV").split(".", 1)[0]
    return int(head) if head.isdigit() else 4


def _rev(full: int) -> str:
    return f"v{full // 100}.{full % 100}"


def spi_boot(read: Reader, reset_reason: int = 0x1) -> BootScript:
    """GPIO0 high at reset: the ROM loads the 2nd-stage bootloader at 0x1000, which loads an app.

    ``read(offset, length)`` reads the flash array.
    """
    read = _safe_reader(read)
    log = _Log()
    for text in rom_banner(reset_reason, STRAP_SPI):
        log.raw(0.0, text)

    # -- ROM: load the bootloader --------------------------------------------------------------
    region = read(BOOTLOADER_OFFSET, BOOTLOADER_REGION)
    try:
        boot = parse_image(region)
    except ImageError as exc:
        if exc.kind == "magic":
            # ROM checks the magic byte and prints the first word, then retries until the
            # RTC watchdog resets the chip.
            (word,) = struct.unpack_from("<I", region)
            for n in range(INVALID_HEADER_REPEATS):
                log.raw(0.002 if n == 0 else INVALID_HEADER_PERIOD, f"invalid header: {word:#010x}")
            return log.done("rtcwdt_reset")
        # Headers that send the ROM past the loadable region: it reports a read failure and halts.
        log.raw(0.001, f"flash read err, {BOOTLOADER_OFFSET:x}")
        log.raw(0.0, "ets_main.c 371")
        return log.done("wait")

    log.raw(0.001, f"configsip: 0, SPIWP:{boot.wp_pin:#04x}")
    log.raw(0.0, ",".join(f"{k}:{v:#04x}" for k, v in boot.drive_levels.items()))
    log.raw(0.0, f"mode:{boot.flash_mode.upper()}, clock div:{_CLOCK_DIV.get(boot.flash_freq, 2)}")
    for seg in boot.segments:
        log.raw(len(seg.data) / ROM_LOAD_RATE, f"load:{seg.addr:#010x},len:{len(seg.data)}")
    if not boot.checksum_ok:
        log.raw(0.0, f"csum err:{boot.calculated_checksum:#04x}!={boot.checksum:#04x}")
        log.raw(0.0, "ets_main.c 371")
        return log.done("wait")
    log.raw(0.0, f"entry {boot.entry:#010x}")

    return _bootloader(log, read, boot)


# -- ESP-IDF 2nd stage bootloader ------------------------------------------------------------------
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


def _bootloader(log: _Log, read: Reader, boot: EspImage) -> BootScript:
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
        seqs = [_otadata_valid_seq(read(otadata.offset + n * 0x1000, 32)) for n in (0, 1)]
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
            return _app_start(log, part, *loaded, boot_idf=idf_ver)
        if index == FACTORY_INDEX:
            log.idf("E", "boot", "Factory app partition is not bootable", BOOT_LINE)
        else:
            log.idf("E", "boot", f"OTA app partition slot {index} is not bootable", BOOT_LINE)
    if test is not None and test.size:
        loaded = _load_app(log, read, test, v3)
        if loaded is not None:
            log.idf("W", "boot", "Falling back to test app as only bootable partition", 0.0)
            return _app_start(log, test, *loaded, boot_idf=idf_ver)
    log.idf("E", "boot", "No bootable app partitions in the partition table", BOOT_LINE)
    return log.done("sw_reset")


def _load_app(
    log: _Log, read: Reader, part: PartitionEntry, v3: bool
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
    if image.chip_id != 0 and not v3:
        log.idf("E", "boot_comm", f"mismatch chip ID, expected 0, found {image.chip_id}", BOOT_LINE)
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
    log: _Log, part: PartitionEntry, image: EspImage, pending: float, *, boot_idf: str
) -> BootScript:
    """The bootloader's last words, then the app's startup log and its console script."""
    log.idf("I", "boot", f"Loaded app from partition at offset {part.offset:#x}", pending)
    log.idf("I", "boot", "Disabling RNG early entropy source...", 0.0)

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

    for n, line in enumerate(console_script(image) or []):
        log.raw(CONSOLE_FIRST if n == 0 else CONSOLE_LINE, line)
    return log.done("run")
