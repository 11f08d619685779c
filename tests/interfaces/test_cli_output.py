"""What a person reads: every listing at 80 and 200 columns with MACs and ids whole, plain text
(no box drawing) when piped, TSV, full values in --json, and the station named - simulated or
not - in the first line and in the JSON of every command family."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, ValidationError

from rig import config
from rig.cli import main
from rig.cli.render import print_batch
from rig.cli.render.html import batch_html
from rig.cli.render.tables import station_line
from rig.cli.schemas import OUTPUTS, output_schema
from rig.esp32 import format_mac
from rig.hardware.locks import SlotLock
from rig.hardware.safety import uninstall_safety_net
from rig.operations.backups import BackupStore
from rig.operations.batch.quarantine import QuarantineEntry, StationState
from rig.operations.batch.results import BatchReport, BoardResult
from rig.sim.parts.efuse import mac_from_seed

MAC = format_mac(mac_from_seed("l7x:l7x-2"))
FLASH = bytes(range(256)) * 16 * 4  # 16 KB is enough for a listing
BOX = re.compile("[│┃━─┏┓└┘╇┡┩]")
LISTINGS = {  # command -> the identifiers its table must show whole
    "backups": ("id", "mac"),
    "stations": ("slot", "expected_mac"),
    "boards": ("name",),
    "quarantine": ("slot", "mac"),
    "firmware list": ("name",),
    "status": ("slot", "mac"),
}
KEYS = {"backups": "backups", "stations": "slots", "boards": "boards"}
KEYS |= {"quarantine": "quarantined", "firmware list": "firmware", "status": "slots"}


@pytest.fixture
def rig(sim_station_file):
    def run(*args: str, width: int = 200, code: int = 0):
        result = CliRunner().invoke(
            main, [*args, "--station", str(sim_station_file)], env={"COLUMNS": str(width)}
        )
        assert result.exit_code == code, result.output
        return result

    yield run
    uninstall_safety_net()


@pytest.fixture
def seeded(sim_station_file):
    """A backup of l7x-2 and a quarantined l7x-2: every listing has rows with a MAC."""
    station = config.load_station(sim_station_file)
    backup = BackupStore(station.backups).save(
        MAC, FLASH, hashlib.md5(FLASH).hexdigest(), {"slot": "l7x-2"}, flash_size=len(FLASH)
    )
    entry = QuarantineEntry(
        "l7x-2", "gave up after 3 attempts: " + "the port stayed silent " * 4,
        "2026-01-02T03:04:05+00:00", MAC, 3, str(station.state_dir / "runs" / ("x" * 30)),
    )  # fmt: skip
    StationState.of(station).quarantine([entry])
    return backup


def valid(name: str, data: dict) -> dict:
    """``data``, checked against ``rig schema --output name``."""
    schema = json.loads(CliRunner().invoke(main, ["schema", "--output", name]).stdout)
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(data)
    return data


def identifiers(rig, command: str) -> list[str]:
    data = valid(command.replace(" ", "-"), json.loads(rig(*command.split(), "--json").stdout))
    keys = LISTINGS[command]
    values = [str(row[k]) for row in data[KEYS[command]] for k in keys if row[k]]
    assert values, f"{command} lists nothing to check"
    return values


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("command", list(LISTINGS))
def test_every_listing_shows_its_identifiers_whole_at_80_and_200_columns(
    rig, seeded, command, width, tmp_path
):
    table = rig(*command.split(), "--format", "table", width=width).stdout
    lines = table.splitlines()
    assert lines[0].startswith("station sim: SIMULATED boards")
    # nothing wider than the terminal but a title naming a path (tmp_path: long, on one line)
    assert all(len(line) <= width for line in lines[1:] if str(tmp_path) not in line), table
    for value in identifiers(rig, command):
        assert value in table, f"{value} not whole at {width} columns:\n{table}"
    assert "…" not in table


@pytest.mark.parametrize("command", list(LISTINGS))
def test_piped_listings_are_plain_aligned_text_and_tsv(rig, seeded, command):
    plain = rig(*command.split()).stdout  # CliRunner: stdout is not a terminal
    assert not BOX.search(plain), plain
    for value in identifiers(rig, command):
        assert value in plain
    tsv = rig(*command.split(), "--format", "tsv")
    rows = [line.split("\t") for line in tsv.stdout.splitlines()]
    assert len({len(r) for r in rows}) == 1 and len(rows) >= 2  # a header, a row or more
    assert "station sim: SIMULATED" in tsv.stderr and "station" not in rows[0]


def test_backups_json_carries_full_values(rig, seeded):
    data = valid("backups", json.loads(rig("backups", "--json").stdout))
    assert (data["station"], data["simulated"]) == ("sim", True)
    [row] = data["backups"]
    assert row["sha256"] == hashlib.sha256(FLASH).hexdigest()  # all 64 digits
    assert row["size"] == len(FLASH) and row["intact"] is True
    assert datetime.fromisoformat(row["created"]).tzinfo is not None
    assert row["id"] == seeded.id and row["mac"] == MAC


def test_the_batch_table_keeps_slot_and_mac_whole_at_80_columns(monkeypatch, capsys):
    boards = [
        BoardResult(
            slot=f"bench-l7x-{n}",
            result="quarantined" if n == 2 else "ok",
            mac=MAC,
            bytes_written=838848,
            bytes_skipped=3355456,
            seconds=12.3,
            error="gave up after 3 attempts: no download mode: " + "check the io0 relay " * 3,
        )  # fmt: skip
        for n in range(1, 5)
    ]
    firmware = {"name": "custom-grbl", "sha256": "0" * 64, "offset": 0x1000, "size": 1}
    report = BatchReport("bench", "l7x", firmware, "/r", "/s", "now", 4, 2, boards=boards)
    data = json.loads(report.to_json())
    data["boards"][0]["result"] = "exploded"
    with pytest.raises(ValidationError, match="exploded"):  # not one of the results
        valid("flash", data)
    for width in (80, 200):
        monkeypatch.setenv("COLUMNS", str(width))
        print_batch(report, "table")
        table = capsys.readouterr().out
        assert all(len(line) <= width for line in table.splitlines())
        for board in boards:
            assert re.search(rf"│ {board.slot} +│ {MAC} │ {board.result} ", table), table


def test_a_step_report_is_plain_when_piped_and_names_the_station(rig):
    result = rig("identify", "--slot", "l7x-2", width=80)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("station sim: SIMULATED boards")
    assert not BOX.search(result.stdout)
    assert re.search(r"^identify +ok +\d+\.\d\d s ", result.stdout, re.M), result.stdout
    report = valid("report", json.loads(rig("identify", "--slot", "l7x-2", "--json").stdout))
    assert (report["station"], report["simulated"], report["mac"]) == ("sim", True, MAC)


@pytest.mark.parametrize("command", [["boards"], ["stations"], ["backups"], ["quarantine"]])
def test_a_real_station_is_not_called_simulated(command):
    pi = config.builtin_configs_dir() / "stations" / "pi-example.yaml"
    station = config.load_station(pi)
    result = CliRunner().invoke(main, [*command, "--station", str(pi), "--json"])
    data = json.loads(result.stdout)
    assert (data["station"], data["simulated"]) == (station.name, False)
    first = CliRunner().invoke(main, [*command, "--station", str(pi)]).stdout.splitlines()[0]
    assert first == f"station {station.name} ({pi})"


def test_a_station_with_some_simulated_slots_names_them():
    station = config.default_station()
    real = station.slots[0].model_copy(update={"simulated": None, "port": "/dev/ttyUSB0"})
    mixed = station.model_copy(update={"slots": (real, *station.slots[1:])})
    assert mixed.simulated and mixed.simulated_slots == tuple(s.id for s in station.slots[1:])
    assert station_line(mixed).startswith("station sim: SIMULATED slots l7x-2, l7x-3, ")


def test_status_shows_lock_quarantine_last_run_and_backups_per_slot(rig, seeded, sim_station_file):
    station = config.load_station(sim_station_file)
    run = StationState.of(station).new_run_dir()
    board = BoardResult(slot="l7x-2", result="failed", mac=MAC, error="no download mode")
    firmware = {"name": "custom-grbl", "sha256": "0" * 64, "offset": 0x1000, "size": 1}
    report = BatchReport("sim", "l7x", firmware, str(run), "", "2026-01-02T03:04:05+00:00", 1, 0)
    report.boards = [board]
    (run / "report.json").write_text(report.to_json())
    with SlotLock(station.locks, station.name, "l7x-3"):
        data = json.loads(rig("status", "--json").stdout)
        plain = rig("status").stdout
    slots = {s["slot"]: s for s in data["slots"]}
    assert list(slots) == [s.id for s in station.slots] and data["simulated"] is True
    two = slots["l7x-2"]
    assert (two["board"], two["mac"], two["backups"]) == ("l7x", MAC, 1)
    assert two["latest_backup"]["id"] == seeded.id
    assert two["latest_backup"]["sha256"] == hashlib.sha256(FLASH).hexdigest()
    assert two["quarantined"]["attempts"] == 3 and two["lock_holder"] is None
    assert two["last_run"]["result"] == "failed" and two["last_run"]["run"] == str(run)
    assert slots["l7x-3"]["lock_holder"].startswith(f"{os.getpid()} ")
    assert slots["l7x-1"] == {**slots["l7x-1"], "backups": 0, "last_run": None, "quarantined": None}
    row = next(line for line in plain.splitlines() if line.startswith("l7x-2 "))
    assert MAC in row and "QUARANTINED since 2026-01-02 03:04" in row
    assert "failed (custom-grbl, 2026-01-02 03:04): no download mode" in row
    assert seeded.id in row and "1, latest " in row
    assert "in use: " in next(line for line in plain.splitlines() if line.startswith("l7x-3 "))


def test_the_html_report_highlights_retries_and_quarantines():
    step = {"name": "connect", "ok": False, "seconds": 2.0, "detail": "no download mode"}
    ok = {"name": "write", "ok": True, "seconds": 4.0, "detail": ""}
    boards = [
        BoardResult(slot="l7x-1", result="quarantined", mac=MAC, attempts=3, steps=[step]),
        BoardResult(
            slot="l7x-2",
            result="ok",
            mac=MAC,
            attempts=2,
            steps=[ok],
            bytes_written=4096 * 100,
            attempt_errors=["the port stayed silent"],
            started="2026-01-02T03:04:06+00:00",
        ),  # fmt: skip
        BoardResult(slot="l7x-3", result="ok", mac=MAC, attempts=1, steps=[ok]),
    ]
    firmware = {"name": "fw<1>", "sha256": "a" * 64, "offset": 0x1000, "size": 1}
    report = BatchReport(
        "sim", "l7x", firmware, "/r", "/s", "2026-01-02T03:04:05+00:00", 3, 2, boards=boards
    )
    page = batch_html(report)
    rows = dict(re.findall(r'<tr class="(\w*)"><td class="mono">([\w-]+)</td>', page))
    assert {v: k for k, v in rows.items()} == {"l7x-1": "quarantined", "l7x-2": "retried"} | {
        "l7x-3": ""
    }
    assert "the port stayed silent" in page and "100.0 KiB/s" in page  # 400 KiB in 4 s
    assert 'fill="#b3261e"' in page  # the failed step is red
    assert "fw&lt;1&gt;" in page and "fw<1>" not in page  # escaped
    assert "a" * 64 in page  # the full sha256


def test_every_output_schema_is_a_valid_schema_and_refuses_a_short_sha256(rig, seeded):
    for name in OUTPUTS:
        Draft202012Validator.check_schema(output_schema(name))
    data = json.loads(rig("backups", "--json").stdout)
    data["backups"][0]["sha256"] = data["backups"][0]["sha256"][:16]  # what `rig backups` had
    with pytest.raises(ValidationError, match="does not match"):
        valid("backups", data)
