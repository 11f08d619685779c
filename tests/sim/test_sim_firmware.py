"""Real apps on the simulated ESP32: the table of known firmware behaviours, the note an unknown
app gets, and synthetic firmware that crashes and resets (rig.sim.chip.firmware)."""

from __future__ import annotations

import hashlib

import serial

from rig.images import APP_OFFSET, app_image, custom_grbl_flash, parse_image
from rig.images.console import SIMULATED_APP_RE, read_console
from rig.sim.chip import firmware
from rig.sim.chip.boot import spi_boot

GRBL_BRIDGE = "a2834d44def243280c26447663af42357de228d6b8173b08e064b95cb69f8dad"


def real_app(name: str = "real") -> bytes:
    """An app image with no console script: what a real firmware looks like to the simulator."""
    return app_image(
        project_name=name,
        version="1.0",
        idf_ver="v3.2.3",
        date="Jan  1 2021",
        time="00:00:00",
        console_lines=None,
        size_hint=80_000,
    )


def flash_with_app(app: bytes) -> bytes:
    flash = bytearray(custom_grbl_flash())
    flash[APP_OFFSET : APP_OFFSET + 0x140000] = app.ljust(0x140000, b"\xff")
    return bytes(flash)


def read_of(flash: bytes):
    return lambda offset, length: flash[offset : offset + length]


def test_an_unknown_app_prints_the_bootloader_lines_then_only_the_simulators_note():
    app = real_app()
    script = spi_boot(read_of(flash_with_app(app)))
    loaded = script.texts.index(
        next(t for t in script.texts if "Loaded app from partition at offset 0x10000" in t)
    )
    after = script.texts[loaded + 1 :]
    assert after[0].endswith("boot: Disabling RNG early entropy source...")
    [note] = after[1:]  # no cpu_start log, nothing the firmware would print
    assert SIMULATED_APP_RE.fullmatch(note)
    assert hashlib.sha256(app).hexdigest() in note and "0x10000" in note
    assert script.then == "run"


def test_a_known_app_prints_its_modelled_lines_and_answers(monkeypatch):
    app = real_app("known")
    behaviour = firmware.FirmwareBehaviour(
        name="test",
        observed="this test",
        boot=((0.01, "hello from a known app"),),
        answers={"\x18": ("reset!",), "ping": ("pong",)},
    )
    monkeypatch.setitem(firmware.KNOWN_FIRMWARE, hashlib.sha256(app).hexdigest(), behaviour)
    script = spi_boot(read_of(flash_with_app(app)))
    assert script.texts[-1] == "hello from a known app"
    assert not any(SIMULATED_APP_RE.search(t) for t in script.texts)
    assert script.then == "run" and script.answers == behaviour.answers


def test_the_community_grbl_bridge_is_modelled_with_its_real_lines():
    """The table entry the issue names: its sha256, the WiFi line, then the Atmega's banner
    after the bridge's soft reset (0x18), which a soft reset typed on the console repeats."""
    bridge = firmware.KNOWN_FIRMWARE[GRBL_BRIDGE]
    lines = [text for _, text in bridge.boot]
    assert lines[0] in ("WiFi not connected", "IP address:")
    assert lines[-1] == "Grbl 1.1f ['$' for help]"
    assert bridge.answers["\x18"][-1] == "Grbl 1.1f ['$' for help]"


def test_a_running_known_app_answers_on_the_uart(make_board, monkeypatch):
    app = real_app("answers")
    behaviour = firmware.FirmwareBehaviour(
        name="test", observed="this test", boot=((0.0, "up"),), answers={"\x18": ("rebooted",)}
    )
    monkeypatch.setitem(firmware.KNOWN_FIRMWARE, hashlib.sha256(app).hexdigest(), behaviour)
    board = make_board("l7x", flash_image=flash_with_app(app), boot="flash")
    assert board.wait_for_console("^up$", 5)
    with serial.serial_for_url(board.port, baudrate=115200, timeout=2) as port:
        port.write(b"\x18")
        assert port.read_until(b"rebooted\r\n").endswith(b"rebooted\r\n")


def test_a_synthetic_app_can_crash_and_the_board_loops(make_board):
    """A panic's esp_restart() resets with SW_CPU_RESET (0xc); the app panics again every boot."""
    app = app_image(
        project_name="crash",
        version="1",
        idf_ver="v4.4.7",
        date="Jan  1 2024",
        time="00:00:00",
        console_lines=["Guru Meditation Error: Core  1 panic'ed (LoadProhibited)", "Rebooting..."],
        reset_reason=0xC,
        size_hint=60_000,
    )
    assert read_console(parse_image(app)).reset_reason == 0xC
    script = spi_boot(read_of(flash_with_app(app)))
    assert script.then == "reset" and script.next_reset_reason == 0xC
    board = make_board("l7x", flash_image=flash_with_app(app), boot="flash")
    assert board.wait_for_console(r"rst:0xc \(SW_CPU_RESET\)", 5)
    lines = board.console_lines()
    assert len([t for t in lines if t.startswith("Guru Meditation Error")]) >= 1
    assert board.mode == "firmware"
