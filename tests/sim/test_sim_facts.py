"""The simulator's protocol facts against esptool's, and against the rig's (rig/esp32.py).

The simulator keeps its facts - the SYNC answer, ROM and stub status bytes, the ROM baud, where the
ROM loads the bootloader, the chip id an image must carry, the auto-reset truth table - apart from
rig/esp32.py on purpose: it is the referee of the rig, so it must not share the rig's mistakes.
Here both sides are held to esptool's ``ESPLoader`` / ``ESP32ROM`` (the final word on the
protocol), and to each other where esptool has nothing to say.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import struct
from types import SimpleNamespace

import pytest
from esptool.cmds import DETECTED_FLASH_SIZES
from esptool.loader import ESPLoader
from esptool.targets.esp32 import ESP32ROM
from esptool.util import FatalError
from sim_harness import SYNC

from rig import esp32
from rig.images.flash_contents import vendor_l7x_flash
from rig.sim.bridge import UsbBridge
from rig.sim.chip import boot, bootloader, chip
from rig.sim.loader import slip
from rig.sim.loader.base import SYNC_PAYLOAD
from rig.sim.loader.protocol import HEADER, Op
from rig.sim.loader.rom import RomLoader
from rig.sim.loader.stub import StubLoader
from rig.sim.parts.flash import BLOCK_SIZE, SECTOR_SIZE, SIZE_TO_JEDEC


class Replay:
    """Hands one reply frame of the simulated loader to esptool's own ``check_command``."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    def command(self, *args, **kwargs) -> tuple[int, bytes]:
        direction, _op, size, value = HEADER.unpack_from(self.frame)
        assert direction == 1 and size == len(self.frame) - HEADER.size
        return value, self.frame[HEADER.size :]


def check(frame: bytes, op: int, resp_data_len: int = 0):
    return ESPLoader.check_command(Replay(frame), "sim", op, resp_data_len=resp_data_len)


def test_chip_facts_are_esptools_and_the_rigs():
    assert chip.ROM_BAUD == ESPLoader.ESP_ROM_BAUD == esp32.ROM_BAUD
    assert boot.BOOTLOADER_OFFSET == ESP32ROM.BOOTLOADER_FLASH_OFFSET == esp32.BOOTLOADER_OFFSET
    assert bootloader.IMAGE_CHIP_ID == ESP32ROM.IMAGE_CHIP_ID == esp32.IMAGE_CHIP_ID
    assert bootloader.PARTITION_TABLE_OFFSET == esp32.PARTITION_TABLE_OFFSET
    assert SECTOR_SIZE == ESPLoader.FLASH_SECTOR_SIZE == esp32.SECTOR
    assert BLOCK_SIZE == esp32.BLOCK
    for size, jedec in SIZE_TO_JEDEC.items():  # the RDID capacity byte esptool decodes
        assert DETECTED_FLASH_SIZES[jedec >> 16] == f"{size // esp32.MB}MB"
        assert size in esp32.FLASH_SIZES


def test_opcodes_and_sync_are_esptools_and_the_rigs():
    for op in Op:
        assert ESPLoader.ESP_CMDS[op.name] == op, op.name
    assert SYNC_PAYLOAD == SYNC  # what esptool's ESPLoader.sync() sends
    assert slip.encode(HEADER.pack(0, Op.SYNC, len(SYNC), 0) + SYNC_PAYLOAD) == esp32.SYNC_FRAME


@pytest.mark.parametrize("fixture", ["rom", "stub"])
def test_the_sync_answer_is_what_esptool_and_the_rig_expect(fixture, request):
    driver = request.getfixturevalue(fixture)
    driver = driver[0] if isinstance(driver, tuple) else driver
    replies = driver.call(Op.SYNC, SYNC)
    assert len(replies) == 8  # esptool reads the first and drains seven more
    for reply in replies:
        assert slip.encode(reply).startswith(esp32.SYNC_REPLY)  # the rig's SYNC probe
        check(reply, Op.SYNC)
    # esptool tells the stub from the ROM by the value: zero from the stub only.
    values = {HEADER.unpack_from(reply)[3] for reply in replies}
    assert (values == {0}) == (fixture == "stub")


BLANK_MD5 = hashlib.md5(b"\xff" * 0x1000).digest()  # the fixtures' flash is erased
MD5_REQUEST = struct.pack("<IIII", 0, 0x1000, 0, 0)


def test_rom_status_is_four_bytes_that_esptool_reads(rom):
    """esptool's check_command reads two status bytes after the response data; the ESP32 ROM
    sends two more, reserved ("ROM bootloaders ... return another 2 bytes", loader.py)."""
    [reply] = rom.call(Op.READ_REG, struct.pack("<I", 0x40001000))
    assert len(reply) - HEADER.size == RomLoader.STATUS_LEN == 4
    assert check(reply, Op.READ_REG) == 0x00F01D83  # the ESP32's UART_DATE magic
    [reply] = rom.call(Op.SPI_FLASH_MD5, MD5_REQUEST)
    assert check(reply, Op.SPI_FLASH_MD5, resp_data_len=32) == BLANK_MD5.hex().encode()
    [error] = rom.call(0x55, bytes(8))  # an opcode the ROM does not know: 01 05
    with pytest.raises(FatalError, match="result was 0105: The format of the received message"):
        check(error, 0x55)


def test_stub_status_is_two_bytes_that_esptool_reads(stub):
    driver, _ = stub
    [reply] = driver.call(Op.READ_REG, struct.pack("<I", 0x40001000))
    assert len(reply) - HEADER.size == StubLoader.STATUS_LEN == 2
    assert check(reply, Op.READ_REG) == 0x00F01D83
    [reply] = driver.call(Op.SPI_FLASH_MD5, MD5_REQUEST)
    assert check(reply, Op.SPI_FLASH_MD5, resp_data_len=16) == BLANK_MD5  # the raw digest


def test_boot_banners_match_the_rigs_regexes():
    download = boot.download_boot().text().encode()
    spi = boot.spi_boot(lambda offset, n: vendor_l7x_flash()[offset : offset + n]).text().encode()
    assert esp32.DOWNLOAD_BANNER.search(download) and not esp32.SPI_BOOT.search(download)
    assert esp32.SPI_BOOT.search(spi) and not esp32.DOWNLOAD_BANNER.search(spi)


@pytest.mark.parametrize(("dtr", "rts"), list(itertools.product((False, True), repeat=2)))
def test_the_auto_reset_circuit_is_the_rigs_truth_table(dtr, rts):
    host = SimpleNamespace(
        changing_inputs=lambda stops_chip: contextlib.nullcontext(),
        log_event=lambda what: None,
        en_pulled_low=lambda: None,
        contact=lambda name: False,
        scheduler=SimpleNamespace(call_later=lambda delay, fn: None),
    )
    bridge = UsbBridge(host, auto_reset=True, usb_powered=True)
    bridge.set_modem_lines(dtr, rts)
    assert (bridge.en_low, bridge.io0_low) == esp32.auto_reset(dtr, rts)
