"""Slots of the simulated station, driven through real relays, pins and serial ports."""

from __future__ import annotations

import threading

import pytest
from esptool.cmds import attach_flash, detect_chip, run_stub
from esptool.util import FatalError

from rig.board.board import DownloadModeError
from rig.board.station import LiveStation
from rig.hardware.locks import SlotBusy
from rig.operations.esplog import captured


@pytest.fixture
def station(sim_station_config):
    with LiveStation(sim_station_config()) as st:
        yield st
        for slot in st.slots():
            sim = st.simulated_board(slot.id)
            assert sim is None or not sim.faults, sim.faults


def test_relays_enter_download_mode_and_esptool_reads_the_chip(station):
    slot = station.open_slot("l7x-1")
    evidence = slot.board.download_mode()
    assert evidence.how == "banner" and evidence.attempt == 1
    assert "waiting for download" in evidence.text
    assert slot.relays["power"].is_closed  # the L7X needs its button held
    assert not slot.relays["io0"].is_closed  # strapping is latched at reset
    sim = station.simulated_board("l7x-1")
    with captured():
        esp = detect_chip(str(slot.board.port.resolve()), connect_mode="no-reset")
        try:
            assert esp.get_chip_description() == "ESP32-D0WD-V3 (revision v3.0)"
            assert bytes(esp.read_mac()) == sim.mac
        finally:
            esp._port.close()
    events = [(e.role, e.action) for e in slot.relays["io0"].log.events]
    assert events[-3:] == [("io0", "close"), ("power", "close"), ("io0", "open")]


def test_releasing_power_mid_read_fails_the_read_clearly(station):
    slot = station.open_slot("l7x-2")
    slot.board.download_mode()
    with captured():
        esp = run_stub(detect_chip(str(slot.board.port.resolve()), connect_mode="no-reset"))
        try:
            attach_flash(esp)
            cut = threading.Event()

            def progress(done, total, offset):
                if done >= 0x20000 and not cut.is_set():
                    cut.set()
                    slot.relays["power"].open()

            with pytest.raises(FatalError) as err:
                esp.read_flash(0, 0x400000, progress)
        finally:
            esp._port.close()
    # esptool's three ways of saying the line went silent (between packets, before any, within
    # one): which one depends on where the brown-out fell.
    silent = ("Serial data stream stopped", "No serial data", "Packet content transfer stopped")
    assert any(text in str(err.value) for text in silent), err.value
    assert station.simulated_board("l7x-2").mode == "off"


def test_devkit_slot_uses_its_active_high_reset_relay(station):
    slot = station.open_slot("devkitc-1")
    assert slot.board.download_mode().how == "banner"
    sim = station.simulated_board("devkitc-1")
    assert sim.mode == "download"
    slot.board.run()
    assert sim.wait_for_console(r"invalid header: 0xffffffff", timeout=2)  # erased flash


def test_unconnected_io0_is_diagnosed(sim_station_config):
    with LiveStation(sim_station_config(**{"l7x-3": {"io0_connected": False}})) as st:
        slot = st.open_slot("l7x-3")
        with pytest.raises(DownloadModeError) as err:
            slot.board.download_mode(retries=2)
    message = str(err.value)
    assert "l7x-3: no ROM download mode after 2 attempts" in message
    assert "booted from flash (0x13)" in message and "io0 relay" in message


def test_flaky_board_enters_download_mode_on_a_retry(sim_station_config):
    with LiveStation(sim_station_config(**{"l7x-1": {"fail_connects": 2}})) as st:
        evidence = st.open_slot("l7x-1").board.download_mode(retries=3)
    assert evidence.attempt == 3


def test_silent_board_is_diagnosed(station):
    slot = station.open_slot("l7x-4")
    station.simulated_board("l7x-4").fail_connects = 5
    with pytest.raises(DownloadModeError, match="the port stayed silent"):
        slot.board.download_mode(retries=2)


def test_a_slot_is_locked_while_used_and_released_with_the_station(sim_station_config):
    cfg = sim_station_config()
    first = LiveStation(cfg)
    live = first.open_slot("l7x-1")
    live.relays["power"].close()
    with LiveStation(cfg) as second:
        with pytest.raises(SlotBusy, match="slot l7x-1 is in use by PID"):
            second.open_slot("l7x-1")
        second.open_slot("l7x-2")  # other slots are free
    sim = first.simulated_board("l7x-1")
    first.close()
    assert not live.relays["power"].is_closed
    assert not sim.contact("power")
    with LiveStation(cfg) as third:
        third.open_slot("l7x-1")


def test_run_boots_the_firmware_and_the_console_shows_its_banner(station):
    slot = station.open_slot("l7x-3")
    with slot.board.console() as ser:
        slot.board.run()
        seen, text = slot.board.expect(ser, slot.board_type.firmware_named("vendor-l7x").console, 5)
    assert seen, text
    assert "boot:0x13 (SPI_FAST_FLASH_BOOT)" in text
    assert "Project name:     VigoEsp32" in text
    sim = station.simulated_board("l7x-3")
    assert sim.wait_for_console(r"Grbl 1\.1f", 2) and sim.mode == "firmware"
    slot.board.off()  # the firmware latched power on: a short press switches it off
    assert sim.mode == "off"
    assert slot.board.download_mode().attempt == 1


def test_a_bridge_without_2_mbaud_makes_the_ladder_fall_back(sim_station_config):
    from rig.operations.session import FlasherSession

    cfg = sim_station_config(**{"l7x-2": {"max_baud": 921600}})
    with LiveStation(cfg) as st:
        slot = st.open_slot("l7x-2")
        assert slot.board_type.serial.bauds[0] == 2000000
        with FlasherSession(slot.board) as session:
            assert session.identity.baud == 921600  # 2 Mbaud garbled, caught, stepped down
            data = session.read(0, 0x10000)
        assert data == st.simulated_board("l7x-2").flash.read(0, 0x10000)


def test_slot_kinds_are_found_by_name(sim_station_config):
    """The station builds a slot's pins and port from its kind's registry string, so the
    station (and every layer above it) never imports the simulator itself."""
    from rig.board import simulated, station

    cfg = sim_station_config()
    assert station.slot_kind(cfg.slot("l7x-1")) is simulated.simulated_parts
    real = cfg.slot("l7x-1").model_copy(update={"simulated": None})
    assert station.slot_kind(real) is station.real_parts


def test_the_layers_above_the_simulator_do_not_import_it():
    """Operations, the plugin and the station import no rig.sim module, not even indirectly:
    only opening a simulated slot loads it (by name)."""
    import subprocess
    import sys

    code = (
        "import sys, rig.board.station, rig.operations, rig.operations.batch, "
        "rig.operations.serve, rig.operations.hil, rig.pytest_plugin, rig.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('rig.sim')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_paced_slot_spends_the_chip_side_costs_an_unpaced_one_does_not(sim_station_config):
    """``chip_costs`` scales the loaders' flash-read and MD5 time (rig.sim.loader.costs) on a
    realtime slot (the bench's sensitivity runs); an unpaced slot stays free, whatever it says."""
    cfg = sim_station_config(
        **{"l7x-1": {"realtime": True, "chip_costs": 0.5}, "l7x-2": {"chip_costs": 2.0}}
    )
    with LiveStation(cfg) as st:
        st.open_slot("l7x-1")
        st.open_slot("l7x-2")
        assert st.simulated_board("l7x-1").chip.chip_costs == 0.5
        assert st.simulated_board("l7x-2").chip.chip_costs == 0.0
