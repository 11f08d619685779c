"""The SPI1 user-command engine, driven by esptool's own ``run_spiflash_command``."""

from __future__ import annotations

from sim_harness import RegEsp

from rig.sim.parts.flash import NorFlash
from rig.sim.parts.spi import Spi1


def _spi_esp(spi: Spi1) -> RegEsp:
    return RegEsp(spi.read, lambda a, v, m: spi.write(a, v))


def test_spi1_reads_ff_before_attach():
    spi = Spi1(NorFlash())
    esp = _spi_esp(spi)
    assert esp.flash_id() == 0xFFFFFF
    assert esp.read_spiflash_sfdp(0, 32) == 0xFFFFFFFF
    assert spi.commands == [0x9F, 0x5A]  # the commands did run, the flash just never saw them


def test_spi1_rdid_and_sfdp_after_attach():
    spi = Spi1(NorFlash())
    spi.attached = True
    esp = _spi_esp(spi)
    assert esp.flash_id() == 0x1640EF
    assert esp.read_spiflash_sfdp(0, 32) == 0x50444653  # "SFDP"
    assert esp.read_spiflash_sfdp(0x10, 8) == 0xEF
    assert esp.read_status(2) == 0x0200
    assert esp.read_status(3) == 0x600200
    # esptool restores USR/USR2 after every command and polls CMD until bit 18 clears
    assert spi.read(0x3FF42000) & (1 << 18) == 0
    cmd_writes = [v for a, v in esp.writes if a == 0x3FF42000]
    assert spi.commands == [0x9F, 0x5A, 0x5A, 0x05, 0x35, 0x05, 0x35, 0x15]
    assert cmd_writes == [1 << 18] * 8


def test_spi1_stale_lengths_are_ignored():
    """A MISO read after an SFDP command (which set USR1/ADDR) must not inherit its address."""
    spi = Spi1(NorFlash())
    spi.attached = True
    esp = _spi_esp(spi)
    assert esp.read_spiflash_sfdp(4, 8) == 0x05  # SFDP revision byte sets ADDR and USR1
    assert esp.flash_id() == 0x1640EF  # RDID without USR_ADDR: no address phase
    # the 24-bit RDID answer is masked to 24 bits even though W0 is 32 bits wide
    assert spi.read(0x3FF42080) == 0x1640EF


def test_spi1_write_status_round_trip_through_esptool():
    flash = NorFlash()
    spi = Spi1(flash)
    spi.attached = True
    esp = _spi_esp(spi)
    esp.write_status(0x0000, num_bytes=2)
    assert esp.read_status(2) == 0x0000
    esp.write_status(0x0200, num_bytes=2)
    assert esp.read_status(2) == 0x0200
    assert flash.status[:2] == bytearray(b"\x00\x02")
    assert not flash.write_enabled and not flash.volatile_sr_write  # WRDI at the end


def test_spi1_reset_detaches():
    spi = Spi1(NorFlash())
    spi.attached = True
    spi.reset()
    assert _spi_esp(spi).flash_id() == 0xFFFFFF
