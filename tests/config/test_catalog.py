"""Firmware catalogs: a station's catalog.yaml files load with positions; a bad entry fails at its
file:line; a part's file is checked when the entry is used, naming the entry and where it looked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from config_harness import only_error

from rig.config import (
    ConfigError,
    check_files,
    load_board,
    load_station,
)

APP = b"\xe9\x03\x02\x20" + hashlib.shake_256(b"test app").digest(8188)  # 8 KB "image"
APP_SHA = hashlib.sha256(APP).hexdigest()

CATALOG = """\
# my bench's firmware
firmware:
  - name: app
    board: l7x
    parts:
      - file: app.bin
        offset: 0x10000
        sha256: SHA
    console: hello
"""

STATION = """\
name: ts
backups: backups
locks: locks
firmware: FIRMWARE
pins: {backend: gpiod}
slots:
  - id: a-1
    board: l7x
    port: /dev/ttyUSB0
    relays: {io0: {pin: 17}, power: {pin: 27}}
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line][nth - 1]


@pytest.fixture
def catalog(tmp_path):
    """Write ``firmware/catalog.yaml`` (default: CATALOG) and ``firmware/app.bin``."""
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "app.bin").write_bytes(APP)

    def write(text: str = CATALOG) -> Path:
        path = tmp_path / "firmware" / "catalog.yaml"
        path.write_text(text.replace("SHA", APP_SHA))
        return path

    return write


@pytest.fixture
def station(tmp_path):
    (tmp_path / "stations").mkdir()

    def write(firmware: str = "../firmware") -> Path:
        path = tmp_path / "stations" / "ts.yaml"
        path.write_text(STATION.replace("FIRMWARE", firmware))
        return path

    return write


def test_a_station_gives_its_board_types_the_entries_of_its_catalogs(catalog, station):
    path = catalog()
    loaded = load_station(station())
    [fw] = loaded.boards["l7x"].firmware
    assert loaded.catalog == (fw,) and loaded.firmware_dirs == (path.parent,)
    [part] = fw.parts
    assert (part.file, part.offset, part.sha256) == (path.parent / "app.bin", 0x10000, APP_SHA)
    assert part.at == f"{path}:{line_of(CATALOG, 'file: app.bin')}:9"
    assert (fw.console, fw.sha256, fw.offset, fw.describe()) == (
        "hello",
        APP_SHA,
        0x10000,
        "app.bin@0x10000",
    )
    fw.check_files()  # the file is there and hashes to the pinned sha256
    assert check_files([path]) == [] and check_files([station()]) == []


def test_a_missing_file_is_one_error_naming_the_entry_and_where_it_looked(catalog, station):
    """The station still loads (a moved file must not stop `rig dump`); using the entry, or
    checking the station or the catalog, names the entry, the file and the directory."""
    path = catalog(CATALOG.replace("file: app.bin", "file: gone.bin"))
    [fw] = load_station(station()).catalog
    with pytest.raises(ConfigError) as raised:
        fw.check_files()
    error = raised.value
    gone = path.parent / "gone.bin"
    assert str(error) == (
        f"{path}:{line_of(CATALOG, 'file: app.bin')}:9: firmware[0].parts[0].file: "
        f"firmware app: {gone} does not exist (looked in {path.parent})"
    )
    assert [str(e) for e in check_files([station()])] == [str(error)]
    assert [str(e) for e in check_files([path])] == [str(error)]


def test_a_file_with_another_sha256_is_refused_when_used(catalog, station):
    catalog(CATALOG.replace("sha256: SHA", "sha256: " + "ab" * 32))
    [fw] = load_station(station()).catalog
    with pytest.raises(ConfigError, match=f"app.bin hashes to {APP_SHA}, the catalog pins abab"):
        fw.check_files()


def test_files_expand_home_and_variables(catalog, station, tmp_path, monkeypatch):
    monkeypatch.setenv("FW_HOME", str(tmp_path / "firmware"))
    monkeypatch.setenv("HOME", str(tmp_path))
    catalog(CATALOG.replace("file: app.bin", "file: ${FW_HOME}/app.bin"))
    [fw] = load_station(station("~/firmware")).catalog
    assert fw.parts[0].file == tmp_path / "firmware" / "app.bin"
    fw.check_files()


@pytest.mark.parametrize(
    ("change", "needle", "where", "message"),
    [
        (
            ("offset: 0x10000", "offset: 0x10800"),
            "offset: 0x10800",
            "firmware[0].parts[0].offset",
            "offset 0x10800 is not aligned to a 4 KB flash sector (0x1000)",
        ),
        (
            ("offset: 0x10000", "offset: 0x400000"),
            "offset: 0x400000",
            "firmware[0].parts[0].offset",
            "offset 0x400000 is outside the 4 MB flash of board type l7x (0x0..0x3fffff)",
        ),
        (
            ("sha256: SHA", "sha256: SHAz"),
            "sha256:",
            "firmware[0].parts[0].sha256",
            "sha256 must be 64 hex digits (got 65 characters",
        ),
        (
            ("board: l7x", "board: nope"),
            "board: nope",
            "firmware[0].board",
            "unknown board type 'nope' (known: esp32-devkitc, l7x)",
        ),
        (
            ("console: hello", "console: '(('"),
            "console:",
            "firmware[0].console",
            "console is not a valid regular expression",
        ),
    ],
)
def test_a_bad_entry_is_an_error_at_its_line(catalog, station, change, needle, where, message):
    text = CATALOG.replace(*change)
    path = catalog(text)
    error = only_error(path, line_of(text, needle))
    assert error.where == where and error.message.startswith(message)
    with pytest.raises(ConfigError) as raised:
        load_station(station())
    assert str(raised.value) == str(error)  # the station does not load with a broken catalog


def test_a_name_is_defined_once_across_the_stations_catalogs(catalog, station, tmp_path):
    first = catalog()
    second = tmp_path / "more" / "catalog.yaml"
    second.parent.mkdir()
    text = CATALOG.replace("file: app.bin", f"file: {first.parent / 'app.bin'}")
    second.write_text(text.replace("SHA", APP_SHA))
    with pytest.raises(ConfigError) as raised:
        load_station(station(f"[../firmware, {second.parent}]"))
    error = raised.value
    assert (error.file, error.line, error.where) == (second, 3, "firmware[0].name")
    assert error.message == f"firmware app is already defined at {first}:3:5"


def test_a_board_type_with_a_catalog_says_where_catalogs_went(tmp_path):
    board = Path(__file__).parents[2] / "configs" / "boards" / "l7x.yaml"
    text = board.read_text() + "firmware:\n  - {name: x}\n"
    (tmp_path / "boards").mkdir()
    path = tmp_path / "boards" / "l7x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_board(path)
    assert raised.value.where == "firmware" and raised.value.line == line_of(text, "firmware:")
    assert "catalogs belong to stations" in raised.value.message
    assert "rig firmware add" in raised.value.message


def test_a_catalog_entry_can_have_several_parts(catalog, station, tmp_path):
    """Like flasher_args.json or the Arduino IDE: bootloader, partitions, boot_app0, app."""
    (tmp_path / "firmware" / "boot_app0.bin").write_bytes(b"\xff" * 0x2000)
    boot_sha = hashlib.sha256(b"\xff" * 0x2000).hexdigest()
    text = CATALOG.replace(
        "    parts:\n",
        f"    parts:\n      - {{file: boot_app0.bin, offset: 0xe000, sha256: {boot_sha}}}\n",
    )
    catalog(text)
    [fw] = load_station(station()).catalog
    assert [p.offset for p in fw.parts] == [0xE000, 0x10000] and fw.offset == 0xE000
    assert fw.describe() == "boot_app0.bin@0xe000 + app.bin@0x10000"
    lines = f"0xe000 {boot_sha}\n0x10000 {APP_SHA}\n"
    assert fw.sha256 == hashlib.sha256(lines.encode()).hexdigest()
    twice = text.replace("offset: 0xe000", "offset: 0x10000")
    error = only_error(catalog(twice), line_of(twice, "offset: 0x10000", 2))
    assert error.message == "two parts at offset 0x10000"


def test_a_firmware_directory_listed_twice_is_an_error_of_the_station(catalog, station):
    """Its catalog would be read twice: every name defined twice, reported in the catalog."""
    catalog()
    path = station("[../firmware, ../firmware]")
    with pytest.raises(ConfigError) as raised:
        load_station(path)
    error = raised.value
    assert (error.file, error.where) == (path, "firmware[1]")
    assert error.message.endswith("firmware is listed twice")
