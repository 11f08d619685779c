"""A NOR flash chip as the ESP32 sees it on SPI1: array, erase/program physics, id, SFDP, status.

NOR physics (any SPI NOR datasheet, e.g. Winbond W25Q32JV §8): an erase sets a whole 4 KB sector
(or 64 KB block, or the chip) to 0xFF; page programming can only clear bits, so the stored byte
becomes ``old & new``. Rewriting without an erase therefore corrupts data exactly as silicon does,
which is what makes the simulated flash an honest witness for the rig's erase/write/verify logic.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SECTOR_SIZE = 0x1000
BLOCK_SIZE = 0x10000
PAGE_SIZE = 0x100

# RDID answers: manufacturer, memory type, capacity (2**capacity bytes). Winbond W25Q32/64/128.
SIZE_TO_JEDEC = {
    0x100000: 0x1440EF,
    0x200000: 0x1540EF,
    0x400000: 0x1640EF,
    0x800000: 0x1740EF,
    0x1000000: 0x1840EF,
}


@dataclass(frozen=True)
class NorTiming:
    """Typical W25Q32JV datasheet values (table 9.6 "AC electrical characteristics").

    ``tSE`` 4 KB sector erase 45 ms, ``tBE2`` 64 KB block erase 150 ms, ``tCE`` chip erase 10 s
    (typ.), ``tPP`` page program 0.4 ms. Used only when the simulated board runs in realistic
    timing; the default :data:`INSTANT` makes every operation free.
    """

    sector_erase_s: float = 0.045
    block_erase_s: float = 0.150
    chip_erase_s: float = 10.0
    page_program_s: float = 0.0004


REALISTIC = NorTiming()
INSTANT = NorTiming(0.0, 0.0, 0.0, 0.0)


class NorFlash:
    """The flash array plus the SPI NOR command set esptool drives through SPI1.

    Thread-safe: the simulated chip and test code (inspect / preload) may touch it concurrently.
    """

    def __init__(
        self,
        size: int = 0x400000,
        *,
        jedec_id: int | None = None,
        timing: NorTiming = INSTANT,
        sleep=time.sleep,
    ) -> None:
        if size <= 0 or size % BLOCK_SIZE:
            raise ValueError(f"flash size must be a positive multiple of 64 KB, got {size:#x}")
        self.size = size
        self.jedec_id = SIZE_TO_JEDEC.get(size, 0x1640EF) if jedec_id is None else jedec_id
        self.timing = timing
        self._sleep = sleep
        self._data = bytearray(b"\xff" * size)
        self._lock = threading.Lock()
        # Status registers SR1..SR3 (W25Q32JV §7.1): SR2 bit 1 = QE, set at the factory on
        # parts sold for quad I/O; esptool's read-flash-status shows 0x0200.
        self.status = bytearray([0x00, 0x02, 0x60])
        self.write_enabled = False
        self.volatile_sr_write = False
        self.erase_count = 0  # sectors erased since creation; useful to tests and benchmarks
        self.program_bytes = 0
        # Fault injection (rig.sim.faults): ``hook(offset, data, program)`` decides what of a
        # page program reaches the array (``program`` is the physics) and may raise.
        self.program_hook: Callable[[int, bytes, Callable[[int, bytes], None]], None] | None = None

    # -- array access ---------------------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        with self._lock:
            return bytes(self._data[offset : offset + length])

    def view(self) -> bytes:
        """A snapshot of the whole array."""
        with self._lock:
            return bytes(self._data)

    def erase(self, offset: int, length: int) -> None:
        """Erase every sector that ``[offset, offset+length)`` touches (sector-granular)."""
        if length <= 0:
            return
        first = offset - offset % SECTOR_SIZE
        last = offset + length
        last += (-last) % SECTOR_SIZE
        self._check_range(first, last - first)
        sectors = (last - first) // SECTOR_SIZE
        with self._lock:
            self._data[first:last] = b"\xff" * (last - first)
            self.erase_count += sectors
        self._wait_erase(first, last)

    def erase_chip(self) -> None:
        with self._lock:
            self._data[:] = b"\xff" * self.size
            self.erase_count += self.size // SECTOR_SIZE
        self._sleep(self.timing.chip_erase_s)

    def program(self, offset: int, data: bytes) -> None:
        """Page-program ``data``: each stored bit can only go from 1 to 0 (``old & new``)."""
        if not data:
            return
        self._check_range(offset, len(data))
        if self.program_hook is not None:
            self.program_hook(offset, data, self._program)
        else:
            self._program(offset, data)

    def _program(self, offset: int, data: bytes) -> None:
        if not data:
            return
        end = offset + len(data)
        with self._lock:
            old = int.from_bytes(self._data[offset:end], "little")
            new = old & int.from_bytes(data, "little")
            self._data[offset:end] = new.to_bytes(len(data), "little")
            self.program_bytes += len(data)
        pages = (end - 1) // PAGE_SIZE - offset // PAGE_SIZE + 1
        self._sleep(pages * self.timing.page_program_s)

    def preload(self, offset: int, data: bytes) -> None:
        """Put ``data`` in the array as a factory programmer would (no NOR physics, no time)."""
        self._check_range(offset, len(data))
        with self._lock:
            self._data[offset : offset + len(data)] = data

    def is_blank(self, offset: int, length: int) -> bool:
        return self.read(offset, length).count(0xFF) == length

    # -- image files ------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        """Load a flash image file; shorter files leave the rest erased, longer ones are refused."""
        data = Path(path).read_bytes()
        if len(data) > self.size:
            raise ValueError(f"{path}: {len(data)} bytes does not fit a {self.size:#x}-byte flash")
        with self._lock:
            self._data[:] = data + b"\xff" * (self.size - len(data))

    def save(self, path: str | os.PathLike) -> None:
        """Write the whole array atomically (temp file, fsync, rename)."""
        path = Path(path)
        snapshot = self.view()
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(snapshot)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- SFDP (JESD216) ---------------------------------------------------------------------
    def sfdp(self) -> bytes:
        """A JESD216 SFDP header plus basic parameter table, as a Winbond part answers 0x5A.

        esptool reads byte 0x10 (the first parameter header's id) to spot XMC parts (0x20) and
        the "SFDP" signature at 0 to check the SPI connection (fact sheet §4).
        """
        density_bits = self.size * 8 - 1
        header = b"SFDP" + bytes([0x05, 0x01, 0x01, 0xFF])  # rev 1.5, 2 headers (0-based), -
        param = bytes([0x00, 0x05, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF])  # BFPT at 0x80, 16 dw
        vendor = bytes([0xEF, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0xFF])  # 0x10: Winbond id
        table = bytearray(b"\xff" * 0x100)
        table[0:8] = header
        table[8:16] = param
        table[16:24] = vendor
        bfpt = bytearray(b"\xff" * 64)
        bfpt[0:4] = (0xFFF120E5).to_bytes(4, "little")  # 4 KB erase 0x20, 3-byte addressing
        bfpt[4:8] = density_bits.to_bytes(4, "little")
        table[0x80 : 0x80 + 64] = bfpt
        return bytes(table)

    # -- SPI command set ------------------------------------------------------------------
    def command(self, opcode: int, address: int | None, mosi: bytes, miso_len: int) -> bytes:
        """Execute one SPI NOR command; return ``miso_len`` bytes clocked out by the chip.

        Covers what esptool sends through the SPI1 user-command engine (fact sheet §4): RDID,
        RDSFDP, RDSR/RDSR2/RDSR3, WREN/WEVSR/WRDI, WRSR (8- and 16-bit)/WRSR2/WRSR3, the 0x66/0x99
        reset pair, plus READ (0x03) for completeness. Unknown opcodes clock out 0xFF (MISO idles
        high on a real bus).
        """
        out = b""
        if opcode == 0x9F:  # RDID
            out = self.jedec_id.to_bytes(3, "little")
        elif opcode == 0x5A:  # RDSFDP, 24-bit address + 8 dummy cycles
            table = self.sfdp()
            start = (address or 0) % len(table)
            out = (table[start:] + table)[:miso_len]
        elif opcode in (0x05, 0x35, 0x15):  # RDSR1..3
            out = bytes([self.status[(0x05, 0x35, 0x15).index(opcode)]])
        elif opcode == 0x06:  # WREN
            self.write_enabled = True
        elif opcode == 0x50:  # write enable for volatile status register
            self.volatile_sr_write = True
        elif opcode == 0x04:  # WRDI
            self.write_enabled = self.volatile_sr_write = False
        elif opcode in (0x01, 0x31, 0x11):  # WRSR (1 or 2 bytes), WRSR2, WRSR3
            if self.write_enabled or self.volatile_sr_write:
                first = (0x01, 0x31, 0x11).index(opcode)
                for i, value in enumerate(mosi[: 3 - first]):
                    self.status[first + i] = value
            self.write_enabled = self.volatile_sr_write = False
        elif opcode == 0x03 and address is not None:  # READ
            out = self.read(address % self.size, min(miso_len, self.size - address % self.size))
        elif opcode in (0x66, 0x99, 0xAB, 0xB9, 0x79):  # reset enable/reset, wake/sleep
            self.write_enabled = self.volatile_sr_write = False
        else:
            out = b""
        return (out + b"\xff" * miso_len)[:miso_len]

    # -- helpers ------------------------------------------------------------------------------
    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashRangeError(
                f"flash access {offset:#x}+{length:#x} outside the {self.size:#x}-byte chip"
            )

    def _wait_erase(self, first: int, last: int) -> None:
        t = self.timing
        if not (t.sector_erase_s or t.block_erase_s):
            return
        # A real driver uses 64 KB block erases for aligned runs and 4 KB sectors elsewhere.
        pos, cost = first, 0.0
        while pos < last:
            if pos % BLOCK_SIZE == 0 and last - pos >= BLOCK_SIZE:
                cost += t.block_erase_s
                pos += BLOCK_SIZE
            else:
                cost += t.sector_erase_s
                pos += SECTOR_SIZE
        self._sleep(cost)


class FlashRangeError(ValueError):
    """An address outside the chip."""
