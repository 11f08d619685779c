"""The flasher stub personality, driven packet by packet: two status bytes, SYNC value 0, raw
MD5, streamed READ_FLASH with acks, ERASE_REGION, deferred errors (fact sheet §3.7, §5)."""

from __future__ import annotations

import hashlib
import random
import struct

from sim_harness import SYNC, upload_stub

from rig.sim.loader.protocol import HEADER, Op, data_checksum


def test_stub_upload_mem_end_reply_then_ohai(stub):
    _, frames = stub
    assert len(frames) == 2
    direction, op, size, _ = HEADER.unpack_from(frames[0])
    assert (direction, op, frames[0][8:]) == (1, Op.MEM_END, b"\x00\x00\x00\x00")
    assert frames[1] == b"OHAI"


def test_stub_sync_value_zero_two_status_bytes(stub):
    d, _ = stub
    replies = d.call(Op.SYNC, SYNC)
    assert len(replies) == 8
    for r in replies:
        assert HEADER.unpack_from(r) == (1, Op.SYNC, 2, 0)
        assert r[8:] == b"\x00\x00"


def test_stub_unknown_opcode_c300(stub):
    d, _ = stub
    assert d.one(0x55, b"\x00" * 4)[1] == b"\xc3\x00"
    assert d.one(Op.READ_FLASH_SLOW, struct.pack("<II", 0, 64))[1] == b"\xc3\x00"


def test_stub_get_security_info_ff00(stub):
    d, _ = stub
    assert d.one(Op.GET_SECURITY_INFO)[1] == b"\xff\x00"


def test_stub_flash_data_checksum_error_c100(stub):
    d, _ = stub
    block = random.Random(6).randbytes(0x4000)
    _, body = d.one(Op.FLASH_BEGIN, struct.pack("<IIIII", 0x3000, 1, 0x4000, 0x5000, 0))
    assert body == b"\x00\x00"
    _, body = d.data_cmd(Op.FLASH_DATA, block, 0, checksum=data_checksum(block) ^ 0x80)
    assert body == b"\xc1\x00"
    assert d.board.flash.is_blank(0x5000, 0x4000)
    assert d.data_cmd(Op.FLASH_DATA, block, 0)[1] == b"\x00\x00"
    # only the announced 0x3000 bytes are written; the padding of the block is dropped
    assert d.board.flash.read(0x5000, 0x3000) == block[:0x3000]
    assert d.board.flash.is_blank(0x8000, 0x1000)
    assert d.one(Op.FLASH_END, struct.pack("<I", 1))[1] == b"\x00\x00"


def test_stub_md5_is_raw(stub):
    d, _ = stub
    d.board.flash.preload(0x1000, b"\x42" * 0x123)
    _, body = d.one(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x1000, 0x123, 0, 0))
    assert body == hashlib.md5(b"\x42" * 0x123).digest() + b"\x00\x00"


def test_stub_erase_region_alignment(stub):
    d, _ = stub
    d.board.flash.preload(0x10000, b"\x00" * 0x3000)
    assert d.one(Op.ERASE_REGION, struct.pack("<II", 0x10800, 0x1000))[1] == b"\xc0\x00"
    assert d.one(Op.ERASE_REGION, struct.pack("<II", 0x10000, 0x800))[1] == b"\xc0\x00"
    assert d.board.flash.read(0x10000, 0x3000) == b"\x00" * 0x3000
    assert d.one(Op.ERASE_REGION, struct.pack("<II", 0x11000, 0x1000))[1] == b"\x00\x00"
    assert d.board.flash.read(0x10000, 0x1000) == b"\x00" * 0x1000
    assert d.board.flash.is_blank(0x11000, 0x1000)
    assert d.board.flash.read(0x12000, 0x1000) == b"\x00" * 0x1000


def test_stub_read_flash_stream_with_acks(stub):
    d, _ = stub
    data = random.Random(8).randbytes(0x3800)
    d.board.flash.preload(0x40000, data)
    frames = d.call(Op.READ_FLASH, struct.pack("<IIII", 0x40000, len(data), 0x1000, 64))
    assert HEADER.unpack_from(frames[0])[:2] == (1, Op.READ_FLASH)
    assert frames[0][8:] == b"\x00\x00"
    got = b"".join(frames[1:])
    assert 0 < len(frames) - 1 <= 64  # packets in flight before the first ack
    assert all(len(f) == 0x1000 for f in frames[1:])
    digest = None
    while digest is None:
        more = d.raw(struct.pack("<I", len(got)))
        for f in more:
            if len(got) == len(data):
                digest = f
            else:
                got += f
    assert got == data
    assert digest == hashlib.md5(data).digest()
    assert d.one(0x55)[1] == b"\xc3\x00"  # back to command mode after the digest


def test_stub_reupload_into_running_stub(stub):
    """--before no-reset-no-sync: esptool uploads the stub again into the running stub."""
    d, _ = stub
    frames = upload_stub(d)
    assert frames[-1] == b"OHAI"
    assert HEADER.unpack_from(frames[0])[:2] == (1, Op.MEM_END)
    assert frames[0][8:] == b"\x00\x00"
    assert d.board.mode == "stub"


def test_md5_and_read_charge_the_loaders_chip_side_time(stub, monkeypatch):
    """rig.sim.loader.costs: SPI_FLASH_MD5 costs a flash read plus a hash of the range, each
    READ_FLASH packet a read plus a hash (the stub's closing digest); the ROM's figures are its
    own. Spent through the board's ``busy`` (recorded here, not slept), scaled by chip_costs."""
    from rig.sim.loader import costs

    d, _ = stub
    spent: list[float] = []
    monkeypatch.setattr(d.board.chip, "busy", spent.append)
    monkeypatch.setattr(d.board.chip, "chip_costs", 2.0)
    d.one(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0, 0x10000, 0, 0))
    assert spent == [2.0 * (0x10000 / costs.STUB.flash_read_bps + 0x10000 / costs.STUB.md5_bps)]
    spent.clear()
    sent = d.board.chip.flash_sent
    d.call(Op.READ_FLASH, struct.pack("<IIII", 0, 0x2000, 0x1000, 64))
    d.raw(struct.pack("<I", 0x2000))
    assert spent == [2.0 * costs.STUB.seconds(read=0x1000, md5=0x1000)] * 2
    assert d.board.chip.flash_sent - sent == 0x2000  # what crossed the wire, counted
    assert costs.ROM.seconds(read=0x10000, md5=0x10000) > costs.STUB.seconds(
        read=0x10000, md5=0x10000
    )
    monkeypatch.setattr(d.board.chip, "chip_costs", 0.0)
    spent.clear()
    d.one(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0, 0x10000, 0, 0))
    assert spent == []  # unpaced: free
