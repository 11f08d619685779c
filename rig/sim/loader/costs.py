"""What reading and hashing flash costs on the chip, per loader: the paced simulator's chip side.

The UART is not the only clock: SPI_FLASH_MD5 reads the range over SPI and hashes it before it
answers, and the stub's READ_FLASH reads (and hashes, for its closing digest) every packet
before it sends it. Free chip-side work would make every MD5-heavy strategy (the rig's
compare-then-write, the blank-skipping dump, every verify) look better than it is.

Where the figures come from - estimates, not measurements: we found no timed ``verify-flash``
or ``read-flash`` figure for a real ESP32 in esptool's code or documentation (its only number,
``MD5_TIMEOUT_PER_MB`` = 8 s, is a timeout bound, not a measurement). So each is derived from
datasheet facts, and the bench prints how its results move at half and double these figures
(``chip_costs`` scale on a simulated slot):

* **ROM loader**: the CPU runs from the 40 MHz crystal after reset (ESP32 TRM §3.2, CPU_CLK
  source XTAL after reset; the simulator's APB is 40 MHz in download mode). The ROM reads flash
  in slow-read mode (one data line) at an assumed 20 MHz SPI clock: 2.5 MB/s raw, ~2 MB/s after
  the command/address bits of each short transfer. MD5 (RFC 1321: 64 steps of 4-6 ALU ops and a
  load per 64-byte block, ~10 cycles/byte on a single-issue core running 0-wait-state ROM code)
  at 40 MHz: ~4 MB/s.
* **Flasher stub**: it runs the CPU from the PLL (240 MHz, APB 80 MHz, as rig.sim.chip.chip
  models it; we have no primary source for the stub's clock either) and reads with
  the SPI1 controller at 40 MHz in DIO (two data lines: 10 MB/s raw; 64-byte transactions with
  command, 12 address clocks and dummy cycles: ~8 MB/s). MD5 at ~10 cycles/byte at 240 MHz:
  ~24 MB/s, taken as 20 MB/s for cache misses on the stub's code.

Reading and hashing do not overlap (the CPU waits for each SPI transaction), so their costs add.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FREE", "ROM", "STUB", "ChipCosts"]


@dataclass(frozen=True)
class ChipCosts:
    flash_read_bps: float  # bytes/s the loader reads from flash over SPI
    md5_bps: float  # bytes/s its MD5 hashes

    def seconds(self, *, read: int = 0, md5: int = 0, scale: float = 1.0) -> float:
        """Time to read ``read`` bytes and hash ``md5`` bytes, ``scale`` times the estimate."""
        if scale <= 0:
            return 0.0
        return scale * (read / self.flash_read_bps + md5 / self.md5_bps)


ROM = ChipCosts(flash_read_bps=2_000_000, md5_bps=4_000_000)
STUB = ChipCosts(flash_read_bps=8_000_000, md5_bps=20_000_000)
FREE = ChipCosts(flash_read_bps=float("inf"), md5_bps=float("inf"))
