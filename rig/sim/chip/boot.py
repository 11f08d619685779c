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
  0x1000..0x8000 region gets ``flash read err, 1000`` + ``ets_main.c 371`` instead.

The second-stage bootloader the ROM hands over to is :mod:`.bootloader`. Texts follow the ESP32
rev v3 ROM (fact sheet section 7).
"""

from __future__ import annotations

import struct

from rig.images.esp_image import ImageError, parse_image

from .bootloader import PARTITION_TABLE_OFFSET, run_bootloader
from .script import BootScript, ConsoleLog, Reader

__all__ = [
    "BOOT_MODES",
    "RESET_REASONS",
    "ROM_DATE",
    "BootScript",
    "download_boot",
    "rom_banner",
    "spi_boot",
]

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
# Kept here rather than taken from rig.esp32, so the simulator stays a referee of the rig's facts
# (tests/sim/test_sim_facts.py checks both against esptool's ESP32ROM).
BOOTLOADER_OFFSET = 0x1000  # where the ROM loads the 2nd-stage bootloader from (SPI boot)
BOOTLOADER_REGION = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET  # 0x7000, the most the ROM loads
INVALID_HEADER_REPEATS = 8
INVALID_HEADER_PERIOD = 0.045
ROM_LOAD_RATE = 10e6  # bytes/s the ROM copies the bootloader at (40 MHz DIO)
_CLOCK_DIV = {"80m": 1, "40m": 2, "26m": 3, "20m": 4}


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
    log = ConsoleLog()
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


def spi_boot(read: Reader, reset_reason: int = 0x1) -> BootScript:
    """GPIO0 high at reset: the ROM loads the 2nd-stage bootloader at 0x1000, which loads an app.

    ``read(offset, length)`` reads the flash array.
    """
    read = _safe_reader(read)
    log = ConsoleLog()
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

    return run_bootloader(log, read, boot)
