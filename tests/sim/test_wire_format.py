"""The serial protocol's wire format: requests, checksums (esptool's ``ESPLoader.checksum``)."""

from __future__ import annotations

import random
import struct

import pytest
from esptool.loader import ESPLoader

from rig.sim.loader.protocol import HEADER, MalformedRequest, Op, Request, data_checksum


def test_data_checksum_equals_esptool_checksum():
    rng = random.Random(11)
    lengths = [*range(0, 130), 255, 256, 1023, 1024, 1025, 0x1800, 0x4000, 0x4001, 65536]
    for n in lengths:
        data = rng.randbytes(n)
        assert data_checksum(data) == ESPLoader.checksum(data), n
        assert 0 <= data_checksum(data) <= 0xFF
    assert data_checksum(b"") == 0xEF


def test_request_parse():
    pkt = HEADER.pack(0, Op.READ_REG, 4, 0x12) + struct.pack("<I", 0x40001000)
    req = Request.parse(pkt)
    assert (req.op, req.checksum, req.declared_size) == (Op.READ_REG, 0x12, 4)
    assert req.words(1) == (0x40001000,)
    with pytest.raises(MalformedRequest):
        req.words(2)


@pytest.mark.parametrize(
    "pkt",
    [
        b"",
        b"\x00\x08\x00\x00\x00\x00\x00",  # 7 bytes
        HEADER.pack(1, Op.SYNC, 0, 0),  # a response, not a request
        HEADER.pack(2, Op.SYNC, 0, 0),
    ],
)
def test_request_parse_rejects(pkt):
    assert Request.parse(pkt) is None


def test_request_words_checks_declared_size():
    # header says 8 bytes but 4 arrived: malformed
    req = Request.parse(HEADER.pack(0, Op.READ_REG, 8, 0) + b"\x00" * 4)
    with pytest.raises(MalformedRequest):
        req.words(1)
