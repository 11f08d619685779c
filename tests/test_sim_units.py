"""Unit tests of the simulator internals: SLIP, NOR flash, SPI1, eFuses, wire format, loaders.

No esptool process runs here, but esptool's own code is the referee wherever it can be: its
``slip_reader`` decodes what the simulator frames, its ``ESPLoader.checksum`` checks ours, its
``run_spiflash_command`` drives the SPI1 registers, and its ESP32 eFuse decoders read the words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import zlib
from importlib import resources

import pytest
from esptool.loader import ESPLoader, slip_reader
from esptool.targets.esp32 import ESP32ROM
from esptool.util import FatalError

from rig.esp32 import parse_mac
from rig.sim.board import SimBoard
from rig.sim.loader import slip
from rig.sim.loader.protocol import HEADER, MalformedRequest, Op, Request, data_checksum
from rig.sim.parts.efuse import EFUSE_BASE, ESPRESSIF_OUIS, Efuses, mac_from_seed
from rig.sim.parts.flash import FlashRangeError, NorFlash
from rig.sim.parts.registers import RegisterBus
from rig.sim.parts.spi import Spi1

# -- SLIP ---------------------------------------------------------------------------------------

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


# -- NOR flash ----------------------------------------------------------------------------------


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


# -- SPI1 driven by esptool's own run_spiflash_command --------------------------------------------


class RegEsp(ESP32ROM):
    """esptool's ESP32ROM with READ_REG/WRITE_REG short-circuited to a register model."""

    def __init__(self, read, write, baud: int = 115200) -> None:  # no port, no connect
        self._read, self._write = read, write
        self.writes: list[tuple[int, int]] = []
        self.cache = {"flash_id": None, "chip_id": None, "uart_no": None, "usb_pid": None}

        class _Port:
            baudrate = baud

        self._port = _Port()

    def read_reg(self, addr, timeout=None):
        return self._read(addr)

    def flash_id(self, cache=False):  # never serve a cached RDID: the test wants the bus
        return super().flash_id(cache=False)

    def write_reg(self, addr, value, mask=0xFFFFFFFF, delay_us=0, delay_after_us=0):
        self.writes.append((addr, value))
        self._write(addr, value, mask)


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


# -- eFuses and MAC -----------------------------------------------------------------------------


def test_mac_from_seed_stable_distinct_espressif_unicast():
    macs = {mac_from_seed(s) for s in range(200)}
    assert len(macs) == 200
    assert mac_from_seed("board-a") == mac_from_seed("board-a")
    assert mac_from_seed("board-a") != mac_from_seed("board-b")
    for mac in macs | {mac_from_seed("board-a")}:
        assert len(mac) == 6
        assert tuple(mac[:3]) in ESPRESSIF_OUIS
        assert not mac[0] & 0x01  # unicast
        assert not mac[0] & 0x02  # universally administered


@pytest.mark.parametrize("text", ["24:0a:c4:12:34:56", "240ac4123456", "24-0A-C4-12-34-56"])
def test_parse_mac_accepts(text):
    assert parse_mac(text) == bytes.fromhex("240ac4123456")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "24:0a:c4:12:34",
        "24:0a:c4:12:34:56:78",
        "24:0a:c4:12:34:5g",
        "24:0a-c4:12:34:56",  # mixed separators
        "240ac412345",
        "hello world!",
        "25:0a:c4:12:34:56",  # multicast bit set
        "ff:ff:ff:ff:ff:ff",
    ],
)
def test_parse_mac_rejects(text):
    with pytest.raises(ValueError):
        parse_mac(text)


def _efuse_esp(mac: bytes, **kw) -> RegEsp:
    spi = Spi1(NorFlash())
    bus = RegisterBus(Efuses(mac, **kw), spi, uart_clkdiv=lambda: 347, strap=lambda: 0x03)
    return RegEsp(bus.read, bus.write)


@pytest.mark.parametrize("seed", ["a", "b", 7])
def test_efuse_words_decode_with_esptool_rules(seed):
    mac = mac_from_seed(seed)
    esp = _efuse_esp(mac)
    assert bytes(esp.read_mac()) == mac
    assert esp.get_chip_description() == "ESP32-D0WD-V3 (revision v3.0)"
    assert esp.get_pkg_version() == 1
    assert esp.get_major_chip_version() == 3
    features = esp.get_chip_features()
    assert features[:3] == ["Wi-Fi", "BT", "Dual Core + LP Core"]
    assert "240MHz" in features and "Coding Scheme None" in features
    assert esp.get_crystal_freq() == 40
    assert esp.get_rom_cal_crystal_freq() / 1e6 == pytest.approx(40, abs=0.5)
    assert esp.get_chip_spi_pads() == (0, 0, 0, 0, 0)  # default SPI pins
    assert not esp.get_flash_encryption_enabled()
    assert not esp.get_secure_boot_enabled()


def test_efuse_minor_revision():
    assert _efuse_esp(mac_from_seed(1), minor_revision=1).get_chip_description() == (
        "ESP32-D0WD-V3 (revision v3.1)"
    )


def _espefuse_crc(raw_mac: bytes) -> int:
    """espefuse ``EfuseMacField.calc_crc`` (esp_crc8 of the ESP32 ROM), as espefuse checks it."""
    from espefuse.efuse.esp32.fields import EfuseMacField

    return EfuseMacField.calc_crc(raw_mac)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # espefuse imports click.parser
@pytest.mark.parametrize("mac", ["24:0a:c4:12:34:56", "3c:71:bf:ee:0f:c2"])
def test_efuse_mac_crc_matches_espefuse(mac):
    raw = parse_mac(mac)
    word2 = Efuses(raw).words()[EFUSE_BASE + 0x08]
    assert (word2 >> 16) & 0xFF == _espefuse_crc(raw)


# -- wire format --------------------------------------------------------------------------------


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


# -- the ROM loader and the stub, driven packet by packet ----------------------------------------


class RecordingUart:
    """Stands in for the board's UART: records what the chip sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.bauds: list[int] = []
        self.baud = 115200
        self.autobaud = False

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def set_baud(self, baud: int) -> None:
        self.bauds.append(baud)
        self.baud = baud

    def reset_baud(self, baud: int) -> None:
        self.baud = baud

    def wait_sent(self, timeout: float = 5.0) -> bool:
        return True

    def take_frames(self) -> list[bytes]:
        """Decoded SLIP frames sent since the last call (console text is dropped)."""
        data, self.sent = b"".join(self.sent), []
        return slip.SlipDecoder().feed(data)


class Driver:
    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self.uart = RecordingUart()
        board.chip.uart = self.uart

    def raw(self, payload: bytes) -> list[bytes]:
        with self.board.lock:
            self.board.chip.receive(slip.encode(payload))
        return self.uart.take_frames()

    def call(self, op: int, data: bytes = b"", checksum: int = 0) -> list[bytes]:
        return self.raw(HEADER.pack(0, op, len(data), checksum) + data)

    def one(self, op: int, data: bytes = b"", checksum: int = 0) -> tuple[int, bytes]:
        """Send a request, expect exactly one reply for ``op``; return (value, body)."""
        replies = self.call(op, data, checksum)
        assert len(replies) == 1, replies
        direction, rop, size, value = HEADER.unpack_from(replies[0])
        body = replies[0][HEADER.size :]
        assert (direction, rop, size) == (1, op, len(body))
        return value, body

    def data_cmd(self, op: int, payload: bytes, seq: int, checksum: int | None = None):
        cs = data_checksum(payload) if checksum is None else checksum
        return self.one(op, struct.pack("<IIII", len(payload), seq, 0, 0) + payload, cs)


SYNC = b"\x07\x07\x12\x20" + b"\x55" * 32


@pytest.fixture(scope="module")
def loader_board():
    board = SimBoard("l7x", boot="download", seed="units-loader")
    assert board.wait_for_console("waiting for download", 5)
    yield board
    board.close()


@pytest.fixture
def rom(loader_board):
    """A driver talking to a freshly reset ROM loader (blank flash)."""
    loader_board.chip.uart = loader_board.uart
    loader_board.boot_into("download")
    assert loader_board.mode == "download"
    loader_board.flash.preload(0, b"\xff" * loader_board.flash.size)
    return Driver(loader_board)


def _stub_json() -> dict:
    path = resources.files("esptool") / "targets" / "stub_flasher" / "2" / "esp32.json"
    return json.loads(path.read_text())


def upload_stub(d: Driver) -> list[bytes]:
    """The MEM_* upload esptool does (§3.7); returns the frames that follow MEM_END."""
    spec = _stub_json()
    ok = b"\x00\x00" if d.board.mode == "stub" else b"\x00\x00\x00\x00"
    for field, start in (("text", "text_start"), ("data", "data_start")):
        blob = base64.b64decode(spec[field])
        blocks = (len(blob) + 0x17FF) // 0x1800
        _, body = d.one(Op.MEM_BEGIN, struct.pack("<IIII", len(blob), blocks, 0x1800, spec[start]))
        assert body == ok
        for seq in range(blocks):
            _, body = d.data_cmd(Op.MEM_DATA, blob[seq * 0x1800 : (seq + 1) * 0x1800], seq)
            assert body == ok
    return d.call(Op.MEM_END, struct.pack("<II", 0, spec["entry"]))


@pytest.fixture
def stub(rom):
    frames = upload_stub(rom)
    assert rom.board.mode == "stub"
    return rom, frames


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
