"""`rig flash` (batch) and `rig quarantine` on a simulated station with four L7X slots.

Time matters here (the whole suite runs on two cores): backups are pre-seeded wherever a test does
not need a fresh 4 MB dump - the store is keyed by MAC and a simulated board's MAC derives from
its slot seed, so one module-wide set of verified backups of the synthetic vendor flash serves
every test - and the fault test uses an L7X board type with two download sequences per attempt
instead of three, so a broken slot gives up sooner.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner
from esptool.util import FatalError
from jsonschema import Draft202012Validator

from rig.board.board import DownloadModeError
from rig.cli.batch import flash_command, quarantine_command
from rig.cli.schemas import output_schema
from rig.config import builtin_configs_dir, load_station
from rig.errors import OperationError, is_transient
from rig.esp32 import format_mac
from rig.hardware.locks import SlotBusy, SlotLock
from rig.hardware.ports import PortNotFound
from rig.images.flash_contents import vendor_l7x_flash
from rig.operations.backups import BackupStore, mac_dir
from rig.operations.batch import STEPS, BatchReport, Job, flash_board, plan_batch
from rig.operations.batch.quarantine import QuarantineEntry, StationState
from rig.operations.bootcheck import ConsoleLost, boot_check
from rig.operations.fastwrite import FlashDefect
from rig.operations.session import FlasherError, FlasherSession, WrongBoard
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.timeout(90)

L7X = ("l7x-1", "l7x-2", "l7x-3", "l7x-4")
PINS = {"l7x-1": (17, 27), "l7x-2": (22, 23), "l7x-3": (24, 25), "l7x-4": (5, 6)}
FIXED_MAC = {"l7x-4": "24:0a:c4:00:00:04"}  # this slot's board is known by its MAC
CUSTOM = builtin_configs_dir() / "firmware" / "custom-grbl.bin"


def sim_mac(slot: str) -> str:
    return FIXED_MAC.get(slot) or format_mac(mac_from_seed(f"l7x:{slot}"))


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    """Verified backups of every L7X slot's vendor flash, stored without a dump."""
    root = tmp_path_factory.mktemp("golden") / "backups"
    store = BackupStore(root)
    flash = vendor_l7x_flash()
    md5 = hashlib.md5(flash).hexdigest()
    for slot in L7X:
        meta = {"slot": slot, "seeded_by": "tests"}
        store.save(sim_mac(slot), flash, md5, meta, flash_size=len(flash))
    return root


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in mapping.items()) + "}"


@pytest.fixture
def bench(tmp_path, golden):
    """``bench(faults={...}, seeded=(...), download_retries=N)`` -> a station file: four
    simulated L7X slots and a DevKitC slot, locks, backups and state under tmp_path."""

    def make(faults=None, seeded=L7X, download_retries=None) -> Path:
        faults = faults or {}
        backups = tmp_path / "backups"
        backups.mkdir()
        for slot in seeded:
            name = mac_dir(sim_mac(slot))
            shutil.copytree(golden / name, backups / name, copy_function=os.link)
        if download_retries is not None:
            text = (builtin_configs_dir() / "boards" / "l7x.yaml").read_text()
            text = text.replace("download_retries: 3", f"download_retries: {download_retries}")
            (tmp_path / "boards").mkdir()
            (tmp_path / "boards" / "l7x.yaml").write_text(text)
        lines = [
            "name: bench",
            f"backups: {backups}",
            f"locks: {tmp_path / 'locks'}",
            f"firmware: {builtin_configs_dir() / 'firmware'}",  # the synthetic images' catalog
            "pins: {backend: sim}",
            "slots:",
        ]
        for slot in L7X:
            io0, power = PINS[slot]
            sim = {"variant": "l7x", **faults.get(slot, {})}
            extra = ""
            if slot in FIXED_MAC:
                sim["mac"] = FIXED_MAC[slot]
                extra = f", expected_mac: {FIXED_MAC[slot]}"
            else:
                sim["seed"] = slot
            lines.append(
                f"  - {{id: {slot}, board: l7x, relays: {{io0: {{pin: {io0}}}, "
                f"power: {{pin: {power}}}}}, simulated: {_flow(sim)}{extra}}}"
            )
        lines.append(
            "  - {id: devkitc-1, board: esp32-devkitc, relays: {io0: {pin: 12, active_low: false}, "
            "reset: {pin: 13, active_low: false}}, "
            "simulated: {variant: devkit, vendor_flash: false}}"
        )
        station = tmp_path / "stations" / "bench.yaml"
        station.parent.mkdir()
        station.write_text("\n".join(lines) + "\n")
        return station

    return make


def invoke(command, *args: str):
    result = CliRunner().invoke(command, [str(a) for a in args], env={"COLUMNS": "300"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def flash(station: Path, *args: str):
    return invoke(
        flash_command, "--station", station, "--board", "l7x", "--firmware", "custom-grbl", *args
    )


def runs(station: Path) -> list[Path]:
    return sorted((station.parent.parent / "state" / "bench" / "runs").glob("*"))


class ReportPage(HTMLParser):
    """report.html, as a browser reads it: the timeline's bars per board (the SVG row's label,
    then its rects' data-step), the table's rows by slot, and anything it would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: dict[str, list[str]] = {}
        self.rows: dict[str, list[str]] = {}
        self.external: list[str] = []
        self._label = self._cell = False
        self._board = ""
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.external.append(attrs[key])
        if tag == "text" and attrs.get("x") == "0":
            self._label = True
        elif tag == "rect":
            self.bars[self._board].append(attrs["data-step"])
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = True

    def handle_endtag(self, tag):
        self._label = self._cell = self._label and tag != "text"
        if tag == "tr" and self._row:
            self.rows[self._row[0]] = self._row

    def handle_data(self, data):
        if self._label:
            self._board = data.split(" (")[0]
            self.bars[self._board] = []
        elif self._cell and self._row is not None:
            self._row.append(data)


def parse_report_html(text: str) -> ReportPage:
    page = ReportPage()
    page.feed(text)
    return page


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():  # plain aligned text: stdout is not a terminal
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] in (*L7X, "devkitc-1"):
            rows[cells[0]] = cells
    return rows


# -- the happy path --------------------------------------------------------------------------------
def test_every_board_is_flashed_in_parallel_and_the_table_agrees_with_the_json(bench):
    station = bench()
    result = flash(station)
    assert result.exit_code == 0, result.output
    [run_dir] = runs(station)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["ok"] is True and report["counts"] == {"ok": 4}
    assert (report["station"], report["simulated"]) == ("bench", True)
    assert result.stdout.startswith("station bench: SIMULATED boards, no real hardware")
    assert report["run_dir"] == str(run_dir) and report["interrupted"] is None
    assert report["firmware"]["size"] == CUSTOM.stat().st_size
    boards = {b["slot"]: b for b in report["boards"]}
    assert list(boards) == list(L7X)  # the devkit slot is not an l7x
    for slot, board in boards.items():
        assert board["result"] == "ok", board
        assert board["mac"] == sim_mac(slot)
        assert board["bytes_written"] > 0
        assert board["bytes_written"] + board["bytes_skipped"] == CUSTOM.stat().st_size
        assert [s["name"] for s in board["steps"]] == list(STEPS)
        assert all(s["ok"] for s in board["steps"]) and board["not_done"] == []
        assert board["backup_taken"] is False  # the seeded backup of this MAC was found
        assert board["attempts"] == 1 and board["download_sequences"] == 1
        assert "Grbl 1.3a ['$' for help]" in board["console"]  # the new firmware booted
        assert board["relays_after_release"] == {"io0": False, "power": False}
        assert board["relays_released_by"] == "worker"
        log = Path(board["log"]).read_text()
        assert Path(board["log"]).parent == run_dir
        assert "Hash of data verified" in log and "relays before release" in log
    # In parallel: one process per board, and the boards' times add up to well over the run's.
    pids = {b["pid"] for b in boards.values()}
    assert len(pids) == 4 and os.getpid() not in pids
    assert sum(b["seconds"] for b in boards.values()) > 1.5 * report["seconds"]
    # The table says what the JSON says.
    rows = table_rows(result.stdout)
    assert set(rows) == set(L7X)
    for slot, board in boards.items():
        assert rows[slot][:5] == [
            slot,
            board["mac"],
            "ok",
            str(board["bytes_written"]),
            str(board["bytes_skipped"]),
        ]
        assert rows[slot][5] == f"{board['seconds']:.1f} s" and rows[slot][6] == "-"
    assert report["summary"] in " ".join(result.stdout.split())
    assert BatchReport.from_dict(report).summary() == report["summary"]
    schema = output_schema("flash")  # `rig schema --output flash`
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        report
    )
    # report.html beside report.json, its path printed; every board and each of its steps in it
    html = run_dir / "report.html"
    assert f"report: {html}" in result.stdout
    page = parse_report_html(html.read_text())
    assert not page.external, page.external  # self-contained
    for slot, board in boards.items():
        assert page.bars[slot] == [s["name"] for s in board["steps"]] == list(STEPS)
        assert slot in page.rows and board["mac"] in page.rows[slot]
    for slot in L7X:  # plain progress lines on stderr (not a terminal)
        assert f"{slot}: write" in result.stderr and f"{slot}: OK in" in result.stderr


# -- faults: a broken slot is quarantined, a flaky one succeeds on a retry -------------------------
def test_broken_slot_is_quarantined_flaky_slot_succeeds_on_retry_the_others_succeed(bench):
    station = bench(
        faults={"l7x-1": {"io0_connected": False}, "l7x-2": {"fail_connects": 2}},
        seeded=("l7x-1", "l7x-2", "l7x-4"),  # l7x-3 has no backup yet: it is dumped first
        download_retries=2,
    )
    result = flash(station, "--retries", "1", "--backoff", "0.1", "--json")
    assert result.exit_code == 1, result.output
    [run_dir] = runs(station)
    report = json.loads(result.stdout)
    assert report == json.loads((run_dir / "report.json").read_text())
    assert report["ok"] is False and report["counts"] == {"ok": 3, "quarantined": 1}
    boards = {b["slot"]: b for b in report["boards"]}

    broken = boards["l7x-1"]
    assert broken["result"] == "quarantined"
    assert "booted from flash" in broken["error"] and "check the io0 relay" in broken["error"]
    assert "gave up after 2 attempts" in broken["error"]
    assert broken["attempts"] == 2 and broken["download_sequences"] == 4
    assert broken["not_done"] == list(STEPS) and broken["bytes_written"] == 0
    assert broken["relays_after_release"] == {"io0": False, "power": False}

    flaky = boards["l7x-2"]
    assert flaky["result"] == "ok" and flaky["attempts"] == 2
    assert "the port stayed silent" in flaky["attempt_errors"][0]
    assert flaky["download_sequences"] == 3  # two hung resets, then download mode
    assert "Grbl 1.3a" in flaky["console"]

    dumped = boards["l7x-3"]
    assert dumped["result"] == "ok" and dumped["backup_taken"] is True
    [backup] = BackupStore(station.parent.parent / "backups").list(sim_mac("l7x-3"))
    assert backup.id == dumped["backup"] and backup.meta["slot"] == "l7x-3"
    assert backup.sha256 == hashlib.sha256(vendor_l7x_flash()).hexdigest()
    assert boards["l7x-4"]["result"] == "ok" and boards["l7x-4"]["backup_taken"] is False

    # The quarantine is in the station's state file, with the reason...
    listed = json.loads(invoke(quarantine_command, "--station", station, "--json").stdout)[
        "quarantined"
    ]
    assert [(q["slot"], q["reason"], q["run_dir"]) for q in listed] == [
        ("l7x-1", broken["error"], str(run_dir))
    ]
    # ... a later run skips the slot with a visible note and touches nothing ...
    again = flash(station, "--slots", "l7x-1", "--json")
    assert again.exit_code == 1
    assert "note: skipping l7x-1: quarantined since" in " ".join(again.stderr.split())
    assert "rig quarantine --clear l7x-1" in " ".join(again.stderr.split())
    [skipped] = json.loads(again.stdout)["boards"]
    assert skipped["result"] == "skipped" and broken["error"] in skipped["error"]
    assert not (runs(station)[-1] / "l7x-1.log").exists()
    # ... until it is cleared.
    cleared = invoke(quarantine_command, "--station", station, "--clear", "l7x-1")
    assert cleared.exit_code == 0 and "l7x-1: out of quarantine" in cleared.stderr
    listed = json.loads(invoke(quarantine_command, "--station", station, "--json").stdout)
    assert listed == {"station": "bench", "simulated": True, "quarantined": []}
    listing = invoke(quarantine_command, "--station", station)
    assert "no quarantined slots in station bench" in listing.stdout


def test_a_board_whose_flash_changed_since_its_backup_is_backed_up_again(bench, change_sim_flash):
    station = bench()
    changed = change_sim_flash(load_station(station), "l7x-1")
    result = flash(station, "--slots", "l7x-1", "--json")
    assert result.exit_code == 0, result.output
    [board] = json.loads(result.stdout)["boards"]
    stale, new = BackupStore(station.parent.parent / "backups").list(sim_mac("l7x-1"))
    assert board["result"] == "ok" and board["backup_taken"] is True
    assert board["backup"] == new.id and new.read() == changed
    [step] = [s for s in board["steps"] if s["name"] == "backup"]
    assert step["detail"] == f"flash changed since backup {stale.id}: took {new.id}"


# -- SIGTERM ---------------------------------------------------------------------------------------
def test_sigterm_mid_run_stops_every_board_and_releases_every_relay(bench):
    station = bench(seeded=("l7x-3", "l7x-4"))  # l7x-1 and l7x-2 start with a 4 MB dump
    cmd = [sys.executable, "-m", "rig.cli.batch", "flash", "--station", str(station)]
    cmd += ["--board", "l7x", "--firmware", "custom-grbl", "--jobs", "2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    dumping = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            lines.append(line)
            if sum(f"{s}: dump" in x for x in lines for s in ("l7x-1", "l7x-2")) == 2:
                dumping.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert dumping.wait(40), "".join(lines)
        time.sleep(0.2)  # well inside the dumps, the power buttons held
        proc.send_signal(signal.SIGTERM)
        stdout = proc.stdout.read()  # until the run ends (the test's timeout guards a hang)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        reader.join(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 128 + signal.SIGTERM, "".join(lines)
    report = json.loads(stdout)
    assert report["interrupted"] == "SIGTERM" and report["ok"] is False
    assert report["counts"] == {"stopped": 2, "not started": 2}
    boards = {b["slot"]: b for b in report["boards"]}
    for slot in ("l7x-1", "l7x-2"):
        board = boards[slot]
        assert board["result"] == "stopped"
        assert board["error"] == "SIGTERM: stopped during the dump: nothing was written"
        assert board["not_done"] == ["backup", "boot plan", "write", "verify", "boot check"]
        # The power relay was held mid-dump, and released when the worker stopped.
        assert board["relays_before_release"] == {"io0": False, "power": True}
        assert board["relays_after_release"] == {"io0": False, "power": False}
        log = Path(board["log"]).read_text()
        assert "relay power release-all" in log
        assert log.rstrip().endswith(
            "result: stopped: stopped during the dump: nothing was written"
        )
        assert BackupStore(station.parent.parent / "backups").list(sim_mac(slot)) == []
    for slot in ("l7x-3", "l7x-4"):
        assert boards[slot]["result"] == "not started"
        assert boards[slot]["not_done"] == list(STEPS)
        assert not (Path(report["run_dir"]) / f"{slot}.log").exists()
    for slot in L7X:  # every slot is free again
        SlotLock(station.parent.parent / "locks", "bench", slot).acquire().release()
    assert "SIGTERM: stopping" in "".join(lines)


# -- input is checked before any relay moves -------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--board", "l7x", "--firmware", "nope"], "has no firmware 'nope'"),
        (["--board", "l7x", "--firmware", f"{CUSTOM}@0x1000"], "name a firmware of the l7x"),
        (
            ["--board", "nope", "--firmware", "custom-grbl"],
            "unknown board 'nope' (known boards: esp32-devkitc, l7x)",
        ),
        (["--board", "l7x", "--firmware", "custom-grbl", "--slots", "l7x-9"], "no slot 'l7x-9'"),
        (
            ["--board", "l7x", "--firmware", "custom-grbl", "--slots", "l7x-1,devkitc-1"],
            "slot devkitc-1 holds a board of type esp32-devkitc, not l7x",
        ),
        (["--board", "l7x", "--firmware", "custom-grbl", "--jobs", "0"], "--jobs must be"),
        (["--board", "l7x", "--firmware", "custom-grbl", "--retries", "-1"], "--retries must"),
        (["--board", "l7x"], "Missing option '--firmware'"),
    ],
)
def test_bad_input_exits_2_before_anything_is_touched(bench, args, message):
    station = bench(seeded=())
    result = invoke(flash_command, "--station", station, *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (station.parent.parent / "locks").exists()
    assert runs(station) == []


def test_unwritable_backups_directory_is_bad_input(bench, tmp_path):
    station = bench(seeded=())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    station.write_text(station.read_text().replace(str(tmp_path / "backups"), str(blocker / "b")))
    result = flash(station)
    assert result.exit_code == 2 and "is not writable" in result.stderr
    assert not (tmp_path / "locks").exists()


def test_a_corrupt_state_file_is_reported_not_ignored(bench):
    station = bench(seeded=())
    state = station.parent.parent / "state" / "bench" / "station.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    for result in (flash(station), invoke(quarantine_command, "--station", station)):
        assert result.exit_code == 2
        assert f"state file {state} is not valid JSON" in " ".join(result.stderr.split())


def test_quarantine_entries_survive_and_clear(tmp_path):
    state = StationState(tmp_path / "state" / "st", "st")
    assert state.quarantined() == {}
    entry = QuarantineEntry("s1", "no download mode", "2026-01-02T03:04:05+00:00", attempts=3)
    state.quarantine([entry, QuarantineEntry("s2", "lost port", "2026-01-02T03:04:06+00:00")])
    again = StationState(tmp_path / "state" / "st", "st")
    assert again.quarantined()["s1"] == entry and entry.since_text == "2026-01-02 03:04:05 UTC"
    assert list(again.clear(["s1", "nope"])) == ["s1"]
    assert list(again.quarantined()) == ["s2"]
    data = json.loads(state.path.read_text())
    assert data["station"] == "st" and data["version"] == 1
    first, second = state.new_run_dir(), state.new_run_dir()
    assert first != second and first.parent == second.parent == state.runs_dir


def test_what_counts_as_transient():
    assert not is_transient(FlashDefect("0x20000-0x20fff never verified", [(0x20000, 0x21000)]))
    assert is_transient(FlasherError("no sync"))
    assert is_transient(DownloadModeError("silent"))
    assert is_transient(PortNotFound("port gone"))
    assert not is_transient(WrongBoard("other MAC"))
    assert not is_transient(OperationError("did not boot"))
    assert not is_transient(OSError("a raw OSError: it arrives wrapped, see below"))


class _Board:
    """Just enough of a board for a session's esptool calls and a boot check."""

    slot_id = "l7x-1"
    type = load_station(builtin_configs_dir() / "stations" / "sim.yaml").boards["l7x"]

    def console(self, baud=None):
        raise serial.SerialException("could not open port /dev/ttyUSB0: No such file")


@pytest.mark.parametrize(
    "error", [FatalError("Timed out waiting for packet header"), OSError(5, "Input/output error")]
)
def test_esptool_and_link_errors_reach_the_retry_logic_as_transient(error):
    """esptool's FatalError and the port's OSError are transient: the session wraps them into
    its FlasherError at the boundary, so the batch asks rig.errors.is_transient only."""
    session = FlasherSession(_Board(), bauds=[115200])
    session.esp = object()  # connected, as far as this call is concerned

    def fail(_esp):
        raise error

    with pytest.raises(FlasherError) as err:
        session.call("read 0x0+0x1000", fail)
    assert is_transient(err.value) and err.value.__cause__ is error
    assert str(err.value).startswith("l7x-1: read 0x0+0x1000: ")


def test_a_console_lost_during_the_boot_check_is_transient():
    with pytest.raises(ConsoleLost) as err:
        boot_check(_Board(), "Grbl")
    assert is_transient(err.value) and isinstance(err.value.__cause__, OSError)
    assert "could not open port" in str(err.value)


def test_a_bad_sector_is_not_retried_and_not_quarantined(bench):
    """A FlashDefect (the same range never verifies although every write went through) is the
    flash, not the link: another attempt writes the same sector in vain. One attempt, failed
    with the sector named, and the slot is not quarantined (the board is bad, not the slot)."""
    bad = {"kind": "bad_sector", "address": 0x20000}
    station = bench(faults={"l7x-1": {"faults": [bad]}}, seeded=("l7x-1",))
    result = flash(station, "--slots", "l7x-1", "--retries", "2", "--backoff", "0", "--json")
    assert result.exit_code == 1, result.output
    [board] = json.loads(result.stdout)["boards"]
    assert board["result"] == "failed", board
    assert board["attempts"] == 1 and board["attempt_errors"] == []
    assert "0x20000-0x20fff" in board["error"] and "bad or worn sector" in board["error"]
    assert board["not_done"] == ["write", "verify", "boot check"]
    listed = json.loads(invoke(quarantine_command, "--station", station, "--json").stdout)[
        "quarantined"
    ]
    assert listed == []


def job_for(station: Path, slot: str, run_dir: Path) -> Job:
    """What ``rig flash`` gives the worker of ``slot``, for running it in this process."""
    plan = plan_batch(load_station(station), "l7x", "custom-grbl", slot, retries=0)
    run_dir.mkdir()
    return Job(
        station=plan.station,
        slot_id=slot,
        firmware=plan.firmware.name,
        images=plan.images,
        console=plan.firmware.console,
        retries=plan.retries,
        backoff=plan.backoff,
        run_dir=str(run_dir),
    )


def test_a_write_that_needs_a_reconnect_after_a_stop_request_finishes(bench, tmp_path):
    """Stop requested as the write starts, then the USB cable is bumped mid-write: the write's
    reconnect (a download sequence) must still run, so the board ends written and verified and
    the board stops at the next safe point (before the boot check), not half-written."""
    bump = {"kind": "unplug", "on": "flash", "after": 0x2000, "gone": 0.3}
    station = bench(faults={"l7x-1": {"faults": [bump]}}, seeded=("l7x-1",))
    stop = threading.Event()

    def emit(kind: str, **data) -> None:
        if kind == "phase" and data["phase"] == "write":
            stop.set()

    result = flash_board(job_for(station, "l7x-1", tmp_path / "run"), emit, stop)
    assert result.recoveries and result.download_sequences >= 2, result  # it did reconnect
    assert result.result == "stopped", result
    assert result.error == "stopped before the boot check: the new firmware is written and verified"
    assert result.not_done == ["boot check"]
    assert result.relays_after_release == {"io0": False, "power": False}
    flash = (tmp_path / "state" / "bench" / "sim-flash" / "l7x-1.bin").read_bytes()
    assert flash[0x1000 : 0x1000 + CUSTOM.stat().st_size] == CUSTOM.read_bytes()


def test_a_link_marginal_above_921600_steps_down_the_ladder_and_the_board_is_flashed(bench):
    """The L7X's ladder starts at 2 Mbaud; this slot's cable garbles that rate (the check read
    after the switch gets through, transfers do not) and is clean at 921600. The session steps
    down after repeated failures at 2 Mbaud instead of burning every retry there: the dump and
    the write complete, in one attempt."""
    marginal = {"kind": "noise", "rate": 0.0002, "on": "both", "above_baud": 921600}
    # fault_seed: which bytes get hit is seeded; with this one, the connect's few bytes at
    # 2 Mbaud get through (with the slot id as the seed they do not, and the connect itself
    # falls back to 921600, which is not what this test is about).
    sim = {"faults": [marginal], "fault_seed": "a"}
    station = bench(faults={"l7x-1": sim}, seeded=())  # dumped first
    result = flash(station, "--slots", "l7x-1", "--backoff", "0", "--json")
    [board] = json.loads(result.stdout)["boards"]
    assert board["result"] == "ok", board
    assert board["attempts"] == 1 and board["baud"] == 2000000  # connected at the top
    steps = [r for r in board["recoveries"] if r.startswith("baud:")]
    assert steps == ["baud: 2 transfers failed at 2000000 baud; reconnecting at 921600"], board
    [backup] = BackupStore(station.parent.parent / "backups").list(sim_mac("l7x-1"))
    assert backup.sha256 == hashlib.sha256(vendor_l7x_flash()).hexdigest()
    assert "Grbl 1.3a" in board["console"]


# -- a worker killed outright ----------------------------------------------------------------------
FAKES = Path(__file__).parent.parent / "fakes"
IO0, POWER = 17, 27  # GPIO lines of the bench below (active-low relay inputs)


class RelayBoard:
    """A bench's relay board: GPIO lines switch a simulated board's contacts.

    The lines are the fake gpiod kernel shared through a file with the rig's processes: as on a
    Raspberry Pi, a line keeps the level it was driven to after the process that drove it dies
    (stock kernel). A thread here does what the relays do - follow the lines - and keeps a
    snapshot of them for the test (``energised``)."""

    def __init__(self, kernel, board, channels: dict[int, str]) -> None:
        self.kernel, self.board, self.channels = kernel, board, channels
        self.energised: dict[str, bool] = {}
        self.owners: dict[str, int | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def _follow(self) -> None:
        while not self._stop.wait(0.002):
            self.kernel.refresh()
            energised, owners = {}, {}
            for offset, contact in self.channels.items():
                line = self.kernel.line("pinctrl-bcm2835", offset)
                energised[contact] = line.level is False  # active-low input pulled low
                owners[contact] = line.owner
                if self.board.contact(contact) != energised[contact]:
                    self.board.set_contact(contact, energised[contact])
            self.energised, self.owners = energised, owners

    def __enter__(self) -> RelayBoard:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def gpio_bench(tmp_path, golden):
    """A bench with real (gpiod) pins and a serial port: one L7X slot whose relays are lines of
    a fake gpiod kernel shared with the rig's processes, wired to a simulated L7X living in this
    process (its port a stable alias of its pty) that stalls for a minute 16 KB into a write."""
    from fakes import gpiod as fake_gpiod

    from rig.sim import faults as F
    from rig.sim.board import SimBoard

    dev = tmp_path / "dev"
    dev.mkdir()
    kernel = fake_gpiod.boot("pi3", dev_dir=dev, state=tmp_path / "gpio-state.json")
    board = SimBoard(
        "l7x",
        seed="l7x-1",
        flash_image=vendor_l7x_flash(),
        name="l7x-1",
        port_alias=tmp_path / "serial" / "by-path-l7x-1",
        inject=[F.Stall(seconds=60, on="flash", after=0x4000)],
    )
    backups = tmp_path / "backups"
    shutil.copytree(golden / mac_dir(sim_mac("l7x-1")), backups / mac_dir(sim_mac("l7x-1")))
    station = tmp_path / "stations" / "gpio.yaml"
    station.parent.mkdir()
    station.write_text(
        f"name: bench\nbackups: {backups}\nlocks: {tmp_path / 'locks'}\n"
        f"firmware: {builtin_configs_dir() / 'firmware'}\n"
        f"pins: {{backend: gpiod, chip: {dev / 'gpiochip0'}}}\nslots:\n"
        f"  - {{id: l7x-1, board: l7x, port: {board.port_alias}, "
        f"relays: {{io0: {{pin: {IO0}}}, power: {{pin: {POWER}}}}}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIG_", "ESPTOOL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(FAKES), *filter(None, [env.get("PYTHONPATH")])])
    env[fake_gpiod.STATE_ENV] = str(kernel.state_path)
    with RelayBoard(kernel, board, {IO0: "io0", POWER: "power"}) as relays:
        yield station, board, relays, env
    board.close()


def flash_until_mid_write(station: Path, board, relays: RelayBoard, env) -> subprocess.Popen:
    """``rig flash`` on the gpio bench, returned once its worker is stuck mid-write with the
    power button held; ``proc.worker`` is the worker's PID (the owner of the power line)."""
    cmd = [sys.executable, "-m", "rig.cli.batch", "flash", "--station", str(station)]
    cmd += ["--board", "l7x", "--firmware", "custom-grbl", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not any(f.kind == "stall" for f in board.injector.fired):  # mid-write
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"rig flash never reached the write: {proc.communicate()}")
        time.sleep(0.02)
    time.sleep(0.1)  # the relay board's snapshot is a few ms behind
    assert relays.energised == {"io0": False, "power": True}, "the write holds the power button"
    proc.worker = relays.owners["power"]
    assert proc.worker not in (None, proc.pid)
    return proc


def test_a_worker_killed_mid_write_has_its_relays_released_by_the_parent(gpio_bench):
    """SIGKILL (the OOM killer, a kill -9) gives a worker no chance to release its relays, and
    the kernel keeps its lines driven: the power button stays held. The parent re-opens the slot
    (the lock died with the worker) and releases them itself, and says so."""
    station, board, relays, env = gpio_bench
    proc = flash_until_mid_write(station, board, relays, env)
    try:
        os.kill(proc.worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    time.sleep(0.1)
    assert relays.energised == {"io0": False, "power": False}, "a relay left energised"
    assert relays.owners == {"io0": None, "power": None}
    assert not board.contact("power") and not board.contact("io0")
    [result] = json.loads(out)["boards"]
    assert result["result"] == "failed" and result["pid"] == proc.worker
    assert result["error"] == (
        "worker process died (exit code -9) without a result; "
        "the rig released its relays (io0=open, power=open)"
    )
    assert result["relays_released_by"] == "parent"
    assert result["relays_after_release"] == {"io0": False, "power": False}
    assert "relays released by the parent: io0=open, power=open" in Path(result["log"]).read_text()


def test_a_killed_workers_slot_held_by_another_process_is_a_clear_error(gpio_bench, tmp_path):
    """The worker is killed but something else holds its slot (a process it started, which
    inherited the lock): the parent cannot re-open the slot and must say so - who holds it, that
    the relays may still be energised, and how to release them - not claim they are released."""
    station, board, relays, env = gpio_bench
    proc = flash_until_mid_write(station, board, relays, env)
    holder = SlotLock(tmp_path / "locks", "bench", "l7x-1")
    try:
        proc.send_signal(signal.SIGSTOP)  # the parent sees the death only once we hold the slot
        os.kill(proc.worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not holder.held:
            with contextlib.suppress(SlotBusy):
                holder.acquire()  # free as soon as the worker has exited
            assert time.monotonic() < deadline, "the killed worker's lock was never freed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        holder.release()
    assert proc.returncode == 1, err
    [result] = json.loads(out)["boards"]
    assert result["error"].startswith(
        "worker process died (exit code -9) without a result; the rig could not release its "
        f"relays: slot l7x-1 is in use by PID {os.getpid()}"
    )
    assert result["error"].endswith(
        "a process the worker started may still hold the slot; the relays may still be "
        "energised: once it has ended, run rig relay --release-all"
    )
    assert result["result"] == "failed" and result["relays_released_by"] == ""
    assert relays.energised["power"], "the report is true: the power relay is still held"
