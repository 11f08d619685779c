"""esptool 5.6.0 used as a library (``esptool.cmds``, fact sheet §8) against the simulated board.

The simulator runs in this process (its own threads) and esptool talks to it through the pty like
any other host. esptool's logger is process-global; ``capsys`` sees what it prints.
"""

from __future__ import annotations

import contextlib
import random

import esptool
import pytest
from esptool.cmds import (
    attach_flash,
    chip_id,
    detect_chip,
    erase_flash,
    erase_region,
    flash_id,
    read_flash,
    read_flash_status,
    read_mac,
    run_stub,
    verify_flash,
    write_flash,
)
from esptool.targets.esp32 import ESP32ROM, ESP32StubLoader
from esptool.util import FatalError, NotImplementedInROMError

from rig.sim.board import SimBoard

pytestmark = pytest.mark.esptool

SIZE = 0x400000


@contextlib.contextmanager
def connected(board: SimBoard, stub: bool):
    """detect_chip + optional run_stub; the port is closed whatever happens."""
    esp = detect_chip(board.port, connect_mode="no-reset", connect_attempts=1)
    try:
        if stub:
            esp = run_stub(esp)
        yield esp
    finally:
        esp._port.close()


def data_for(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    chunk = rng.randbytes(333)
    return (chunk * (size // len(chunk) + 1))[:size]


def test_api_rom_session(dut, capsys):
    data = data_for(1, 0x2345)
    with connected(dut, stub=False) as esp:
        assert type(esp) is ESP32ROM and not esp.IS_STUB
        assert esp.get_chip_description() == "ESP32-D0WD-V3 (revision v3.0)"
        assert bytes(esp.read_mac()) == dut.mac
        read_mac(esp)
        chip_id(esp)
        attach_flash(esp)
        flash_id(esp)
        read_flash_status(esp)
        out = capsys.readouterr().out
        assert out.count(f"{'MAC:':<20}{dut.mac_str}") == 2
        assert "Manufacturer: ef" in out and "Device: 4016" in out
        assert "Detected flash size: 4MB" in out
        assert "Flash memory status: 0x0200" in out
        assert esp.flash_id() == 0x1640EF

        write_flash(esp, [(0x10000, data)], no_progress=True)
        assert dut.flash.read(0x10000, len(data)) == data
        assert dut.flash.is_blank(0x10000 + len(data), 0x13000 - 0x10000 - len(data))
        assert read_flash(esp, 0x10000, len(data), no_progress=True) == data
        verify_flash(esp, [(0x10000, data)])
        assert "Verification successful (digest matched)." in capsys.readouterr().out

        dut.flash.preload(0x10001, bytes([data[1] ^ 0x10]))
        with pytest.raises(FatalError, match="Verification failed"):
            verify_flash(esp, [(0x10000, data)])

        erase_region(esp, 0x11000, 0x1000)  # the ROM erases through FLASH_BEGIN
        assert dut.flash.is_blank(0x11000, 0x1000)
        assert dut.flash.read(0x12000, len(data) - 0x2000) == data[0x2000:]
        with pytest.raises(NotImplementedInROMError, match="ESP32 ROM does not support"):
            erase_flash(esp)


@pytest.mark.parametrize("baud", [115200, 921600])
def test_api_stub_session(dut, capsys, tmp_path, baud):
    data = data_for(2, 0x9000)
    dut.flash.preload(0x1F000, b"\x00" * 0x1000)
    dut.flash.preload(0x29000, b"\x00" * 0x1000)
    with connected(dut, stub=True) as esp:
        assert type(esp) is ESP32StubLoader and esp.IS_STUB
        assert dut.mode == "stub"
        if baud != 115200:
            esp.change_baud(baud)
            assert esp._port.baudrate == baud
            assert abs(dut.chip.baud - baud) < baud * 0.01
        attach_flash(esp)
        write_flash(esp, [(0x20000, data)], no_progress=True)
        out = capsys.readouterr().out
        assert "compressed) at 0x00020000" in out and "Hash of data verified." in out
        assert dut.flash.read(0x20000, len(data)) == data
        assert dut.flash.read(0x1F000, 0x1000) == b"\x00" * 0x1000  # neighbours untouched
        assert dut.flash.read(0x29000, 0x1000) == b"\x00" * 0x1000
        assert read_flash(esp, 0x20000, len(data), no_progress=True) == data
        (tmp_path / "v.bin").write_bytes(data)
        with open(tmp_path / "v.bin", "r+b") as f:  # esptool wants a named file object
            verify_flash(esp, [(0x20000, f)])
        erase_region(esp, 0x21000, 0x2000)
        assert read_flash(esp, 0x21000, 0x2000, no_progress=True) == b"\xff" * 0x2000
        assert dut.flash.read(0x20000, 0x1000) == data[:0x1000]
        with pytest.raises(FatalError, match="Verification failed"):
            verify_flash(esp, [(0x20000, data)])
        erase_flash(esp)
        assert dut.flash.view() == b"\xff" * SIZE


def test_api_write_flash_from_path_without_compression(dut, tmp_path):
    data = random.Random(3).randbytes(0x1800)
    (tmp_path / "img.bin").write_bytes(data)
    with connected(dut, stub=True) as esp:
        attach_flash(esp)
        write_flash(esp, [(0x40000, str(tmp_path / "img.bin"))], no_compress=True)
        assert dut.flash.read(0x40000, len(data)) == data
        assert dut.flash.is_blank(0x41800, 0x800)
        read_flash(esp, 0x40000, len(data), str(tmp_path / "back.bin"), no_progress=True)
    assert (tmp_path / "back.bin").read_bytes() == data


def test_api_detects_running_stub(dut):
    with connected(dut, stub=True) as esp:
        assert dut.mode == "stub"
        assert esp.IS_STUB
    # the stub stays running across port close (on_close="keep")
    with connected(dut, stub=False) as esp:
        assert esp.sync_stub_detected
        assert type(esp) is ESP32StubLoader
        attach_flash(esp)
        assert esp.flash_id() == 0x1640EF
        assert bytes(esp.read_mac()) == dut.mac


def test_api_main_in_process(dut, capsys):
    argv = ["--chip", "esp32", "--port", dut.port, "--before", "no-reset", "--after", "no-reset"]
    assert esptool.main([*argv, "read-mac"]) is None
    assert f"{'MAC:':<20}{dut.mac_str}" in capsys.readouterr().out
    dut.boot_into("download")
    with pytest.raises(NotImplementedInROMError):
        esptool.main([*argv, "--no-stub", "erase-flash"])
    with pytest.raises(SystemExit) as exc:
        esptool.main([*argv, "--no_stub", "read-mac"])  # underscore option is rejected
    assert exc.value.code == 2
