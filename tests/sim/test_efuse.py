"""Chip identity: factory MACs and the eFuse words, decoded by esptool's and espefuse's rules."""

from __future__ import annotations

import pytest
from sim_harness import RegEsp

from rig.esp32 import parse_mac
from rig.sim.parts.efuse import EFUSE_BASE, ESPRESSIF_OUIS, Efuses, mac_from_seed
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
