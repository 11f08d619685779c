"""Chip identity: factory MACs and the eFuse words, decoded by esptool's and espefuse's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sim_harness import RegEsp

from rig.esp32 import parse_mac
from rig.sim.parts.efuse import EFUSE_BASE, ESPRESSIF_OUIS, Efuses, Security, mac_from_seed
from rig.sim.parts.flash import NorFlash
from rig.sim.parts.registers import RegisterBus
from rig.sim.parts.spi import Spi1


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


# -- the eFuse controller: program and read commands (espefuse efuse/esp32/mem_definition.py) ----
CONF, CMD, DEC_STATUS = EFUSE_BASE + 0x0FC, EFUSE_BASE + 0x104, EFUSE_BASE + 0x11C
BLK0_RDATA, BLK0_WDATA = EFUSE_BASE + 0x000, EFUSE_BASE + 0x01C
BLK3_RDATA, BLK3_WDATA = EFUSE_BASE + 0x078, EFUSE_BASE + 0x0D8


def _bus(**kw) -> RegisterBus:
    return RegisterBus(
        Efuses(mac_from_seed("ctl"), **kw),
        Spi1(NorFlash()),
        uart_clkdiv=lambda: 347,
        strap=lambda: 3,
    )


def _command(bus: RegisterBus, conf: int, cmd: int) -> None:
    bus.write(CONF, conf)
    bus.write(CMD, cmd)
    assert bus.read(CMD) == 0  # the controller clears its command bit when done


def _burn(bus: RegisterBus, writes: dict[int, int]) -> None:
    """What espefuse's burn_words + write_efuses do: write registers, program, read."""
    for address, value in writes.items():
        bus.write(address, value)
    _command(bus, 0x5A5A, 0x2)
    _command(bus, 0x5AA5, 0x1)


def test_program_then_read_updates_the_read_registers_only_after_the_read_command():
    bus = _bus()
    bus.write(BLK3_WDATA + 16, 0x5)  # BLOCK3 word 4: SECURE_VERSION
    _command(bus, 0x5A5A, 0x2)
    assert bus.read(BLK3_RDATA + 16) == 0  # burnt, not sensed yet
    _command(bus, 0x5AA5, 0x1)
    assert bus.read(BLK3_RDATA + 16) == 0x5
    assert bus.read(DEC_STATUS) == 0  # coding scheme NONE: nothing to decode, no errors
    bus.write(BLK3_RDATA + 16, 0)  # read registers are read-only
    assert bus.read(BLK3_RDATA + 16) == 0x5
    bus.reset()  # a chip reset senses the array again: burnt bits stay
    assert bus.read(BLK3_RDATA + 16) == 0x5 and bus.read(BLK3_WDATA + 16) == 0


def test_burning_only_sets_bits():
    bus = _bus()
    _burn(bus, {BLK3_WDATA + 16: 0b0101})
    _burn(bus, {BLK3_WDATA + 16: 0b0010})
    assert bus.read(BLK3_RDATA + 16) == 0b0111  # OR-ed: a set bit is never cleared
    _burn(bus, {BLK3_WDATA + 16: 0})
    assert bus.read(BLK3_RDATA + 16) == 0b0111


def test_a_command_without_its_operation_code_does_nothing():
    bus = _bus()
    bus.write(BLK3_WDATA, 0xFF)
    _command(bus, 0x5AA5, 0x2)  # program with the read code
    _command(bus, 0x5AA5, 0x1)
    assert bus.read(BLK3_RDATA) == 0


def test_write_protect_bits_in_block0_word0_are_honoured():
    bus = _bus()
    _burn(bus, {BLK0_WDATA: 1 << 14 | 1 << 9})  # WR_DIS: JTAG_DISABLE, BLOCK3
    _burn(bus, {BLK0_WDATA + 24: 1 << 6 | 1 << 7, BLK3_WDATA: 0xFF})
    assert bus.read(BLK0_RDATA + 24) & (1 << 6) == 0  # JTAG_DISABLE (wr_dis 14) unchanged
    assert bus.read(BLK0_RDATA + 24) & (1 << 7)  # DISABLE_DL_ENCRYPT (wr_dis 15) burnt
    assert bus.read(BLK3_RDATA) == 0  # the whole block is write-protected


def test_read_protected_blocks_read_as_zero():
    bus = _bus()
    _burn(bus, {BLK3_WDATA: 0x12345678})
    _burn(bus, {BLK0_WDATA: 1 << (16 + 2)})  # RD_DIS bit 2: BLOCK3
    assert bus.read(BLK3_RDATA) == 0
    assert (bus.read(BLK0_RDATA) >> 16) & 0xF == 0b0100


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_write_and_read_protection_match_espefuses_definitions():
    """The controller's protection table is the chip's (ESP32 TRM, eFuse controller); espefuse
    describes the same bits field by field in efuse_defs/esp32.yaml."""
    import yaml
    from espefuse.efuse.esp32 import mem_definition

    from rig.sim.parts import efuse

    defs = Path(mem_definition.__file__).parents[2] / "efuse_defs" / "esp32.yaml"
    fields = yaml.safe_load(defs.read_text())["EFUSES"]
    for column, table, whole in (
        ("wr_dis", efuse.WRITE_PROTECT, efuse.WRITE_PROTECT_BLOCK),
        ("rd_dis", efuse.READ_PROTECT, efuse.READ_PROTECT_BLOCK),
    ):
        expected: dict[int, dict[int, int]] = {}
        for field in fields.values():
            bit = field[column]
            if bit is None or field["blk"] != 0:
                continue
            for n in range(field["len"]):
                word, pos = divmod(field["word"] * 32 + field["pos"] + n, 32)
                expected.setdefault(bit, {}).setdefault(word, 0)
                expected[bit][word] |= 1 << pos
        assert table == expected
        assert whole == {f[column]: f["blk"] for f in fields.values() if f["blk"] != 0}


def test_burnt_security_efuses_are_the_chips_security_state():
    bus = _bus()
    efuses = bus.efuses
    _burn(bus, {BLK0_WDATA: 0b1 << 20, BLK0_WDATA + 24: 1 << 5})  # FLASH_CRYPT_CNT, ABS_DONE_1
    assert efuses.security == Security(flash_crypt_cnt=1, abs_done_1=True)
    esp = RegEsp(bus.read, bus.write)
    assert esp.get_flash_encryption_enabled() and esp.get_secure_boot_enabled()


# -- stock espefuse against a simulated board -----------------------------------------------------
def _espefuse(board, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPTOOL_")}
    cmd = [sys.executable, "-m", "espefuse", "--chip", "esp32", "--port", board.port]
    return subprocess.run(
        [*cmd, "--before", "no-reset", "--do-not-confirm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _summary(board) -> dict:
    run = _espefuse(board, "summary", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout[run.stdout.index("{") :])


@pytest.fixture
def efuse_board(make_board):
    """A board in download mode whose every espefuse session finds the ROM again."""
    return make_board(boot="download", on_close="reset")


@pytest.mark.esptool
def test_espefuse_burns_fields_and_reads_them_back(efuse_board):
    board = efuse_board
    run = _espefuse(
        board, "burn-efuse", "JTAG_DISABLE", "1", "SECURE_VERSION", "5", "FLASH_CRYPT_CNT", "1"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Timed out" not in run.stdout + run.stderr
    fuses = _summary(board)
    assert fuses["JTAG_DISABLE"]["value"] is True
    assert fuses["SECURE_VERSION"]["value"] == 5
    assert fuses["FLASH_CRYPT_CNT"]["value"] == 1
    # The security model is what was burnt: flash encryption is on now.
    assert board.chip.efuses.security == Security(flash_crypt_cnt=1)


@pytest.mark.esptool
def test_espefuse_cannot_change_a_write_protected_field(efuse_board):
    board = efuse_board
    run = _espefuse(board, "write-protect-efuse", "JTAG_DISABLE")
    assert run.returncode == 0, run.stdout + run.stderr
    refused = _espefuse(board, "burn-efuse", "JTAG_DISABLE", "1")
    assert refused.returncode != 0 and "is write-protected" in refused.stdout + refused.stderr
    # burn-bit checks no field's protection: the controller itself must not program the bit.
    sent = _espefuse(board, "burn-bit", "BLOCK0", str(6 * 32 + 6))  # JTAG_DISABLE
    assert "the required data was not set to BLOCK0" in sent.stdout, sent.stdout + sent.stderr
    fuses = _summary(board)
    assert fuses["JTAG_DISABLE"]["value"] is False
    assert fuses["WR_DIS"]["value"] == 1 << 14


@pytest.mark.esptool
def test_espefuse_burning_cannot_clear_a_set_bit(efuse_board, tmp_path):
    board = efuse_board
    assert _espefuse(board, "burn-efuse", "SECURE_VERSION", "5").returncode == 0
    refused = _espefuse(board, "burn-efuse", "SECURE_VERSION", "2")
    assert refused.returncode != 0 and "cannot be cleared" in refused.stdout + refused.stderr
    # burn-block-data sends the whole block as given (coding scheme NONE): word 4 = 0b010.
    block = tmp_path / "block3.bin"
    block.write_bytes(bytes(16) + (2).to_bytes(4, "little") + bytes(12))
    forced = _espefuse(board, "burn-block-data", "--force-write-always", "BLOCK3", str(block))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert _summary(board)["SECURE_VERSION"]["value"] == 0b111  # 0b101 | 0b010: OR-ed
