"""The pytest plugin (rig/pytest_plugin/), driven through pytester.

Cheap checks (options, usage errors, parametrisation, skips, markers) run pytest in-process and
mostly only collect. Runs that open slots run pytest in a subprocess against a simulated station
whose locks and backups live under tmp_path. The real HIL suite (tests/hil) runs once, on one
slot: it is the slowest test here (~20 s: a 4 MB dump, writes, boot checks, restore).
"""

from __future__ import annotations

import hashlib
import shutil
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from rig.config import builtin_configs_dir
from rig.operations import hil
from rig.pytest_plugin.xdist import slot_in_nodeid

pytest_plugins = ["pytester"]

HIL_SUITE = Path(__file__).parent.parent / "hil"
L7X = ["l7x-1", "l7x-2", "l7x-3", "l7x-4"]


@pytest.fixture
def sim(pytester, tmp_path, monkeypatch):
    """The shipped simulated station with its locks and backups under tmp_path, named by
    RIG_STATION; HOME and XDG_RUNTIME_DIR point into tmp_path too."""
    data = yaml.safe_load((builtin_configs_dir() / "stations" / "sim.yaml").read_text())
    data["locks"] = str(tmp_path / "locks")
    data["backups"] = str(tmp_path / "station-backups")
    data["firmware"] = [str(builtin_configs_dir() / "firmware"), str(tmp_path / "sim-firmware")]
    station = tmp_path / "stations" / "sim.yaml"
    station.parent.mkdir()
    station.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("RIG_STATION", str(station))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    # The dev extra installs pytest-embedded, whose plugin would load in every inline run (a
    # multiprocessing manager each); both plugins together: test_pytest_embedded.py. labgrid's
    # plugin (the lab extra, also in dev) starts a process-wide step logger it asserts is not
    # running yet, so it cannot configure twice in one process: the lab's own pytest runs are
    # tests/labgrid/test_farm.py.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:pytest_embedded -p no:labgrid")
    return station


BOARD_TESTS = """
import pytest

def test_slot(board):
    assert board.id

def test_station(station):
    assert station.name == "sim"

@pytest.mark.board("esp32-devkitc")
def test_devkit_only(board):
    assert board.board_type.name == "esp32-devkitc"

@pytest.mark.destructive
def test_destroys(board):
    pass

def test_plain():
    pass
"""


def collected(result) -> list[str]:
    return [line for line in result.outlines if "::" in line]


# -- options and usage errors ----------------------------------------------------------------------
def test_options_are_in_a_rig_group(pytester, sim):
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    assert "ESP32 flash rig" in text
    for option in (
        "--board=NAME[,NAME]",
        "--station=FILE",
        "--slot=ID",
        "--backups=DIR",
        "--firmware=NAME=FILE",
        "--no-destructive",
        "--artifacts=DIR",
    ):
        assert option in text
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.board(name, ...)" in markers
    assert "@pytest.mark.destructive" in markers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--board", "nosuch"], "unknown board 'nosuch' (known boards: esp32-devkitc, l7x)"),
        (["--board", "l7x,nosuch"], "unknown board 'nosuch' (known boards: esp32-devkitc, l7x)"),
        (["--slot", "nosuch"], "no slot 'nosuch' in station sim (slots: l7x-1 (l7x),"),
        (["--board", "l7x", "--slot", "devkitc-1"], "slot devkitc-1 holds a board of type"),
        (["--board", "l7x", "--firmware", "custom-grbl"], "--firmware takes NAME=FILE"),
        (["--board", "l7x", "--firmware", "nope=FILE"], "no firmware 'nope' in the catalog"),
        (["--board", "l7x", "--firmware", "custom-grbl=missing.bin"], "no such file"),
        (["--firmware", "custom-grbl=FILE"], "--firmware needs --board or --slot"),
        (["--board", "l7x", "--station", "missing.yaml"], "station config: missing.yaml"),
    ],
)
def test_bad_selection_is_a_usage_error(pytester, sim, args, message):
    pytester.makepyfile(BOARD_TESTS)
    pytester.path.joinpath("FILE").write_bytes(b"x")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "collected" not in result.stdout.str()  # nothing ran


def test_select_works_without_pytest(sim):
    sel = hil.select(boards=["l7x"], slots=["l7x-2"], backups=sim.parent / "b")
    assert sel.slot_ids == ("l7x-2",) and sel.boards == ("l7x",)
    assert sel.backups == sim.parent / "b"
    assert hil.select(boards=["l7x"]).slot_ids == tuple(L7X)
    assert hil.select().slot_ids == (*L7X, "devkitc-1", "devkitc-2")
    with pytest.raises(hil.SelectionError, match="known boards: esp32-devkitc, l7x"):
        hil.select(boards=["nosuch"])


def test_slot_ids_are_found_in_node_ids():
    slots = ["l7x-1", "l7x-10", "devkitc-1"]
    assert slot_in_nodeid("t.py::test_a[l7x-1]", slots) == "l7x-1"
    assert slot_in_nodeid("t.py::T::test_w[l7x-10-custom-grbl]", slots) == "l7x-10"
    assert slot_in_nodeid("t.py::test_b[3-devkitc-1]", slots) == "devkitc-1"
    assert slot_in_nodeid("t.py::test_c[l7x-100]", slots) is None
    assert slot_in_nodeid("t.py::test_d", slots) is None


# -- collection: skips, parametrisation, markers ---------------------------------------------------
def test_without_board_board_tests_are_skipped_with_a_reason(pytester, sim):
    pytester.makepyfile(BOARD_TESTS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED * board test: no board selected (run pytest --board*"])
    assert "rig: no board selected" in result.stdout.str()  # the report header says so


def test_board_tests_are_parametrised_over_the_selected_slots(pytester, sim):
    pytester.makepyfile(BOARD_TESTS)
    ids = [i.split("::")[1] for i in collected(pytester.runpytest("--board", "l7x", "--co", "-q"))]
    # Grouped by slot (each slot is opened once); the test that only needs the station is not
    # parametrised, the devkit-only one is skipped (no devkit selected).
    assert ids == [
        *(f"{name}[{slot}]" for slot in L7X for name in ("test_slot", "test_destroys")),
        "test_station",
        "test_devkit_only",
        "test_plain",
    ]
    one = collected(pytester.runpytest("--board", "l7x", "--slot", "l7x-3", "--co", "-q"))
    assert [i.split("::")[1] for i in one] == [
        "test_slot[l7x-3]", "test_destroys[l7x-3]", "test_station", "test_devkit_only",
        "test_plain",
    ]  # fmt: skip
    both = pytester.runpytest("--board", "l7x,esp32-devkitc", "--co", "-q")
    ids = [i.split("::")[1] for i in collected(both)]
    # board("esp32-devkitc") runs on the devkit slots only; the L7X ones are deselected.
    assert [i for i in ids if i.startswith("test_devkit_only")] == [
        "test_devkit_only[devkitc-1]",
        "test_devkit_only[devkitc-2]",
    ]
    assert "test_slot[devkitc-2]" in ids and "test_slot[l7x-4]" in ids
    assert "4 deselected" in both.stdout.str()
    # --slot alone selects that slot (and so its board type).
    alone = collected(pytester.runpytest("--slot", "devkitc-2", "--co", "-q"))
    assert [i.split("::")[1] for i in alone][:3] == [
        "test_slot[devkitc-2]", "test_devkit_only[devkitc-2]", "test_destroys[devkitc-2]"
    ]  # fmt: skip


def test_markers_skip_rules_and_strict_markers(pytester, sim):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.destructive
        def test_destroys(board):
            raise AssertionError("must not run")

        @pytest.mark.board("esp32-devkitc")
        def test_devkit_only(board):
            raise AssertionError("must not run")

        @pytest.mark.board("l7x")
        @pytest.mark.destructive
        def test_l7x_destroys(board):
            raise AssertionError("must not run")
        """
    )
    args = ("--strict-markers", "-rs", "--board", "l7x", "--slot", "l7x-1")
    result = pytester.runpytest(*args, "--no-destructive")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * destructive test (--no-destructive)",
            "SKIPPED * needs a board of type esp32-devkitc (selected: l7x)",
        ]
    )
    assert "rig: --no-destructive" in result.stdout.str()


# -- runs on simulated slots (subprocess) ----------------------------------------------------------
FAILING = """
import os, signal

def test_fails_in_download_mode(board, esp, artifacts):
    assert esp.identity.mac
    assert board.relays["power"].is_closed  # the L7X needs its power button held
    artifacts.console("something the board said")
    assert False, "boom"

def test_relays_were_released_after_the_failure(board):
    assert not any(relay.is_closed for relay in board.relays)
    actions = [(e.role, e.action) for e in board.relays["power"].log.events]
    assert actions[-1] == ("power", "release-all")

def test_sigterm_stops_the_session(board, esp):
    os.kill(os.getpid(), signal.SIGTERM)

def test_never_runs(board):
    raise AssertionError("the session should have stopped")
"""

SESSION_END = """
def pytest_unconfigure(config):
    from pathlib import Path
    from rig.hardware.safety import live_banks
    Path("live-banks.txt").write_text(str(len(live_banks())))
"""


@pytest.mark.timeout(60)
def test_failing_tests_release_relays_and_show_their_artifacts(pytester, sim, tmp_path):
    pytester.makepyfile(FAILING)
    pytester.makeconftest(SESSION_END)
    art = tmp_path / "art"
    result = pytester.runpytest_subprocess(
        "--board", "l7x", "--slot", "l7x-2", "--artifacts", str(art), "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2 and outcomes["passed"] == 1, result.stdout.str()
    out = result.stdout.str()
    assert "test_never_runs" not in out
    assert "rig: terminated by SIGTERM" in out
    # The failure report shows the artifacts: directory, console, esptool log, relay actions.
    result.stdout.fnmatch_lines(
        [
            "*- rig artifacts (call) -*",
            f"artifacts: {art}/*test_fails_in_download_mode_l7x-2",
            "console.log (last 1 of 1 lines):",
            "  | something the board said",
            "esptool.log (last * lines):",
            "  | Stub flasher running.",
        ]
    )
    directory = next(art.glob("*test_fails_in_download_mode_l7x-2"))
    assert "release-all" in (directory / "relays.log").read_text().splitlines()[-1]
    assert "Detecting chip type" in (directory / "esptool.log").read_text()
    sigterm = next(art.glob("*test_sigterm_stops_the_session_l7x-2"))
    assert (sigterm / "relays.log").read_text().splitlines()[-1].endswith("power release-all")
    assert (pytester.path / "live-banks.txt").read_text() == "0"


# Unmarked tests that write flash, by the two ways a test gets at it: the esp fixture (a connected
# FlasherSession) and its slot alone (board) with the hil helpers. REGION: one 4 KB sector near the
# end of the 4 MB flash (small, so the write and the restore stay fast).
REGION = 0x3F0000
WRITERS = {
    "esp": """
def test_{name}(esp):
    esp.write({region}, b"\\x5a" * 4096)
    assert esp.verify({region}, b"\\x5a" * 4096)
""",
    "board": """
def test_{name}(board):
    from rig.operations import hil
    assert hil.ensure_flash(board, {region}, b"\\x5a" * 4096) is not None  # it did write
""",
}
L7X_1_MAC = "30:ae:a4:7b:0e:79"  # the simulated l7x-1 (seed l7x-1)


def writer(how: str, name: str) -> str:
    return WRITERS[how].format(name=name, region=REGION)


def kept_flash(tmp_path: Path, slot: str) -> bytes:
    """A simulated slot's flash as the station kept it when the slot was closed (the station's
    state dir, next to the backups the sim fixture puts under tmp_path)."""
    return (tmp_path / "state" / "sim" / "sim-flash" / f"{slot}.bin").read_bytes()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", WRITERS)
def test_an_unmarked_test_that_writes_gets_a_backup_first_and_a_restore(
    pytester, sim, tmp_path, how
):
    from rig.images.flash_contents import vendor_l7x_flash
    from rig.operations.backups import BackupStore

    pytester.makepyfile(writer(how, "writes_without_a_destructive_marker"))
    result = pytester.runpytest_subprocess(
        "--board", "l7x", "--slot", "l7x-1", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    original = vendor_l7x_flash()
    backup = BackupStore(tmp_path / "station-backups").latest(L7X_1_MAC)
    assert backup is not None, "no backup was taken before the test wrote the flash"
    assert backup.read() == original  # taken before the write, not after it
    assert kept_flash(tmp_path, "l7x-1") == original  # put back when the module was done


SWAP = """
from rig.esp32 import parse_mac
from rig.sim.parts.efuse import Efuses

def test_another_board_is_put_in_the_slot(board, station):
    # Another board: another chip (its factory MAC is in its eFuses, which the register bus
    # serves) with its own flash, on the same relays and port.
    sim = station.simulated_board(board.id)
    with sim.lock:
        sim.mac = sim.chip.mac = parse_mac("{mac}")
        sim.chip.efuses = sim.chip.registers.efuses = Efuses(sim.mac)
        sim.flash.load("{flash}")
"""
OTHER_MAC = "24:0a:c4:99:88:77"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", WRITERS)
def test_a_board_swapped_mid_session_is_neither_written_nor_restored(pytester, sim, tmp_path, how):
    other = tmp_path / "other-board.bin"
    other.write_bytes(bytes(range(256)) * (0x400000 // 256))
    # Module 1 writes the first board, then the board is swapped; module 2 (the slot opened
    # again) tries to write.
    pytester.makepyfile(
        test_1_before=writer("esp", "writes_the_first_board")
        + SWAP.format(mac=OTHER_MAC, flash=other),
        test_2_after=writer(how, "writes_after_the_swap"),
    )
    result = pytester.runpytest_subprocess(
        "--board", "l7x", "--slot", "l7x-1", "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 2, result.stdout.str()
    # Each module's restore refuses the other board: an error (not a skip) that says why.
    not_restored = (
        f"rig: the session backup of {L7X_1_MAC} was not put back: l7x-1: the board on * has "
        f"MAC {OTHER_MAC}, expected {L7X_1_MAC} - refusing to touch it; the board was left "
        "alone (its flash not written). Backup of *"
    )
    teardown = "*ERROR at teardown of {}[[]l7x-1[]]*"
    errors = [
        teardown.format("test_another_board_is_put_in_the_slot"),
        not_restored,
        teardown.format("test_writes_after_the_swap"),
        not_restored,
    ]
    # The write after the swap is refused too (the slot is pinned to the backed-up board): the
    # esp fixture's session at setup, the helper's session in the test.
    refused = f"*has MAC {OTHER_MAC}, expected {L7X_1_MAC} - refusing to touch it*"
    if how == "esp":
        assert outcomes["errors"] == 3 and "failed" not in outcomes
        errors[2:2] = ["*ERROR at setup of test_writes_after_the_swap[[]l7x-1[]]*", refused]
    else:
        assert outcomes["errors"] == 2 and outcomes["failed"] == 1
        result.stdout.fnmatch_lines(["*_ test_writes_after_the_swap[[]l7x-1[]] _*", refused])
    result.stdout.fnmatch_lines(errors)
    assert kept_flash(tmp_path, "l7x-1") == other.read_bytes()  # the other board's, untouched


XDIST = """
import os, pytest

@pytest.mark.parametrize("n", range(3))
def test_uses_a_slot(board, worker_id, n):
    with open(os.environ["RIG_TEST_OUT"], "a") as out:
        out.write(f"{board.id} {worker_id}\\n")

@pytest.mark.parametrize("n", range(4))
def test_plain(n):
    pass
"""


@pytest.mark.timeout(60)
def test_xdist_gives_each_slot_to_one_worker(pytester, sim, tmp_path, monkeypatch):
    out = tmp_path / "slots.txt"
    monkeypatch.setenv("RIG_TEST_OUT", str(out))
    pytester.makepyfile(XDIST)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--board", "l7x", "--slot", "l7x-1", "--slot", "l7x-3", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=10)
    workers = defaultdict(set)
    for line in out.read_text().splitlines():
        slot, worker = line.split()
        workers[slot].add(worker)
    assert sorted(workers) == ["l7x-1", "l7x-3"]
    assert all(len(w) == 1 for w in workers.values()), workers
    assert workers["l7x-1"] != workers["l7x-3"]  # two slots, two workers: both used


# -- the scripted HIL suite, on one simulated slot -------------------------------------------------
@pytest.mark.timeout(180)
def test_hil_suite_passes_on_a_simulated_l7x(pytester, sim, tmp_path):
    for name in ("conftest.py", "test_hil_cycle.py"):
        shutil.copy(HIL_SUITE / name, pytester.path / name)
    conftest = pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + SESSION_END)
    firmware = tmp_path / "my-grbl.bin"
    shutil.copy(builtin_configs_dir() / "firmware" / "custom-grbl.bin", firmware)
    backups, art, junit = tmp_path / "hil-backups", tmp_path / "art", tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "--board", "l7x", "--slot", "l7x-1", "--backups", str(backups),
        "--firmware", f"custom-grbl={firmware}", "--artifacts", str(art),
        f"--junitxml={junit}", "-p", "no:cacheprovider", "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=9)
    out = result.stdout.str()
    assert f"rig: l7x firmware custom-grbl from {firmware}" in out
    order = [
        "test_identify[l7x-1]",
        "test_dump_matches_chip_md5[l7x-1]",
        "test_erase_leaves_flash_blank[l7x-1]",
        "test_write_and_verify[l7x-1-vendor-l7x]",
        "test_boot_check[l7x-1-vendor-l7x]",
        "test_write_and_verify[l7x-1-custom-grbl]",
        "test_boot_check[l7x-1-custom-grbl]",
        "test_restore_original[l7x-1]",
        "test_boot_check_original[l7x-1]",
    ]
    passed = [line.split("::")[-1].split()[0] for line in result.outlines if " PASSED" in line]
    assert passed == order

    cases = {}
    for case in ET.parse(junit).iter("testcase"):
        cases[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert list(cases) == order
    for props in cases.values():
        assert props["slot"] == "l7x-1" and props["board_type"] == "l7x"
        assert props["mac"] == "30:ae:a4:7b:0e:79"
        assert props["chip"] == "ESP32-D0WD-V3" and props["revision"] == "v3.0"
        assert props["flash_id"] == "1640ef"
    dump = cases["test_dump_matches_chip_md5[l7x-1]"]
    assert Path(dump["dump"]).parent.parent == backups  # --backups, not the station's
    assert int(dump["bytes_per_s"]) > 0
    assert not (tmp_path / "station-backups").exists()
    grbl = cases["test_write_and_verify[l7x-1-custom-grbl]"]
    assert grbl["firmware"] == "custom-grbl" and int(grbl["bytes_per_s"]) > 0
    assert grbl["firmware_sha256"] == hashlib.sha256(firmware.read_bytes()).hexdigest()
    assert cases["test_boot_check_original[l7x-1]"]["firmware"] == "vendor-l7x"
    assert cases["test_restore_original[l7x-1]"]["firmware_sha256"] == dump["firmware_sha256"]

    boot = next(art.glob("*test_boot_check_l7x-1-custom-grbl"))
    assert "Grbl 1.3a" in (boot / "console.log").read_text()
    assert (boot / "notes.txt").read_text().startswith(f"dump: {dump['dump']}")
    assert (pytester.path / "live-banks.txt").read_text() == "0"  # every relay released
