"""Chip identity: the factory MAC and the eFuse words esptool decodes for an ESP32-D0WD-V3.

Values and decoding rules: fact sheet §3.6 (checked against ``esptool/targets/esp32.py``).
BLOCK0 RDATA3 = 0x0000A200 reads as package ESP32-D0WD, rev bit0 set, 240 MHz rated; RDATA5 bit 20
is rev bit1 and APB_CTL_DATE bit 31 rev bit2, so the major revision is 3 (v3.0 with minor 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Espressif's registered OUIs (IEEE MA-L), the prefixes ESP32 factory MACs are drawn from.
ESPRESSIF_OUIS = ((0x24, 0x0A, 0xC4), (0x30, 0xAE, 0xA4), (0x3C, 0x71, 0xBF), (0x84, 0x0D, 0x8E))

EFUSE_BASE = 0x3FF5A000


def mac_from_seed(seed: str | int) -> bytes:
    """A valid, stable Espressif MAC for a simulated board: an Espressif OUI plus 3 hashed bytes."""
    digest = hashlib.sha256(f"rig-sim-mac:{seed}".encode()).digest()
    oui = ESPRESSIF_OUIS[digest[0] % len(ESPRESSIF_OUIS)]
    return bytes(oui) + digest[1:4]


def mac_crc8(mac: bytes) -> int:
    """CRC-8/MAXIM over the MAC in display order: espefuse ``EfuseMacField.calc_crc`` (the ROM's
    ``esp_crc8``)."""
    crc = 0
    for byte in mac:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


# Where the security eFuses sit in BLOCK0: espefuse efuse_defs/esp32.yaml (FLASH_CRYPT_CNT rloc
# EFUSE_BLK0_RDATA0_REG[26:20], ABS_DONE_0/1 EFUSE_BLK0_RDATA6_REG[4]/[5]), which esptool's
# targets/esp32.py reads as EFUSE_SPI_BOOT_CRYPT_CNT_MASK and EFUSE_RD_ABS_DONE_0/1_MASK.
FLASH_CRYPT_CNT_SHIFT = 20  # EFUSE_BLK0_RDATA0 bits 20..26, 7 bits
FLASH_CRYPT_CNT_BITS = 0x7F
ABS_DONE_0 = 1 << 4  # EFUSE_BLK0_RDATA6 bit 4: secure boot v1
ABS_DONE_1 = 1 << 5  # EFUSE_BLK0_RDATA6 bit 5: secure boot v2 (chip revision v3.0 and later)


@dataclass(frozen=True)
class Security:
    """The eFuses that switch on flash encryption and secure boot, as burnt on the chip.

    Flash encryption is on while FLASH_CRYPT_CNT has an odd number of bits set (the bootloader
    burns one more bit each time it toggles encryption; ESP-IDF "Flash Encryption" guide).
    Secure boot is on once ABS_DONE_0 (v1) or ABS_DONE_1 (v2) is burnt. Only these raw bits
    are modelled: what a bootloader burns alongside them (key read protection, DISABLE_DL_*)
    is not implied, and the simulated ROM still reads and writes the flash unencrypted, as the
    ESP32 ROM's plain READ_FLASH and FLASH_DATA do.
    """

    flash_crypt_cnt: int = 0
    abs_done_0: bool = False
    abs_done_1: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.flash_crypt_cnt <= FLASH_CRYPT_CNT_BITS:
            raise ValueError(f"FLASH_CRYPT_CNT is 7 bits: 0..127, not {self.flash_crypt_cnt}")

    @property
    def flash_encryption(self) -> bool:
        return bin(self.flash_crypt_cnt).count("1") % 2 == 1

    def rdata0(self) -> int:
        return self.flash_crypt_cnt << FLASH_CRYPT_CNT_SHIFT

    def rdata6(self) -> int:
        return (ABS_DONE_0 if self.abs_done_0 else 0) | (ABS_DONE_1 if self.abs_done_1 else 0)


UNSECURED = Security()  # as shipped from the factory: no security eFuse burnt


@dataclass(frozen=True)
class Efuses:
    """EFUSE_BLK0_RDATA0..6 of an ESP32-D0WD-V3 rev v3.0; unencrypted and without secure boot
    unless ``security`` says otherwise."""

    mac: bytes
    minor_revision: int = 0
    ck8m_freq: int = 0x36  # RDATA4 bits 0-7; the ROM baud workaround reads it (§5.10)
    security: Security = UNSECURED

    def words(self) -> dict[int, int]:
        m = self.mac
        return {
            EFUSE_BASE + 0x00: self.security.rdata0(),  # FLASH_CRYPT_CNT, nothing read-protected
            EFUSE_BASE + 0x04: int.from_bytes(m[2:6], "big"),
            EFUSE_BASE + 0x08: (mac_crc8(m) << 16) | (m[0] << 8) | m[1],
            EFUSE_BASE + 0x0C: 0x0000A200,
            EFUSE_BASE + 0x10: 0x00000A00 | self.ck8m_freq,  # ADC Vref in eFuse, CK8M freq
            EFUSE_BASE + 0x14: 0x00100000 | ((self.minor_revision & 3) << 24),
            EFUSE_BASE + 0x18: self.security.rdata6(),  # coding scheme None, ABS_DONE_0/1
        }
