"""SLIP framing of the simulated chip, with esptool's ``slip_reader`` and ``ESPLoader.write``
escaping as the referee."""

from __future__ import annotations

import random

import pytest
from esptool.loader import slip_reader
from esptool.util import FatalError

from rig.sim.loader import slip

PAYLOADS = [
    b"\x00\x08\x24\x00",
    b"\xc0",
    b"\xdb",
    b"\xdb\xdc",  # an escape sequence as plain data must survive a round trip
    b"\xc0\xdb\xc0\xdb\xdd\xdc",
    bytes(range(256)),
    random.Random(1).randbytes(5000),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{len(p)}B")
def test_slip_round_trip(payload):
    frame = slip.encode(payload)
    assert frame[0] == frame[-1] == 0xC0
    assert b"\xc0" not in frame[1:-1]
    assert slip.SlipDecoder().feed(frame) == [payload]


def test_slip_encode_matches_esptool_write():
    """The chip frames exactly as esptool's ``ESPLoader.write`` does (same escaping order)."""
    for payload in PAYLOADS:
        esptool_frame = (
            b"\xc0" + payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"
        )
        assert slip.encode(payload) == esptool_frame


class _BytesPort:
    """Just enough of a pyserial port for esptool's ``slip_reader``."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    def inWaiting(self) -> int:  # noqa: N802 - pyserial's name
        return len(self.data)

    def read(self, n: int = 1) -> bytes:
        out = bytes(self.data[:n])
        del self.data[:n]
        return out


def test_slip_frames_decode_with_esptool_reader():
    stream = b"".join(slip.encode(p) for p in PAYLOADS)
    reader = slip_reader(_BytesPort(stream), lambda *_: None)
    assert [next(reader) for _ in PAYLOADS] == PAYLOADS
    with pytest.raises(FatalError, match="Serial data stream stopped"):
        next(reader)


def test_slip_byte_by_byte_and_arbitrary_chunks():
    stream = b"".join(slip.encode(p) for p in PAYLOADS)
    dec = slip.SlipDecoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i : i + 1])
    assert got == PAYLOADS
    rng = random.Random(7)
    for _ in range(20):
        dec, got, pos = slip.SlipDecoder(), [], 0
        while pos < len(stream):
            n = rng.randint(1, 300)
            got += dec.feed(stream[pos : pos + n])
            pos += n
        assert got == PAYLOADS


def test_slip_noise_outside_frames_is_dropped():
    a, b = b"\x00\x08abc", b"\xdb\xc0xyz"
    stream = b"ets Jul 29 2019\r\n" + slip.encode(a) + b"\r\nnoise\x55\xdb" + slip.encode(b) + b"zz"
    assert slip.SlipDecoder().feed(stream) == [a, b]


def test_slip_back_to_back_delimiters():
    # C0 C0: the second delimiter opens the next frame, no empty packet is produced
    assert slip.SlipDecoder().feed(b"\xc0\xc0abc\xc0\xc0\xc0def\xc0") == [b"abc", b"def"]


@pytest.mark.parametrize("bad", [b"\xdb\x01", b"ab\xdb", b"\xdb\xdb\xdc"])
def test_slip_bad_escape_gives_none_then_resyncs(bad):
    dec = slip.SlipDecoder()
    assert dec.feed(b"\xc0" + bad + b"\xc0") == [None]
    assert dec.feed(slip.encode(b"\x00\x08ok")) == [b"\x00\x08ok"]


def test_slip_decoder_reset_drops_partial_frame():
    dec = slip.SlipDecoder()
    assert dec.feed(b"\xc0partial") == []
    dec.reset()
    assert dec.feed(b"junk" + slip.encode(b"next")) == [b"next"]
