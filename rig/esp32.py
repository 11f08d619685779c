"""ESP32 facts as data: what the rig relies on about the chip, its ROM and its flash layout.

Like esptool's ``targets/esp32.py`` (``ESP32ROM``: FLASH_SIZES, BOOTLOADER_FLASH_OFFSET,
IMAGE_CHIP_ID as class attributes), one module owns them so no layer keeps its own copy.
``tests/test_esp32_facts.py`` checks them against esptool's ``ESP32ROM``.

The simulator (``rig.sim``) keeps its *protocol* facts (status bytes, the SYNC answer, banners it
prints) independently on purpose, so that it stays a referee for the rig rather than sharing
the rig's mistakes; the same test checks both sides against esptool.
"""

from __future__ import annotations

import re

__all__ = [
    "APP_OFFSET",
    "APP_SUBTYPES",
    "DATA_SUBTYPES",
    "PARTITION_TYPES",
    "BLOCK",
    "BOOTLOADER_OFFSET",
    "DOWNLOAD_BANNER",
    "FLASH_SIZES",
    "IMAGE_CHIP_ID",
    "IMAGE_MAGIC",
    "MB",
    "PARTITION_TABLE_OFFSET",
    "ROM_BAUD",
    "SECTOR",
    "SPI_BOOT",
    "SYNC_FRAME",
    "SYNC_REPLY",
    "auto_reset",
    "format_mac",
    "parse_mac",
]

MB = 0x100000
SECTOR = 0x1000  # the SPI NOR erase sector (esptool's FLASH_SECTOR_SIZE)
BLOCK = 0x10000  # the 64 KB erase block; also the unit the rig compares flash by MD5 in
FLASH_SIZES = tuple(n * MB for n in (1, 2, 4, 8, 16))  # ESP32ROM.FLASH_SIZES (the image header)

ROM_BAUD = 115200  # the ROM loader autobauds on SYNC; esptool starts at ESP_ROM_BAUD
IMAGE_MAGIC = 0xE9  # esp_image_header_t.magic
IMAGE_CHIP_ID = 0  # esp_image_header_t.chip_id of the original ESP32 (ESP32ROM.IMAGE_CHIP_ID)

# Where ESP-IDF and Arduino put things on an ESP32 (ESP32ROM.BOOTLOADER_FLASH_OFFSET; the IDF's
# CONFIG_PARTITION_TABLE_OFFSET default; the first app partition of the default tables).
BOOTLOADER_OFFSET = 0x1000
PARTITION_TABLE_OFFSET = 0x8000
APP_OFFSET = 0x10000

# Partition types and subtypes by their gen_esp32part.py names (the CSV's and the binary table's;
# bootloader and partition_table are the types ESP-IDF 5.3 gave the first two regions).
PARTITION_TYPES = {"app": 0x00, "data": 0x01, "bootloader": 0x02, "partition_table": 0x03}
APP_SUBTYPES = {"factory": 0x00, **{f"ota_{n}": 0x10 + n for n in range(16)}, "test": 0x20}
DATA_SUBTYPES = {
    "ota": 0x00,
    "phy": 0x01,
    "nvs": 0x02,
    "coredump": 0x03,
    "nvs_keys": 0x04,
    "efuse": 0x05,
    "undefined": 0x06,
    "esphttpd": 0x80,
    "fat": 0x81,
    "spiffs": 0x82,
    "littlefs": 0x83,
}

# A ROM SYNC request (esptool ESPLoader.sync: 07 07 12 20 + 32 x 55), SLIP-framed; the reply to
# it starts with direction 1, opcode 8.
SYNC_FRAME = b"\xc0\x00\x08\x24\x00\x00\x00\x00\x00\x07\x07\x12\x20" + b"\x55" * 32 + b"\xc0"
SYNC_REPLY = b"\xc0\x01\x08"

# The ROM's reset banner (fact sheet §7): "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/
# UART1/SDIO_REI_REO_V2))" then "waiting for download" when IO0 was low at reset; boot:0x13
# (SPI_FAST_FLASH_BOOT) when it was high.
DOWNLOAD_BANNER = re.compile(rb"boot:0x[0-9a-fA-F]+ \(DOWNLOAD_BOOT|waiting for download")
SPI_BOOT = re.compile(rb"boot:(0x[0-9a-fA-F]+) \((SPI_FAST_FLASH_BOOT|HSPI_FLASH_BOOT)")

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")


def parse_mac(text: str) -> bytes:
    """``24:0a:c4:12:34:56`` (also ``-`` or no separator) -> 6 bytes; ValueError if malformed
    or multicast (the low bit of the first byte: never a chip's factory MAC)."""
    if not _MAC_RE.fullmatch(text.strip()):
        raise ValueError(
            f"not a MAC address: {text!r} (expected six hex pairs, e.g. 24:0a:c4:12:34:56)"
        )
    mac = bytes.fromhex(re.sub(r"[:-]", "", text.strip()))
    if mac[0] & 0x01:
        raise ValueError(f"{text} is a multicast address, not a chip's factory MAC")
    return mac


def format_mac(mac: bytes | str) -> str:
    """6 bytes (or any accepted spelling) -> ``24:0a:c4:12:34:56``, the rig's one spelling."""
    raw = parse_mac(mac) if isinstance(mac, str) else bytes(mac)
    return ":".join(f"{b:02x}" for b in raw)


def auto_reset(dtr: bool, rts: bool) -> tuple[bool, bool]:
    """The classic two-transistor auto-reset circuit of ESP32 devkits (DTR/RTS in pyserial's
    sense: True = asserted): ``(en_low, io0_low)``. EN is pulled low while RTS is asserted and
    DTR is not; IO0 is pulled low while DTR is asserted and RTS is not; both asserted or both
    released leave both lines alone."""
    return rts and not dtr, dtr and not rts
