"""The ROM loader personality, driven packet by packet (no esptool process): SYNC, registers,
four status bytes, hex MD5, READ_FLASH_SLOW, checksum errors and deflated writes (fact sheet
§1.3, §2, §5). The stub's tests are in test_stub_loader.py; the fixtures in conftest.py.
"""

from __future__ import annotations

import hashlib
import random
import struct
import threading
import zlib

import pytest
from sim_harness import SYNC, Driver

from rig.sim.loader import slip
from rig.sim.loader.protocol import HEADER, Op, data_checksum


def test_the_rom_banner_precedes_its_first_reply_even_when_the_boards_timers_run_late(
    loader_board,
):
    """A real ROM prints its banner before its download loop reads the UART: a host that syncs
    at once gets the banner first, then SLIP. The simulator's later console lines run on a timer
    thread; a busy machine delays that thread, and a reply that overtook the banner put "ets ..."
    in the middle of esptool's next command ("Invalid head of packet (0x65)")."""
    d = Driver(loader_board)
    late = threading.Event()
    loader_board.chip.timers.call_later(0, lambda: late.wait(5))  # the timer thread is busy
    try:
        loader_board.boot_into("download")
        with loader_board.lock:
            loader_board.chip.receive(slip.encode(HEADER.pack(0, Op.SYNC, len(SYNC), 0) + SYNC))
    finally:
        late.set()
    sent = b"".join(d.uart.sent)
    banner = sent.find(b"waiting for download\r\n")
    assert banner != -1 and sent.find(b"\xc0") > banner, sent[:200]


def test_rom_sync_eight_nonzero_replies(rom):
    replies = rom.call(Op.SYNC, SYNC)
    assert len(replies) == 8
    for r in replies:
        direction, op, size, value = HEADER.unpack_from(r)
        assert (direction, op, size) == (1, Op.SYNC, 4)
        assert value != 0
        assert r[8:] == b"\x00\x00\x00\x00"


def test_rom_read_reg_magic_and_efuse(rom):
    value, body = rom.one(Op.READ_REG, struct.pack("<I", 0x40001000))
    assert value == 0x00F01D83
    assert body == b"\x00\x00\x00\x00"
    value, _ = rom.one(Op.READ_REG, struct.pack("<I", 0x3FF5A00C))
    assert value == 0x0000A200


@pytest.mark.parametrize("op", [0x55, Op.READ_FLASH, Op.ERASE_FLASH, Op.ERASE_REGION])
def test_rom_unknown_opcode_echoes_with_0105(rom, op):
    _, body = rom.one(op, b"\x00" * 8)
    assert body == b"\x01\x05\x00\x00"


def test_rom_get_security_info_fails_0105(rom):
    _, body = rom.one(Op.GET_SECURITY_INFO)
    assert body == b"\x01\x05\x00\x00"


def test_rom_malformed_request_0105(rom):
    _, body = rom.one(Op.READ_REG, b"\x00\x10")  # 2 bytes where 4 are needed
    assert body == b"\x01\x05\x00\x00"


def test_rom_flash_data_checksum_error_then_retry(rom):
    d = rom
    assert d.one(Op.SPI_ATTACH, b"\x00" * 8)[1] == b"\x00" * 4
    block = random.Random(5).randbytes(0x400)
    _, body = d.one(Op.FLASH_BEGIN, struct.pack("<IIII", 0x400, 1, 0x400, 0x3000))
    assert body == b"\x00" * 4
    _, body = d.data_cmd(Op.FLASH_DATA, block, 0, checksum=data_checksum(block) ^ 0x01)
    assert body == b"\x01\x07\x00\x00"
    assert d.board.flash.is_blank(0x3000, 0x400)  # nothing written on a bad block
    _, body = d.data_cmd(Op.FLASH_DATA, block, 0)  # esptool re-sends the same block
    assert body == b"\x00" * 4
    assert d.board.flash.read(0x3000, 0x400) == block


def test_rom_md5_is_lowercase_hex(rom):
    d = rom
    data = random.Random(9).randbytes(0x1000)
    d.board.flash.preload(0x8000, data)
    _, body = d.one(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x8000, 0x1000, 0, 0))
    # not attached yet: the ROM sees idle-high 0xFF, not the data
    assert body == hashlib.md5(b"\xff" * 0x1000).hexdigest().encode() + b"\x00" * 4
    d.one(Op.SPI_ATTACH, b"\x00" * 8)
    _, body = d.one(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x8000, 0x1000, 0, 0))
    assert body == hashlib.md5(data).hexdigest().encode() + b"\x00" * 4


def test_rom_read_flash_slow_always_64_bytes(rom):
    d = rom
    d.board.flash.preload(0x100, bytes(range(64)))
    d.one(Op.SPI_ATTACH, b"\x00" * 8)
    _, body = d.one(Op.READ_FLASH_SLOW, struct.pack("<II", 0x100, 16))
    assert len(body) == 64 + 4
    assert body[:16] == bytes(range(16))
    assert body[64:] == b"\x00" * 4
    _, body = d.one(Op.READ_FLASH_SLOW, struct.pack("<II", 0x100, 65))
    assert body[:2] == b"\x01\x0a"  # esptool: 0x010A "Flash read length error"


def test_rom_deflate_write(rom):
    d = rom
    d.one(Op.SPI_ATTACH, b"\x00" * 8)
    image = bytes(range(256)) * 20  # 5120 bytes
    comp = zlib.compress(image, 9)
    size = (len(image) + 0x3FF) // 0x400 * 0x400
    _, body = d.one(Op.FLASH_DEFL_BEGIN, struct.pack("<IIII", size, 1, 0x400, 0x20000))
    assert body == b"\x00" * 4
    for seq in range(0, len(comp), 0x400):
        assert d.data_cmd(Op.FLASH_DEFL_DATA, comp[seq : seq + 0x400], seq // 0x400)[1] == (
            b"\x00" * 4
        )
    assert d.board.flash.read(0x20000, len(image)) == image
