"""The simulated NOR flash: erase/program physics (bits only clear), ranges, RDID, SFDP, status."""

from __future__ import annotations

import random
import struct

import pytest

from rig.sim.parts.flash import FlashRangeError, NorFlash


def test_nor_new_flash_is_erased():
    f = NorFlash(0x100000)
    assert f.view() == b"\xff" * 0x100000
    assert f.is_blank(0, 0x100000)


def test_nor_erase_is_sector_granular():
    f = NorFlash(0x100000)
    f.preload(0, b"\x00" * 0x5000)
    f.erase(0x1800, 0x10)  # inside one sector: the whole sector goes
    assert f.read(0x0000, 0x1000) == b"\x00" * 0x1000
    assert f.read(0x1000, 0x1000) == b"\xff" * 0x1000
    assert f.read(0x2000, 0x3000) == b"\x00" * 0x3000
    f.erase(0x2FFF, 2)  # straddles a boundary: both sectors
    assert f.read(0x2000, 0x2000) == b"\xff" * 0x2000
    assert f.read(0x4000, 0x1000) == b"\x00" * 0x1000
    f.erase(0x4000, 0)  # nothing
    assert f.read(0x4000, 0x1000) == b"\x00" * 0x1000


def test_nor_program_is_bitwise_and():
    f = NorFlash(0x100000)
    f.preload(0x100, b"\xf0" * 4 + b"\x5a" * 4)
    f.program(0x100, b"\x0f" * 4 + b"\xff" * 4)
    assert f.read(0x100, 8) == b"\x00" * 4 + b"\x5a" * 4
    f.program(0x200, b"\x12\x34")  # on erased flash a program is a plain write
    assert f.read(0x200, 2) == b"\x12\x34"
    f.program(0x200, b"\xff\xff")  # 0xFF never sets a bit back to 1
    assert f.read(0x200, 2) == b"\x12\x34"
    f.erase(0x200, 1)
    f.program(0x200, b"\x56")
    assert f.read(0x200, 1) == b"\x56"


def test_nor_erase_chip():
    f = NorFlash(0x100000)
    f.preload(0x1234, b"\x00" * 100)
    f.erase_chip()
    assert f.is_blank(0, f.size)


@pytest.mark.parametrize(
    "op",
    [
        lambda f: f.read(0xFFFFF, 2),
        lambda f: f.read(-1, 1),
        lambda f: f.program(0x100000, b"\x00"),
        lambda f: f.program(0xFFFFE, b"\x00" * 3),
        lambda f: f.erase(0x100000, 1),
        lambda f: f.erase(0xFFFFF, 2),
        lambda f: f.preload(0xFFFF0, b"\x00" * 0x11),
    ],
)
def test_nor_range_errors(op):
    f = NorFlash(0x100000)
    f.preload(0xFF000, b"\x00" * 0x1000)
    with pytest.raises(FlashRangeError):
        op(f)
    assert f.read(0xFF000, 0x1000) == b"\x00" * 0x1000  # nothing half-done


def test_nor_bad_size_rejected():
    with pytest.raises(ValueError):
        NorFlash(0x1000)


def test_nor_save_load_round_trip(tmp_path):
    data = random.Random(3).randbytes(0x100000)
    f = NorFlash(0x100000)
    f.preload(0, data)
    f.save(tmp_path / "img.bin")
    assert (tmp_path / "img.bin").read_bytes() == data
    g = NorFlash(0x100000)
    g.load(tmp_path / "img.bin")
    assert g.view() == data
    (tmp_path / "short.bin").write_bytes(b"\x01\x02\x03")
    g.load(tmp_path / "short.bin")
    assert g.read(0, 4) == b"\x01\x02\x03\xff"
    assert g.is_blank(3, g.size - 3)
    (tmp_path / "long.bin").write_bytes(b"\x00" * (0x100000 + 1))
    with pytest.raises(ValueError):
        g.load(tmp_path / "long.bin")
    assert g.read(0, 3) == b"\x01\x02\x03"


def test_nor_sfdp_table():
    f = NorFlash()
    table = f.sfdp()
    assert table[:4] == b"SFDP"
    assert f.command(0x5A, 0, b"", 4) == b"SFDP"
    # esptool's XMC check reads byte 0x10: 0x20 would trigger its XMC recovery sequence
    assert f.command(0x5A, 0x10, b"", 1) == b"\xef"
    # the basic flash parameter table declares the density (bits - 1)
    bfpt = table[0x80:0xC0]
    assert struct.unpack_from("<I", bfpt, 4)[0] == 0x400000 * 8 - 1


@pytest.mark.parametrize(
    ("size", "rdid"),
    [(0x400000, b"\xef\x40\x16"), (0x200000, b"\xef\x40\x15"), (0x1000000, b"\xef\x40\x18")],
)
def test_nor_rdid(size, rdid):
    assert NorFlash(size).command(0x9F, None, b"", 3) == rdid


def test_nor_unknown_command_clocks_out_ff():
    assert NorFlash().command(0xEE, None, b"", 4) == b"\xff" * 4


def test_nor_status_write_needs_enable():
    f = NorFlash()
    assert f.command(0x05, None, b"", 1) == b"\x00"
    assert f.command(0x35, None, b"", 1) == b"\x02"
    f.command(0x01, None, b"\x1c\x00", 0)  # no WREN: ignored
    assert f.command(0x05, None, b"", 1) == b"\x00"
    assert f.command(0x35, None, b"", 1) == b"\x02"
    f.command(0x06, None, b"", 0)  # WREN
    f.command(0x01, None, b"\x1c\x00", 0)  # 16-bit WRSR
    assert f.command(0x05, None, b"", 1) == b"\x1c"
    assert f.command(0x35, None, b"", 1) == b"\x00"
    f.command(0x31, None, b"\x02", 0)  # WEL was consumed by the previous write
    assert f.command(0x35, None, b"", 1) == b"\x00"
    f.command(0x50, None, b"", 0)  # write enable for volatile status register
    f.command(0x31, None, b"\x02", 0)
    assert f.command(0x35, None, b"", 1) == b"\x02"
    f.command(0x06, None, b"", 0)
    f.command(0x04, None, b"", 0)  # WRDI cancels WREN
    f.command(0x01, None, b"\x00", 0)
    assert f.command(0x05, None, b"", 1) == b"\x1c"
