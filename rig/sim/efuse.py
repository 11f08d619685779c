"""Chip identity: the factory MAC and the eFuse words esptool decodes for an ESP32-D0WD-V3.

Values and decoding rules: fact sheet §3.6 (checked against ``esptool/targets/esp32.py``).
BLOCK0 RDATA3 = 0x0000A200 reads as package ESP32-D0WD, rev bit0 set, 240 MHz rated; RDATA5 bit 20
is rev bit1 and APB_CTL_DATE bit 31 rev bit2, so the major revision is 3 (v3.0 with minor 0).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Espressif's registered OUIs (IEEE MA-L), the prefixes ESP32 factory MACs are drawn from.
ESPRESSIF_OUIS = ((0x24, 0x0A, 0xC4), (0x30, 0xAE, 0xA4), (0x3C, 0x71, 0xBF), (0x84, 0x0D, 0x8E))

EFUSE_BASE = 0x3FF5A000
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def parse_mac(text: str) -> bytes:
    """``24:0a:c4:12:34:56`` (also ``-`` or no separator) -> 6 bytes; ValueError if malformed."""
    if not _MAC_RE.match(text.strip()):
        raise ValueError(
            f"not a MAC address: {text!r} (expected six hex pairs, e.g. 24:0a:c4:12:34:56)"
        )
    mac = bytes.fromhex(re.sub(r"[:-]", "", text.strip()))
    if mac[0] & 0x01:
        raise ValueError(f"{text}: a multicast address cannot be a chip's factory MAC")
    return mac


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


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


@dataclass(frozen=True)
class Efuses:
    """EFUSE_BLK0_RDATA0..6 for an unencrypted, non-secure-boot ESP32-D0WD-V3 rev v3.0."""

    mac: bytes
    minor_revision: int = 0
    ck8m_freq: int = 0x36  # RDATA4 bits 0-7; the ROM baud workaround reads it (§5.10)

    def words(self) -> dict[int, int]:
        m = self.mac
        return {
            EFUSE_BASE + 0x00: 0x00000000,  # no flash encryption, nothing read-protected
            EFUSE_BASE + 0x04: int.from_bytes(m[2:6], "big"),
            EFUSE_BASE + 0x08: (mac_crc8(m) << 16) | (m[0] << 8) | m[1],
            EFUSE_BASE + 0x0C: 0x0000A200,
            EFUSE_BASE + 0x10: 0x00000A00 | self.ck8m_freq,  # ADC Vref in eFuse, CK8M freq
            EFUSE_BASE + 0x14: 0x00100000 | ((self.minor_revision & 3) << 24),
            EFUSE_BASE + 0x18: 0x00000000,  # coding scheme None, no secure boot
        }
