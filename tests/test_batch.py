"""`rig flash` (batch) and `rig quarantine` on a simulated station with four L7X slots.

Time matters here (the whole suite runs on two cores): backups are pre-seeded wherever a test does
not need a fresh 4 MB dump - the store is keyed by MAC and a simulated board's MAC derives from
its slot seed, so one module-wide set of verified backups of the synthetic vendor flash serves
every test - and the fault test uses an L7X board type with two download sequences per attempt
instead of three, so a broken slot gives up sooner.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rig.backups import BackupStore, mac_dir
from rig.batch import STEPS, BatchReport, is_transient
from rig.board import DownloadModeError
from rig.cli_batch import flash_command, quarantine_command
from rig.config import builtin_configs_dir, load_station
from rig.flasher import FlasherError, WrongBoard
from rig.images.synthetic import vendor_l7x_flash
from rig.locks import SlotLock
from rig.operations import OperationError
from rig.quarantine import QuarantineEntry, StationState
from rig.sim.efuse import format_mac, mac_from_seed

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
        store.save(sim_mac(slot), flash, md5, {"slot": slot, "seeded_by": "tests"})
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
            text = text.replace("file: ../firmware/", f"file: {builtin_configs_dir()}/firmware/")
            (tmp_path / "boards").mkdir()
            (tmp_path / "boards" / "l7x.yaml").write_text(text)
        lines = [
            "name: bench",
            f"backups: {backups}",
            f"locks: {tmp_path / 'locks'}",
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


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
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
        assert rows[slot][5] == f"{board['seconds']:.1f} s" and rows[slot][6] == ""
    assert report["summary"] in " ".join(result.stdout.split())
    assert BatchReport.from_dict(report).summary() == report["summary"]
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
    listed = json.loads(invoke(quarantine_command, "--station", station, "--json").stdout)
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
    assert json.loads(invoke(quarantine_command, "--station", station, "--json").stdout) == []
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
    cmd = [sys.executable, "-m", "rig.cli_batch", "flash", "--station", str(station)]
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
        assert board["not_done"] == ["backup", "write", "verify", "boot check"]
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
        (["--board", "nope", "--firmware", "custom-grbl"], "has no 'nope' slots"),
        (["--board", "l7x", "--firmware", "custom-grbl", "--slots", "l7x-9"], "no slot 'l7x-9'"),
        (
            ["--board", "l7x", "--firmware", "custom-grbl", "--slots", "l7x-1,devkitc-1"],
            "slot devkitc-1 holds a esp32-devkitc, not a l7x",
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
    assert is_transient(FlasherError("no sync"))
    assert is_transient(DownloadModeError("silent"))
    assert is_transient(OSError("port gone"))
    assert not is_transient(WrongBoard("other MAC"))
    assert not is_transient(OperationError("did not boot"))
