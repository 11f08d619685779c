"""Chip identity and eFuses: the factory MAC, the eFuse words esptool decodes for an
ESP32-D0WD-V3, and the eFuse controller espefuse burns through (:class:`Efuses`).

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


# -- the eFuse controller (ESP32 TRM, chapter "eFuse Controller"; addresses and command codes
# as espefuse drives them: espefuse/efuse/esp32/mem_definition.py and fields.py) ------------------
BLOCK_READ = (0x000, 0x038, 0x058, 0x078)  # EFUSE_BLKn_RDATA0_REG offsets
BLOCK_WRITE = (0x01C, 0x098, 0x0B8, 0x0D8)  # EFUSE_BLKn_WDATA0_REG offsets
BLOCK_WORDS = (7, 8, 8, 8)  # BLOCK0 is 7 words; BLOCK1..3 8 words with coding scheme NONE
EFUSE_CONF = 0x0FC  # operation code: 0x5A5A program, 0x5AA5 read
EFUSE_CMD = 0x104  # bit 1 program, bit 0 read; the controller clears it when done
EFUSE_DEC_STATUS = 0x11C  # 3/4 coding errors; coding scheme NONE decodes nothing
EFUSE_END = 0x120
CONF_PROGRAM, CONF_READ = 0x5A5A, 0x5AA5
CMD_READ, CMD_PROGRAM = 0x1, 0x2

# BLOCK0 word 0 bits 0..15 are WR_DIS, bits 16..19 RD_DIS. Each bit protects parts of BLOCK0
# (bit -> {word: mask}) or a whole key block (bit -> block). ESP32 TRM Table "System
# Parameters"; espefuse's efuse_defs/esp32.yaml lists the same bits field by field (wr_dis and
# rd_dis columns), which a test checks.
WRITE_PROTECT = {
    0: {0: 0x000F0000},  # RD_DIS
    1: {0: 0x0000FFFF},  # WR_DIS
    2: {0: 0x0FF00000},  # FLASH_CRYPT_CNT, UART_DOWNLOAD_DIS
    3: {1: 0xFFFFFFFF, 2: 0x00FFFFFF, 3: 0x0000000B, 5: 0x00C00000},  # MAC, MAC_CRC, chip config
    4: {4: 0x00001FFF},  # CLK8M_FREQ, ADC_VREF
    5: {4: 0x0001C000},  # XPD_SDIO_REG/TIEH/FORCE
    6: {5: 0x000FFFFF},  # SPI_PAD_CONFIG_CLK/Q/D/CS0
    10: {3: 0x00004000, 5: 0xF0000000, 6: 0x00000403},  # BLK3_PART_RESERVE, FLASH_CRYPT_CONFIG,
    # CODING_SCHEME, KEY_STATUS
    12: {6: 0x00000010},  # ABS_DONE_0
    13: {6: 0x00000020},  # ABS_DONE_1
    14: {6: 0x00000040},  # JTAG_DISABLE
    15: {6: 0x00000384},  # CONSOLE_DEBUG_DISABLE, DISABLE_DL_ENCRYPT/DECRYPT/CACHE
}
WRITE_PROTECT_BLOCK = {7: 1, 8: 2, 9: 3}
READ_PROTECT = {3: {3: 0x00004000, 5: 0xF0000000, 6: 0x00000403}}
READ_PROTECT_BLOCK = {0: 1, 1: 2, 2: 3}


def _protected(bits: int, parts: dict[int, dict[int, int]], blocks: dict[int, int]) -> list:
    """Per block, per word: the mask of bits that ``bits`` (WR_DIS or RD_DIS) protects."""
    masks = [[0] * n for n in BLOCK_WORDS]
    for bit, words in parts.items():
        if bits >> bit & 1:
            for word, mask in words.items():
                masks[0][word] |= mask
    for bit, block in blocks.items():
        if bits >> bit & 1:
            masks[block] = [0xFFFFFFFF] * BLOCK_WORDS[block]
    return masks


class Efuses:
    """The eFuse array of an ESP32-D0WD-V3 rev v3.0 and its controller.

    The array starts as the factory left it: BLOCK0 EFUSE_BLK0_RDATA0..6 of :meth:`factory_words`
    (unencrypted, no secure boot, unless ``security`` says otherwise), BLOCK1..3 empty. Software
    sees it through the read registers, which the controller loads from the array at reset and on
    a read command; it burns through the write registers:

    * program (EFUSE_CONF = 0x5A5A, EFUSE_CMD bit 1): every bit set in a write register is burnt,
      unless WR_DIS protects it; a burnt bit stays set (OR into the array), nothing is cleared;
    * read (EFUSE_CONF = 0x5AA5, EFUSE_CMD bit 0): the read registers are loaded from the array;
      blocks and fields that RD_DIS protects read as 0.

    A command whose operation code is not in EFUSE_CONF does nothing. Both complete at once and
    EFUSE_CMD reads 0 again (espefuse and ESP-IDF poll it). The write registers keep their value
    until software clears them or the chip resets (ESP-IDF's esp_efuse_utility_burn_chip clears
    them itself after a burn); re-programming the same bits changes nothing. Coding scheme NONE
    (CODING_SCHEME = 0, this chip's): BLOCK1..3 are 256 plain bits and EFUSE_DEC_STATUS is 0; the
    3/4 scheme a chip burnt to CODING_SCHEME = 1 would decode is not modelled.
    """

    def __init__(
        self,
        mac: bytes,
        *,
        minor_revision: int = 0,
        ck8m_freq: int = 0x36,
        security: Security = UNSECURED,
    ) -> None:
        self.mac = mac
        factory = self.factory_words(mac, minor_revision, ck8m_freq, security)
        self.burnt = [factory] + [[0] * n for n in BLOCK_WORDS[1:]]  # the array itself
        self.reset()

    @staticmethod
    def factory_words(
        mac: bytes, minor_revision: int, ck8m_freq: int, security: Security
    ) -> list[int]:
        """BLOCK0 as shipped (fact sheet §3.6): MAC and its CRC, package D0WD, rev v3.x, CK8M."""
        return [
            security.rdata0(),  # FLASH_CRYPT_CNT, nothing read- or write-protected
            int.from_bytes(mac[2:6], "big"),
            (mac_crc8(mac) << 16) | (mac[0] << 8) | mac[1],
            0x0000A200,
            0x00000A00 | ck8m_freq,  # ADC Vref in eFuse, CK8M freq
            0x00100000 | ((minor_revision & 3) << 24),
            security.rdata6(),  # coding scheme None, ABS_DONE_0/1
        ]

    def reset(self) -> None:
        """Chip reset: the controller senses the array; its registers return to 0."""
        self.wdata = [[0] * n for n in BLOCK_WORDS]
        self._registers: dict[int, int] = {}  # EFUSE_CONF, clock settings, interrupts
        self._sense()

    # -- registers ------------------------------------------------------------------------------
    @staticmethod
    def owns(address: int) -> bool:
        return EFUSE_BASE <= address < EFUSE_BASE + EFUSE_END

    def read(self, address: int) -> int:
        offset = address - EFUSE_BASE
        for rows, base in ((self.rdata, BLOCK_READ), (self.wdata, BLOCK_WRITE)):
            found = _word_at(offset, base)
            if found is not None:
                return rows[found[0]][found[1]]
        return self._registers.get(offset, 0)  # EFUSE_CMD: 0, the command is done

    def write(self, address: int, value: int) -> None:
        offset = address - EFUSE_BASE
        found = _word_at(offset, BLOCK_WRITE)
        if found is not None:
            self.wdata[found[0]][found[1]] = value
        elif offset == EFUSE_CMD:
            self._command(value)
        elif _word_at(offset, BLOCK_READ) is None and offset != EFUSE_DEC_STATUS:
            self._registers[offset] = value  # read registers and the decoder status: read-only

    def words(self) -> dict[int, int]:
        """EFUSE_BLK0_RDATA0..6 by address, as software reads them now."""
        return {EFUSE_BASE + 4 * i: word for i, word in enumerate(self.rdata[0])}

    # -- what the chip's fuses say --------------------------------------------------------------
    @property
    def security(self) -> Security:
        """The flash-encryption and secure-boot eFuses as the chip reads them now."""
        rdata0, rdata6 = self.rdata[0][0], self.rdata[0][6]
        return Security(
            flash_crypt_cnt=(rdata0 >> FLASH_CRYPT_CNT_SHIFT) & FLASH_CRYPT_CNT_BITS,
            abs_done_0=bool(rdata6 & ABS_DONE_0),
            abs_done_1=bool(rdata6 & ABS_DONE_1),
        )

    @property
    def ck8m_freq(self) -> int:
        """CLK8M_FREQ, EFUSE_BLK0_RDATA4 bits 0-7 (the ROM's baud workaround reads it, §5.10)."""
        return self.rdata[0][4] & 0xFF

    # -- the controller -------------------------------------------------------------------------
    def _command(self, cmd: int) -> None:
        conf = self._registers.get(EFUSE_CONF, 0)
        if cmd & CMD_PROGRAM and conf == CONF_PROGRAM:
            self._program()
        if cmd & CMD_READ and conf == CONF_READ:
            self._sense()

    def _program(self) -> None:
        locked = _protected(self.rdata[0][0] & 0xFFFF, WRITE_PROTECT, WRITE_PROTECT_BLOCK)
        for block, words in enumerate(self.wdata):
            for i, word in enumerate(words):
                self.burnt[block][i] |= word & ~locked[block][i] & 0xFFFFFFFF

    def _sense(self) -> None:
        hidden = _protected(self.burnt[0][0] >> 16 & 0xF, READ_PROTECT, READ_PROTECT_BLOCK)
        self.rdata = [
            [word & ~mask & 0xFFFFFFFF for word, mask in zip(words, masks, strict=True)]
            for words, masks in zip(self.burnt, hidden, strict=True)
        ]


def _word_at(offset: int, bases: tuple[int, ...]) -> tuple[int, int] | None:
    """(block, word) of the register at ``offset`` in one of the register banks ``bases``."""
    for block, base in enumerate(bases):
        if base <= offset < base + 4 * BLOCK_WORDS[block]:
            return block, (offset - base) // 4
    return None
