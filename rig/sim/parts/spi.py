"""The ESP32 SPI1 user-command engine, as esptool drives it through WRITE_REG/READ_REG.

esptool's ``run_spiflash_command`` (fact sheet §4) loads USR/USR1/USR2/ADDR/MOSI_DLEN/MISO_DLEN
and W0.., sets SPI_CMD bit 18 (SPI_USR), polls until the bit clears and reads the answer from W0.
The engine runs the command on the flash chip at the moment bit 18 is written, so the poll sees
it done at once. Stale length/address registers are ignored unless the matching USR flag is set,
exactly as the peripheral does.
"""

from __future__ import annotations

import struct

from .flash import NorFlash

BASE = 0x3FF42000
CMD, ADDR, USR, USR1, USR2, MOSI_DLEN, MISO_DLEN = 0x00, 0x04, 0x1C, 0x20, 0x24, 0x28, 0x2C
W0, W_COUNT = 0x80, 16
END = BASE + 0x100

SPI_CMD_USR = 1 << 18
USR_COMMAND, USR_ADDR, USR_DUMMY, USR_MISO, USR_MOSI = 1 << 31, 1 << 30, 1 << 29, 1 << 28, 1 << 27


class Spi1:
    """SPI1 registers wired to one :class:`NorFlash`.

    ``attached`` models the ROM's "flash not attached" state: after a reset into download mode the
    ROM has not configured the SPI pins, so MISO reads idle-high 0xFF until SPI_ATTACH (esptool's
    own ``test_attach_flash`` relies on this). The stub attaches by itself.
    """

    def __init__(self, flash: NorFlash) -> None:
        self.flash = flash
        self.attached = False
        self.regs = dict.fromkeys(range(0, 0x100, 4), 0)
        self.commands: list[int] = []  # opcodes executed, newest last (bounded)

    def reset(self) -> None:
        self.attached = False
        self.regs = dict.fromkeys(range(0, 0x100, 4), 0)

    @staticmethod
    def owns(address: int) -> bool:
        return BASE <= address < END

    def read(self, address: int) -> int:
        return self.regs.get(address - BASE, 0)

    def write(self, address: int, value: int) -> None:
        offset = address - BASE
        if offset == CMD and value & SPI_CMD_USR:
            self._execute()
            value &= ~SPI_CMD_USR  # the user command completes "instantly"
        self.regs[offset & ~3] = value & 0xFFFFFFFF

    def _execute(self) -> None:
        usr, usr1, usr2 = self.regs[USR], self.regs[USR1], self.regs[USR2]
        opcode = usr2 & 0xFFFF if usr & USR_COMMAND else None
        address = None
        if usr & USR_ADDR:
            bits = ((usr1 >> 26) & 0x3F) + 1
            address = self.regs[ADDR] >> (32 - bits) if bits < 32 else self.regs[ADDR]
        mosi = b""
        if usr & USR_MOSI:
            nbytes = (self.regs[MOSI_DLEN] + 1 + 7) // 8
            words = [self.regs[W0 + 4 * i] for i in range(W_COUNT)]
            mosi = struct.pack(f"<{W_COUNT}I", *words)[:nbytes]
        miso_bits = self.regs[MISO_DLEN] + 1 if usr & USR_MISO else 0
        miso_len = (miso_bits + 7) // 8
        if opcode is None:
            return
        if len(self.commands) > 256:
            del self.commands[:128]
        self.commands.append(opcode)
        if self.attached:
            answer = self.flash.command(opcode, address, mosi, miso_len)
        else:  # pins not routed to the flash yet: nothing reaches it, MISO floats high
            answer = b"\xff" * miso_len
        if miso_len:
            padded = answer + b"\0" * ((-len(answer)) % 4)
            for i, word in enumerate(struct.unpack(f"<{len(padded) // 4}I", padded)):
                if i < W_COUNT:
                    mask = (
                        0xFFFFFFFF if miso_bits >= 32 * (i + 1) else (1 << (miso_bits - 32 * i)) - 1
                    )
                    self.regs[W0 + 4 * i] = word & mask
