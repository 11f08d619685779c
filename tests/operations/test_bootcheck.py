"""Boot checks for real firmware: the default check (the bootloader loaded the app from the
expected partition, then no panic and no reset for the board's boot_settle), and what a pattern
check that fails says about why - on slots of the simulated station."""

from __future__ import annotations

import struct
import zlib

import pytest

from rig.board.station import LiveStation
from rig.errors import OperationError
from rig.esp32 import APP_OFFSET
from rig.images import app_image, flash_contents
from rig.operations import steps
from rig.operations.bootcheck import boot_check
from rig.operations.report import Report

pytestmark = pytest.mark.timeout(120)
APP1 = 0x150000


@pytest.fixture
def station(sim_station_config):
    cfg = sim_station_config()
    l7x = cfg.boards["l7x"].model_copy(update={"boot_timeout": 2.0, "boot_settle": 0.5})
    with LiveStation(cfg.model_copy(update={"boards": {**cfg.boards, "l7x": l7x}})) as st:
        yield st


def app(name: str, lines, reset_reason=None) -> bytes:
    return app_image(
        project_name=name,
        version="1",
        idf_ver="v4.4.7",
        date="Jan  1 2024",
        time="00:00:00",
        console_lines=lines,
        reset_reason=reset_reason,
        size_hint=60_000,
    )


def flash_with(station, slot_id: str, image: bytes, at: int = APP_OFFSET, otadata=None) -> None:
    flash = bytearray(flash_contents.vendor_l7x_flash())
    flash[at : at + 0x140000] = image.ljust(0x140000, b"\xff")
    if otadata is not None:
        flash[0xE000 : 0xE000 + len(otadata)] = otadata
    station.simulated_board(slot_id).flash.preload(0, bytes(flash))


def selects_app1() -> bytes:
    seq = struct.pack("<I", 2)
    return seq + b"\xff" * 24 + struct.pack("<I", zlib.crc32(seq, 0xFFFFFFFF))


def test_the_default_check_passes_when_the_app_loads_and_keeps_running(station):
    slot = station.open_slot("l7x-1")
    check = boot_check(slot.board, None, app_offset=APP_OFFSET)
    assert check.ok, check.problem
    assert "Loaded app from partition at offset 0x10000" in check.console
    assert "Grbl 1.1f" in check.console  # it watched the app for boot_settle


def test_the_default_check_fails_on_a_reset_loop(station):
    slot = station.open_slot("l7x-2")
    flash_with(station, "l7x-2", app("wdt", ["starting"], reset_reason=0x8))
    check = boot_check(slot.board, None, app_offset=APP_OFFSET)
    assert not check.ok
    assert check.problem == (
        "the board reset (rst:0x8 TG1WDT_SYS_RESET) after the app at 0x10000 started: a reset loop"
    )


def test_the_default_check_fails_on_a_panic_line(station):
    panic = "Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled."
    slot = station.open_slot("l7x-3")
    flash_with(station, "l7x-3", app("panic", ["starting", panic]))
    check = boot_check(slot.board, None, app_offset=APP_OFFSET)
    assert not check.ok and check.problem == f"the app at 0x10000 crashed: {panic}"


def test_the_default_check_fails_when_another_partition_boots(station):
    """otadata selecting app1 boots whatever is there, not the app just written to app0."""
    slot = station.open_slot("l7x-4")
    flash_with(station, "l7x-4", app("other", ["other app"]), at=APP1, otadata=selects_app1())
    check = boot_check(slot.board, None, app_offset=APP_OFFSET)
    assert not check.ok
    assert check.problem == (
        "the bootloader loaded the app at 0x150000, not the one at 0x10000 (otadata selects "
        "another app partition)"
    )


def test_a_pattern_that_never_shows_on_a_simulated_board_says_it_does_not_run_firmware(station):
    """An app the simulator has no behaviour for: its console is the simulator's note, and the
    failed check says so (the rig does not ask whether the slot is simulated)."""
    slot = station.open_slot("l7x-1")
    flash_with(station, "l7x-1", app("real", None))
    report = Report("test", slot.id)
    with pytest.raises(OperationError) as err:
        steps.boot(report, slot.board, "Grbl 1\\.1f", firmware="my-grbl")
    message = str(err.value)
    assert message.startswith("my-grbl did not boot: the console never showed 'Grbl 1\\\\.1f'; ")
    assert "the console came from a simulated board that does not execute firmware" in message
