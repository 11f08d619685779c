"""The config layer: shipped files load; a bad file fails at its file:line with a clear message."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from config_harness import only_error
from pydantic import ValidationError

import rig
from rig import config
from rig.config import (
    BoardType,
    ConfigError,
    SequenceStep,
    Station,
    builtin_configs_dir,
    check_files,
    default_station,
    json_schema,
    load_board,
    load_boards,
    load_station,
    station_from_env,
)
from rig.config.yamlpos import YamlError, load_yaml

REPO = Path(__file__).resolve().parents[2]
BOARDS_DIR = builtin_configs_dir() / "boards"
STATIONS_DIR = builtin_configs_dir() / "stations"

BOARD = """\
name: tb
description: a test board
chip: esp32
flash: {size: 4MB}
serial:
  modem_lines: false
  console_baud: 115200
  bauds: [921600, 115200]
relays: [io0, power]
sequences:
  download:
    - {close: io0}
    - {press: power}
    - {wait: 0.3}
    - {open: io0}
  run:
    - {release: power}
  off:
    - {release: power}
    - {open: io0}
"""

STATION = """\
name: ts
backups: backups
locks: locks
pins: {backend: gpiod}
slots:
  - id: a-1
    board: l7x
    port: /dev/ttyUSB0
    relays:
      io0: {pin: 17}
      power: {pin: 27}
  - id: a-2
    board: esp32-devkitc
    usb_serial: "0001"
    relays:
      io0: {pin: 22}
      reset: {pin: 23, active_low: false}
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the line holding the nth occurrence of needle."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth - 1]


@pytest.fixture
def board_file(tmp_path):
    """Write a board file (default: the valid BOARD) into tmp_path/boards."""
    (tmp_path / "boards").mkdir()

    def write(text: str = BOARD, name: str = "tb") -> Path:
        path = tmp_path / "boards" / f"{name}.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def station_file(tmp_path):
    (tmp_path / "stations").mkdir()

    def write(text: str = STATION) -> Path:
        path = tmp_path / "stations" / "ts.yaml"
        path.write_text(text)
        return path

    return write


# -- shipped configs -------------------------------------------------------------------------------
def test_shipped_configs_have_no_problems():
    assert check_files() == []
    assert check_files([REPO / "configs"]) == []


def test_top_level_configs_is_the_package_copy():
    assert (REPO / "configs").resolve() == builtin_configs_dir().resolve()
    # Package data of ``rig`` (importlib.resources), whichever module of the package asks.
    assert builtin_configs_dir() == Path(rig.__file__).resolve().parent / "configs"


def test_shipped_boards_load():
    boards = load_boards([BOARDS_DIR])
    assert sorted(boards) == ["esp32-devkitc", "l7x"]
    l7x = boards["l7x"]
    assert l7x.source == BOARDS_DIR / "l7x.yaml"
    assert (l7x.chip, l7x.flash_size) == ("esp32", 4 * 1024 * 1024)
    assert l7x.serial.modem_lines is False
    assert l7x.serial.console_baud == 115200
    assert l7x.serial.bauds == (2000000, 921600, 460800, 230400, 115200)
    assert l7x.relays == ("io0", "power")
    assert l7x.roles_used() == {"io0", "power"}
    assert [str(s) for s in l7x.sequences.download] == [
        "close io0",
        "press power",
        "wait 0.3 s",
        "open io0",
    ]
    assert l7x.sequences["off"] == l7x.sequences.off
    assert l7x.firmware == ()  # catalogs are the stations'
    assert [r.name for r in l7x.layout][:2] == ["bootloader", "partition-table"]
    assert [(r.type, r.subtype) for r in l7x.layout][3:5] == [("data", "ota"), ("app", "ota_0")]
    assert l7x.flash.mode == "dio"
    devkit = boards["esp32-devkitc"]
    assert devkit.serial.modem_lines is True
    assert devkit.relays == ("io0", "reset")
    assert str(devkit.sequences.download[1]) == "pulse reset 100 ms"
    assert devkit.sequences.download[1].seconds == pytest.approx(0.1)


def test_shipped_firmware_is_the_simulated_stations_synthetic_images():
    """The synthetic images are the simulated station's catalog only: no board type names a
    file, and their bytes and pinned sha256 are what rig.images generates."""
    from rig.images import synthetic
    from rig.images.flash_contents import merged_firmware

    assert all(not b.firmware for b in load_boards([BOARDS_DIR]).values())
    l7x = default_station().boards["l7x"]
    expected = {
        "vendor-l7x": merged_firmware(synthetic.VENDOR_L7X),
        "custom-grbl": merged_firmware(synthetic.CUSTOM_GRBL),
    }
    assert [fw.name for fw in l7x.firmware] == ["vendor-l7x", "custom-grbl"]
    for fw in l7x.firmware:
        # If this fails after a change to rig.images.synthetic, regenerate the file
        # (part.file.write_bytes(merged_firmware(...))) and update the sha256 in
        # configs/firmware/catalog.yaml.
        [part] = fw.parts
        assert part.offset == 0x1000 and part.file.parent == builtin_configs_dir() / "firmware"
        assert part.file.read_bytes() == expected[fw.name], fw.name
        assert hashlib.sha256(expected[fw.name]).hexdigest() == fw.sha256 == part.sha256
    vendor, custom = (l7x.firmware_named(n) for n in ("vendor-l7x", "custom-grbl"))
    assert vendor.pattern.search(synthetic.VENDOR_L7X.banner)
    assert not vendor.pattern.search(synthetic.CUSTOM_GRBL.banner)
    assert custom.pattern.search(synthetic.CUSTOM_GRBL.banner)
    with pytest.raises(KeyError, match="catalog: vendor-l7x, custom-grbl"):
        l7x.firmware_named("nope")


def test_sim_station_is_the_default(monkeypatch):
    monkeypatch.delenv("RIG_STATION", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    station = default_station()
    assert station.name == "sim"
    assert station.source == STATIONS_DIR / "sim.yaml"
    assert station.pins.backend == "sim"
    assert station.backups == Path.home() / ".local/share/rig/sim-backups"
    assert station.locks == Path("/tmp/rig-locks")
    l7x = [s for s in station.slots if s.board == "l7x"]
    devkits = [s for s in station.slots if s.board == "esp32-devkitc"]
    assert [s.id for s in l7x] == ["l7x-1", "l7x-2", "l7x-3", "l7x-4"]
    assert [s.id for s in devkits] == ["devkitc-1", "devkitc-2"]
    assert all(set(s.relays) == {"io0", "power"} and s.simulated.variant == "l7x" for s in l7x)
    assert all(
        set(s.relays) == {"io0", "reset"} and s.simulated.variant == "devkit" for s in devkits
    )
    pins = [ch.pin for s in station.slots for ch in s.relays.values()]
    assert len(pins) == len(set(pins))
    assert station.board_of("l7x-1").name == "l7x"
    assert station.board_of(station.slot("devkitc-2")).relays == ("io0", "reset")
    assert station_from_env(None) == station


def test_locks_dir_follows_xdg_runtime_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_station().locks == tmp_path / "rig-locks"


def test_station_from_env_prefers_the_argument_then_rig_station(monkeypatch):
    example = STATIONS_DIR / "pi-example.yaml"
    monkeypatch.setenv("RIG_STATION", str(example))
    assert station_from_env(None).name == "pi-bench"
    assert station_from_env(str(STATIONS_DIR / "sim.yaml")).name == "sim"


def test_pi_example_station():
    station = load_station(STATIONS_DIR / "pi-example.yaml")
    assert station.pins.backend == "gpiod"
    assert station.pins.chip == "pinctrl-rp1"
    assert station.locks == Path("/run/lock/rig")
    first = station.slot("l7x-1")
    assert first.port == "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
    assert first.expected_mac == "24:0a:c4:12:34:56"
    assert all(ch.active_low for ch in first.relays.values())
    assert station.slot("l7x-2").relays["io0"].bcm == 22
    by_serial = [s for s in station.slots if s.usb_serial]
    assert [s.usb_serial for s in by_serial] == ["0215A3F7"]
    assert all(s.simulated is None for s in station.slots)


def test_loaded_objects_are_frozen():
    board = load_board(BOARDS_DIR / "l7x.yaml")
    station = default_station()
    for obj, attr, value in (
        (board, "name", "x"),
        (board.serial, "console_baud", 9600),
        (board.sequences.download[0], "role", "power"),
        (station.catalog[0].parts[0], "offset", 0),
        (station, "name", "x"),
        (station.slots[0], "board", "x"),
        (station.slots[0].relays["io0"], "pin", 3),
        (station.pins, "backend", "gpiod"),
    ):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(obj, attr, value)
    assert isinstance(board.relays, tuple) and isinstance(station.slots, tuple)


# -- one problem, one error at the right place -----------------------------------------------------
def test_yaml_syntax_error(board_file):
    path = board_file(BOARD.replace("chip: esp32", "chip: esp32\n  oops: [1"))
    error = only_error(path, line_of(BOARD, "chip: esp32") + 1)
    assert "YAML syntax error" in error.message


def test_duplicate_key(board_file):
    text = BOARD.replace("relays: [io0, power]", "relays: [io0, power]\nchip: esp32")
    error = only_error(board_file(text), line_of(text, "chip:", 2))
    assert error.message == f"duplicate key 'chip' (first at line {line_of(text, 'chip:')})"
    assert (error.where, error.col) == ("chip", 1)


def test_unknown_key_suggests_the_known_one(board_file):
    text = BOARD.replace("  console_baud:", "  console_bau:")
    error = only_error(board_file(text), line_of(text, "console_bau:"))
    assert error.where == "serial.console_bau"
    assert "unknown key 'console_bau'; did you mean 'console_baud'?" in error.message


def test_wrong_type(board_file):
    text = BOARD.replace("console_baud: 115200", "console_baud: fast")
    error = only_error(board_file(text), line_of(text, "console_baud"))
    assert str(error).endswith("serial.console_baud: Input should be a valid integer (got 'fast')")
    assert "\n" not in str(error)


def test_unknown_board_type(station_file):
    text = STATION.replace("board: l7x", "board: l8x")
    error = only_error(station_file(text), line_of(text, "board: l8x"))
    assert error.where == "slots[0].board"
    assert error.message == "unknown board type 'l8x' (known: esp32-devkitc, l7x)"


def test_unwired_relay_role(station_file):
    text = STATION.replace("      power: {pin: 27}\n", "")
    error = only_error(station_file(text), line_of(text, "relays:"))
    assert error.where == "slots[0].relays"
    assert "board l7x uses relay power in its sequences" in error.message


def test_pin_used_twice(station_file):
    text = STATION.replace("io0: {pin: 22}", "io0: {pin: 27}")
    error = only_error(station_file(text), line_of(text, "io0: {pin: 27}"))
    assert str(error).endswith(
        "slots[1].relays.io0.pin: pin 27 is already used by power of slot a-1"
    )
    assert error.col == len("      io0: {") + 1  # at the pin key


def test_gpiod_line_name_and_bcm_number_are_the_same_pin(station_file):
    text = STATION.replace("io0: {pin: 22}", "io0: {pin: GPIO17}")
    error = only_error(station_file(text), line_of(text, "GPIO17"))
    assert error.message == "pin GPIO17 is already used by io0 of slot a-1"


def test_a_port_or_usb_serial_in_two_slots_is_an_error_at_the_second(station_file):
    """Two slots on one serial port (or one USB serial number) would drive two boards' relays
    while talking to one chip: the rig could dump one board and erase the other."""
    third = (
        "  - id: a-3\n    board: l7x\n    {key}: {value}\n"
        "    relays: {{io0: {{pin: 5}}, power: {{pin: 6}}}}\n"
    )
    text = STATION + third.format(key="port", value="/dev/ttyUSB0")
    error = only_error(station_file(text), line_of(text, "port: /dev/ttyUSB0", 2))
    assert error.where == "slots[2].port"
    assert error.message == "port /dev/ttyUSB0 is already used by slot a-1"
    text = STATION + third.format(key="usb_serial", value='"0001"')
    error = only_error(station_file(text), line_of(text, 'usb_serial: "0001"', 2))
    assert error.where == "slots[2].usb_serial"
    assert error.message == "USB serial 0001 is already used by slot a-2"


def test_the_same_expected_mac_in_two_slots_is_an_error_at_the_second(station_file):
    mac_1, mac_2 = "    expected_mac: 24:0a:c4:12:34:56\n", "    expected_mac: 24-0A-C4-12-34-56\n"
    text = STATION.replace("    port: /dev/ttyUSB0\n", "    port: /dev/ttyUSB0\n" + mac_1)
    text = text.replace('    usb_serial: "0001"\n', '    usb_serial: "0001"\n' + mac_2)
    error = only_error(station_file(text), line_of(text, "expected_mac: 24-0A"))
    assert error.where == "slots[1].expected_mac"
    assert error.message == "MAC 24:0a:c4:12:34:56 is already the expected_mac of slot a-1"


def test_simulated_slots_without_a_port_are_not_duplicates():
    station = default_station()  # four simulated slots, none with a port or a USB serial
    assert len(station.slots) > 1 and all(s.port is s.usb_serial is None for s in station.slots)


def test_download_retries_must_be_at_least_one(board_file):
    """0 would mean no attempt at all: the download sequence would never be played."""
    text = BOARD.replace("relays: [io0, power]\n", "relays: [io0, power]\ndownload_retries: 0\n")
    error = only_error(board_file(text), line_of(text, "download_retries"))
    assert error.where == "download_retries"
    assert error.message.startswith("Input should be greater than or equal to 1")
    text = BOARD.replace("relays: [io0, power]\n", "relays: [io0, power]\ndownload_retries: 1\n")
    assert load_board(board_file(text)).download_retries == 1


def test_negative_wait(board_file):
    text = BOARD.replace("{wait: 0.3}", "{wait: -0.3}")
    error = only_error(board_file(text), line_of(text, "wait: -0.3"))
    assert error.where == "sequences.download[2].wait"
    assert error.message == "wait must be between 0 and 60 seconds (got -0.3)"


def test_wait_longer_than_the_limit(board_file):
    text = BOARD.replace("{wait: 0.3}", "{wait: 61}")
    error = only_error(board_file(text), line_of(text, "wait: 61"))
    assert "between 0 and 60 seconds" in error.message


def test_bare_off_is_a_string_key_and_yaml_1_1_booleans_are_not_booleans(board_file):
    assert "\n  off:\n" in BOARD  # unquoted
    board = load_board(board_file())
    assert [str(s) for s in board.sequences.off] == ["release power", "open io0"]
    text = BOARD.replace("modem_lines: false", "modem_lines: off")
    error = only_error(board_file(text), line_of(text, "modem_lines"))
    assert error.message.startswith("Input should be a valid boolean (got 'off')")


def test_sequence_role_not_declared_by_the_board(board_file):
    text = BOARD.replace("relays: [io0, power]", "relays: [io0]")
    errors = check_files([board_file(text)])
    assert [(e.line, e.where) for e in errors] == [
        (line_of(text, "press: power"), "sequences.download[1].press"),
        (line_of(text, "release: power"), "sequences.run[0].release"),
        (line_of(text, "release: power", 2), "sequences.off[0].release"),
    ]
    assert "relay power is not one of this board's relays (io0)" in errors[0].message


def test_board_name_must_match_its_file(board_file):
    error = only_error(board_file(name="other"), 1)
    assert error.message == "board 'tb' must be in tb.yaml (the file is other.yaml)"


def test_pulse_needs_ms_and_steps_have_one_action(board_file):
    text = BOARD.replace("- {release: power}\n  off", "- {pulse: power}\n  off")
    error = only_error(board_file(text), line_of(text, "pulse: power"))
    assert error.message == "a pulse needs its length: {pulse: ROLE, ms: 100}"
    text = BOARD.replace("{open: io0}\n  run", "{open: io0, close: io0}\n  run")
    error = only_error(board_file(text), line_of(text, "open: io0, close"))
    assert "a step has exactly one of" in error.message


def test_missing_key_names_it(board_file):
    text = BOARD.replace("description: a test board\n", "")
    error = only_error(board_file(text), 1)
    assert str(error).endswith(": description: missing required key 'description'")


def test_slot_ids_unique_and_port_required(station_file):
    text = STATION.replace("id: a-2", "id: a-1")
    error = only_error(station_file(text), line_of(text, "id: a-1", 2))
    assert error.message == "slot id a-1 is already used by slots[0]"
    text = STATION.replace("    port: /dev/ttyUSB0\n", "")
    error = only_error(station_file(text), line_of(text, "id: a-1"))
    assert error.where == "slots[0]" and "a slot needs a serial port" in error.message


def test_rpigpio_needs_bcm_numbers_and_has_no_chip(station_file):
    text = STATION.replace("backend: gpiod", "backend: rpigpio").replace("pin: 17", "pin: GPIO5")
    error = only_error(station_file(text), line_of(text, "GPIO5"))
    assert "RPi.GPIO takes BCM numbers" in error.message
    text = STATION.replace("backend: gpiod", "backend: rpigpio, chip: gpiochip0")
    error = only_error(station_file(text), line_of(text, "rpigpio"))
    assert error.where == "pins.chip"


def test_simulated_slots_need_the_sim_backend(station_file):
    text = STATION.replace("    port: /dev/ttyUSB0\n", "    simulated: {variant: l7x, seed: s1}\n")
    error = only_error(station_file(text), line_of(text, "simulated:"))
    assert error.message == "a simulated slot needs pins: {backend: sim} (this station: gpiod)"


def test_paths_expand_env_and_resolve_against_the_file(station_file, tmp_path, monkeypatch):
    monkeypatch.setenv("RIG_TEST_DIR", "/srv/rig")
    monkeypatch.delenv("RIG_UNSET_VAR", raising=False)
    text = STATION.replace("backups: backups", "backups: $RIG_TEST_DIR/backups")
    station = load_station(station_file(text))
    assert station.backups == Path("/srv/rig/backups")
    assert station.locks == tmp_path / "stations" / "locks"
    text = STATION.replace("locks: locks", "locks: ${RIG_UNSET_VAR}/locks")
    error = only_error(station_file(text), line_of(text, "locks:"))
    assert error.message.startswith("environment variable RIG_UNSET_VAR is not set")


def test_mac_is_normalised(station_file):
    text = STATION.replace(
        "    port: /dev/ttyUSB0\n", "    port: /dev/ttyUSB0\n    expected_mac: 24-0A-C4-12-34-56\n"
    )
    assert load_station(station_file(text)).slots[0].expected_mac == "24:0a:c4:12:34:56"


# -- several problems ------------------------------------------------------------------------------
def test_check_files_reports_every_problem_in_a_file(station_file):
    text = (
        STATION.replace("board: l7x", "board: nope")
        .replace("io0: {pin: 22}", "io0: {pin: 17}")
        .replace("id: a-2", "id: a-1")
    )
    path = station_file(text)
    errors = check_files([path])
    assert [(e.line, e.where) for e in errors] == [
        (line_of(text, "board: nope"), "slots[0].board"),
        (line_of(text, "id: a-1", 2), "slots[1].id"),
        (line_of(text, "io0: {pin: 17}", 2), "slots[1].relays.io0.pin"),
    ]
    with pytest.raises(ConfigError) as raised:
        load_station(path)
    assert [str(e) for e in raised.value.errors] == [str(e) for e in errors]
    assert raised.value.report().count("\n") == 2


def test_check_files_reports_field_problems_together(board_file, tmp_path):
    text = (
        BOARD.replace("size: 4MB", "size: 3MB")
        .replace("console_baud: 115200", "console_baud: true")
        .replace("{wait: 0.3}", "{wait: -1}")
    )
    errors = check_files([board_file(text), tmp_path / "missing.yaml"])
    assert [e.where for e in errors] == [
        "",
        "flash.size",
        "serial.console_baud",
        "sequences.download[2].wait",
    ]
    assert str(errors[0]) == f"{tmp_path / 'missing.yaml'}: no such file"


def test_check_files_uses_the_board_files_being_checked(board_file, station_file):
    board_file()
    text = STATION.replace("board: l7x", "board: tb")
    assert check_files([station_file(text)]) == []  # ../boards beside the station
    assert load_station(station_file(text)).board_of("a-1").name == "tb"


# -- schema ----------------------------------------------------------------------------------------
def test_json_schema_validates_shipped_files():
    jsonschema = pytest.importorskip("jsonschema")
    schemas = json.loads(json.dumps(json_schema()))
    assert set(schemas) == {"board", "station", "catalog"}
    for kind, files in (
        ("board", [BOARDS_DIR / "l7x.yaml", BOARDS_DIR / "esp32-devkitc.yaml"]),
        ("station", [STATIONS_DIR / "sim.yaml", STATIONS_DIR / "pi-example.yaml"]),
        ("catalog", [builtin_configs_dir() / "firmware" / "catalog.yaml"]),
    ):
        validator = jsonschema.Draft202012Validator(schemas[kind])
        validator.check_schema(schemas[kind])
        for file in files:
            data = load_yaml(file.read_text()).data
            assert not list(validator.iter_errors(data)), file
    board = load_yaml((BOARDS_DIR / "l7x.yaml").read_text()).data
    board["sequences"]["run"].append({"wait": 1, "close": "io0"})
    board["serial"]["colour"] = "blue"
    assert len(list(jsonschema.Draft202012Validator(schemas["board"]).iter_errors(board))) == 2
    assert "source" not in schemas["board"]["properties"]
    assert "boards" not in schemas["station"]["properties"]


# -- building blocks -------------------------------------------------------------------------------
def test_steps():
    assert SequenceStep.model_validate({"pulse": "reset", "ms": 250}, context={}).seconds == 0.25
    step = SequenceStep(action="wait", seconds=0.5)
    assert (str(step), step.as_yaml()) == ("wait 0.5 s", {"wait": 0.5})
    assert SequenceStep.model_validate({"press": "power"}, context={}).as_yaml() == {
        "press": "power"
    }
    with pytest.raises(ValidationError, match="unknown relay role 'fan'"):
        SequenceStep.model_validate({"close": "fan"}, context={})
    with pytest.raises(ValidationError, match="needs a role"):
        SequenceStep(action="close")


def test_direct_construction_still_cross_checks():
    data = load_yaml((BOARDS_DIR / "l7x.yaml").read_text()).data
    data["relays"] = ["io0"]
    with pytest.raises(ValidationError, match="relay power is not one of this board's relays"):
        BoardType.model_validate(data)
    station = load_yaml((STATIONS_DIR / "sim.yaml").read_text()).data
    station["slots"][1]["relays"]["io0"]["pin"] = 17
    with pytest.raises(ValidationError, match="pin 17 is already used by io0 of slot l7x-1"):
        Station.model_validate(station)


def test_config_error_format():
    error = ConfigError("a/b.yaml", 3, 7, "slots[0].id", "bad")
    assert str(error) == "a/b.yaml:3:7: slots[0].id: bad"
    assert str(ConfigError("a.yaml", 1, 1, "", "YAML syntax error: x")) == (
        "a.yaml:1:1: YAML syntax error: x"
    )
    assert error.errors == (error,)


def test_yaml_reader_positions_and_core_schema():
    doc = load_yaml("a: 1\nb:\n  - {c: 0x10, d: on}\n  - 12:30\noff: yes\ne: 0o17\nf: 1.5e3\n")
    assert doc.data == {
        "a": 1,
        "b": [{"c": 16, "d": "on"}, "12:30"],
        "off": "yes",
        "e": 15,
        "f": 1500.0,
    }
    assert doc.positions[("b", 0, "d")] == (3, 15)
    assert doc.positions[("b", 1)] == (4, 5)
    assert doc.positions[("off",)] == (5, 1)
    assert doc.position(("b", 0, "zz")) == (3, 5)
    with pytest.raises(YamlError, match="duplicate key 'x'") as raised:
        load_yaml("x: 1\ny:\n  x: 2\nx: 3\n")
    assert (raised.value.line, raised.value.col) == (4, 1)
    with pytest.raises(YamlError, match="merge keys"):
        load_yaml("a: &a {x: 1}\nb:\n  <<: *a\n")
    with pytest.raises(YamlError, match="unsupported YAML tag"):
        load_yaml("a: !!python/object:os.system x\n")


SIM_STATION = """\
name: ts
backups: backups
locks: locks
pins: {backend: sim}
slots:
  - id: a-1
    board: l7x
    relays: {io0: {pin: 17}, power: {pin: 27}}
    simulated: {variant: l7x, SETTING}
"""


@pytest.mark.parametrize(
    ("setting", "where", "message"),
    [
        ("flash_id: 0x1000000", "flash_id", "flash_id is the 3-byte RDID answer"),
        ("flash_id: abc", "flash_id", "flash_id must be an integer"),
        ("efuses: {flash_crypt_cnt: 128}", "efuses.flash_crypt_cnt", "less than or equal to 127"),
        ("efuses: {abs_done_2: true}", "efuses.abs_done_2", "did you mean 'abs_done_1'"),
    ],
)
def test_a_simulated_chips_flash_id_and_efuses_are_checked(station_file, setting, where, message):
    text = SIM_STATION.replace("SETTING", setting)
    error = only_error(station_file(text), line_of(text, "simulated:"))
    assert error.where == f"slots[0].simulated.{where}" and message in error.message, str(error)


def test_a_simulated_chips_flash_id_and_efuses_reach_the_slot(station_file):
    text = SIM_STATION.replace("SETTING", "flash_id: 0x01871F, efuses: {abs_done_1: true}")
    sim = load_station(station_file(text)).slots[0].simulated
    assert sim.flash_id == 0x01871F
    assert sim.efuses == config.SimEfuses(flash_crypt_cnt=0, abs_done_0=False, abs_done_1=True)
