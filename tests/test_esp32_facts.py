"""rig.esp32's facts against esptool's own (``ESP32ROM``, ``ESPLoader``): one referee for both."""

from __future__ import annotations

import pytest
from esptool.loader import ESPLoader
from esptool.targets.esp32 import ESP32ROM

from rig import esp32


def test_flash_layout_and_image_facts_are_esptools():
    assert esp32.SECTOR == ESPLoader.FLASH_SECTOR_SIZE
    assert esp32.BOOTLOADER_OFFSET == ESP32ROM.BOOTLOADER_FLASH_OFFSET
    assert esp32.IMAGE_CHIP_ID == ESP32ROM.IMAGE_CHIP_ID
    assert esp32.ROM_BAUD == ESPLoader.ESP_ROM_BAUD
    sizes = {name: n for name, n in ((k, int(k[:-2]) * esp32.MB) for k in ESP32ROM.FLASH_SIZES)}
    assert set(esp32.FLASH_SIZES) <= set(sizes.values())


def test_sync_frame_is_what_esptool_sends():
    """esptool's sync(): command ESP_SYNC (0x08), data 07 07 12 20 + 32 x 0x55, checksum 0."""
    data = b"\x07\x07\x12\x20" + 32 * b"\x55"
    packet = (
        bytes([0, ESPLoader.ESP_CMDS["SYNC"]]) + len(data).to_bytes(2, "little") + bytes(4) + data
    )
    frame, reply = esp32.SYNC_FRAME, esp32.SYNC_REPLY
    assert frame == b"\xc0" + packet + b"\xc0"  # nothing in it needs SLIP escaping
    assert reply == bytes([0xC0, 0x01, ESPLoader.ESP_CMDS["SYNC"]])


@pytest.mark.parametrize(
    ("text", "raw"),
    [("24:0a:c4:12:34:56", bytes.fromhex("240ac4123456")), ("24-0A-C4-12-34-56", None)],
)
def test_mac_spellings(text, raw):
    assert esp32.format_mac(text) == "24:0a:c4:12:34:56"
    if raw is not None:
        assert esp32.parse_mac(text) == raw and esp32.format_mac(raw) == text


@pytest.mark.parametrize("bad", ["25:0a:c4:12:34:56", "24:0a:c4:12:34", "24:0a-c4:12:34:56"])
def test_bad_macs_are_refused(bad):
    with pytest.raises(ValueError):
        esp32.parse_mac(bad)


def test_auto_reset_truth_table():
    assert esp32.auto_reset(dtr=False, rts=True) == (True, False)  # EN low: reset held
    assert esp32.auto_reset(dtr=True, rts=False) == (False, True)  # IO0 low
    assert esp32.auto_reset(dtr=True, rts=True) == (False, False)
    assert esp32.auto_reset(dtr=False, rts=False) == (False, False)
