"""What the rig refuses to do to a board, and that the flash is untouched afterwards.

* A flash whose size is unknown (an RDID capacity byte esptool's tables do not know) or differs
  from the board type's ``flash.size`` (a chip that under-reports would get a partial backup):
  no dump, no erase, no write, no restore, no cycle, no batch flash, no plugin dump.
* A chip with flash encryption or secure boot enabled (eFuses): no erase without ``--force``,
  as esptool's own erase-flash / erase-region refuse.

The simulated slot ``l7x-2`` is given another RDID answer (``simulated: {flash_id: ...}``) or
security eFuses (``simulated: {efuses: {...}}``); its flash is read back from the station's state
dir, where a simulated board's flash is kept between rig commands.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rig.cli import main
from rig.cli.batch import flash_command
from rig.esp32 import format_mac
from rig.hardware.safety import uninstall_safety_net
from rig.images import flash_contents
from rig.operations.backups import BackupStore
from rig.sim.parts.efuse import Security, mac_from_seed

pytestmark = pytest.mark.timeout(180)

SLOT = "l7x-2"
MAC = format_mac(mac_from_seed(f"l7x:{SLOT}"))  # the simulated slot's factory MAC
VENDOR = flash_contents.vendor_l7x_flash()
UNKNOWN_ID = 0x1140EF  # capacity byte 0x11 (a 128 KB W25X10 answers so): in no esptool table
REPORTS_2MB = 0x1540EF  # a 4 MB array behind a chip that says W25Q16 (2 MB)
ADESTO_4MB = 0x01871F  # AT25SF321: Adesto ids carry the size in the device byte (0x87 & 0x1F = 7)
REPORTS_32MB = 0x3940EF  # capacity byte 0x39: 32 MB in esptool's table (not in the rig's old one)


@pytest.fixture
def bench(sim_station_file, tmp_path):
    """``bench("flash_id: 0x1140EF")`` -> ``run(*args)``: rig commands on a station whose slot
    l7x-2 has those extra ``simulated:`` settings; ``run.flash()`` is the board's flash now."""
    runner = CliRunner()
    text = sim_station_file.read_text()

    def make(extra: str = ""):
        plain = f"simulated: {{variant: l7x, seed: {SLOT}}}"
        assert plain in text, "the shipped sim station changed: update this fixture"
        sim_station_file.write_text(
            text.replace(plain, f"simulated: {{variant: l7x, seed: {SLOT}, {extra}}}")
        )

        def run(*args: str, command=main):
            result = runner.invoke(command, [*args, "--station", str(sim_station_file)])
            if result.exception and not isinstance(result.exception, SystemExit):
                raise result.exception
            return result

        run.flash = lambda: (tmp_path / "state" / "sim" / "sim-flash" / f"{SLOT}.bin").read_bytes()
        return run

    yield make
    uninstall_safety_net()


def seed_backup(tmp_path) -> None:
    """A verified backup of the slot's vendor flash (so a destructive step has one)."""
    BackupStore(tmp_path / "backups").save(
        MAC, VENDOR, hashlib.md5(VENDOR).hexdigest(), {}, flash_size=len(VENDOR)
    )


def failed(result) -> str:
    """The error of a failed ``--json`` command (exit 1)."""
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    return report["error"]


# -- flash size ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [("dump",), ("erase",), ("cycle",)],
    ids=["dump", "erase", "cycle"],
)
def test_unknown_flash_size_refuses_and_the_flash_is_untouched(bench, tmp_path, args):
    run = bench(f"flash_id: {UNKNOWN_ID:#x}")
    error = failed(run(*args, "--slot", SLOT, "--json"))
    assert "flash size is unknown" in error and "capacity byte 0x11" in error, error
    assert run.flash() == VENDOR
    assert BackupStore(tmp_path / "backups").list() == []  # no 0-byte "backup"


def test_identify_shows_what_it_found_and_fails_on_an_unknown_size(bench):
    run = bench(f"flash_id: {UNKNOWN_ID:#x}")
    result = run("identify", "--slot", SLOT, "--json")
    error = failed(result)
    ident = json.loads(result.stdout)["steps"][0]["data"]
    assert ident["mac"] == MAC and ident["flash_id"] == UNKNOWN_ID
    assert ident["flash_size"] is None
    assert "flash size is unknown" in error
    plain = run("identify", "--slot", SLOT)
    assert plain.exit_code == 1 and "unknown size" in plain.output, plain.output


def test_a_chip_that_reports_2mb_on_a_4mb_board_type_is_refused(bench, tmp_path):
    run = bench(f"flash_id: {REPORTS_2MB:#x}")
    seed_backup(tmp_path)  # the erase, write and restore would otherwise go ahead
    for args in (("erase",), ("write", "custom-grbl"), ("restore",), ("dump",)):
        error = failed(run(*args, "--slot", SLOT, "--json"))
        assert "reports 2 MB" in error and "l7x board type has 4 MB" in error, (args, error)
    assert run.flash() == VENDOR
    assert len(BackupStore(tmp_path / "backups").list()) == 1  # only the seeded one


def test_batch_flash_refuses_a_mismatched_size_without_retrying(bench, tmp_path):
    run = bench(f"flash_id: {REPORTS_2MB:#x}")
    seed_backup(tmp_path)
    result = run(
        "--board", "l7x", "--firmware", "custom-grbl", "--slots", SLOT, "--json",
        command=flash_command,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    [board] = json.loads(result.stdout)["boards"]
    assert board["result"] == "failed" and board["attempts"] == 1, board
    assert "reports 2 MB" in board["error"]
    assert run.flash() == VENDOR


def test_esptools_size_table_is_used(bench):
    """An Adesto id (size in the device byte) is a 4 MB flash; capacity 0x39 is 32 MB."""
    run = bench(f"flash_id: {ADESTO_4MB:#x}")
    report = json.loads(run("identify", "--slot", SLOT, "--json").stdout)
    assert report["ok"], report
    assert report["steps"][0]["data"]["flash_size"] == 4 << 20
    run = bench(f"flash_id: {REPORTS_32MB:#x}")
    assert "reports 32 MB" in failed(run("identify", "--slot", SLOT, "--json"))


def test_plugin_dump_refuses_an_unknown_size(sim_station_config):
    from rig.board.station import LiveStation
    from rig.operations.hil import flasher, take_backup

    cfg = sim_station_config(**{SLOT: {"flash_id": UNKNOWN_ID}})
    store = BackupStore(cfg.backups)
    with LiveStation(cfg) as station:
        slot = station.open_slot(SLOT)
        with flasher(slot) as session, pytest.raises(Exception, match="flash size is unknown"):
            take_backup(session, store, {"slot": SLOT}, reuse=True)
        assert station.simulated_board(SLOT).flash.view() == VENDOR
    assert store.list() == []


# -- eFuse security -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("efuses", "args", "named"),
    [
        ("flash_crypt_cnt: 1", ("erase",), "flash encryption"),
        ("flash_crypt_cnt: 0x7", ("erase", "--region", "0x10000", "0x1000"), "flash encryption"),
        ("abs_done_0: true", ("erase",), "secure boot v1"),
        ("abs_done_1: true", ("erase", "--region", "0x10000", "0x1000"), "secure boot v2"),
        ("flash_crypt_cnt: 1", ("cycle",), "flash encryption"),
    ],
    ids=["chip-encrypted", "region-encrypted", "chip-sbv1", "region-sbv2", "cycle-encrypted"],
)
def test_erase_refused_on_a_secured_chip_without_force(bench, tmp_path, efuses, args, named):
    run = bench(f"efuses: {{{efuses}}}")
    seed_backup(tmp_path)  # a backup exists: only the eFuses stand in the way
    error = failed(run(*args, "--slot", SLOT, "--json"))
    assert f"{named} is enabled" in error and "--force" in error, error
    assert run.flash() == VENDOR


def test_force_erases_a_secured_chip_with_a_backup(bench, tmp_path):
    run = bench("efuses: {flash_crypt_cnt: 1, abs_done_1: true}")
    seed_backup(tmp_path)
    result = run("erase", "--slot", SLOT, "--force", "--json")
    assert result.exit_code == 0, result.output
    assert run.flash() == b"\xff" * len(VENDOR)


def test_an_even_flash_crypt_cnt_is_encryption_disabled(bench, tmp_path):
    run = bench("efuses: {flash_crypt_cnt: 3}")  # enabled, then disabled again: two bits
    seed_backup(tmp_path)
    result = run("erase", "--slot", SLOT, "--region", "0x10000", "0x1000", "--json")
    assert result.exit_code == 0, result.output
    assert run.flash()[0x10000:0x11000] == b"\xff" * 0x1000


@pytest.mark.esptool
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stock_esptool_reads_the_same_security_state(make_board):
    """espefuse's summary decodes the sim's eFuse words as the rig models them, and stock
    ``esptool erase-flash`` refuses the chip, as the rig does."""
    board = make_board(
        boot="download",
        on_close="reset",
        flash_image=VENDOR,
        security=Security(flash_crypt_cnt=0b1, abs_done_0=True),
    )
    base = ["--chip", "esp32", "--port", board.port, "--before", "no-reset"]
    summary = subprocess.run(
        [sys.executable, "-m", "espefuse", *base, "summary", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    fuses = json.loads(summary.stdout[summary.stdout.index("{") :])
    assert fuses["FLASH_CRYPT_CNT"]["value"] == 1
    assert fuses["ABS_DONE_0"]["value"] is True and fuses["ABS_DONE_1"]["value"] is False
    erase = subprocess.run(
        [sys.executable, "-m", "esptool", *base, "--after", "no-reset", "erase-flash"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert erase.returncode != 0
    assert "Active security features detected" in erase.stdout + erase.stderr
    assert board.flash.view() == VENDOR


@pytest.mark.parametrize("size", [0, 0x200000], ids=["empty", "half"])
def test_restore_refuses_a_stored_backup_that_is_not_the_whole_flash(bench, tmp_path, size):
    """The store refuses such a dump now, but a store written by an older rig may hold one (a
    0-byte "verified backup" of an unknown-size flash): a restore of it would write nothing, or
    half the flash, and report success."""
    run = bench()
    data = VENDOR[:size]
    directory = tmp_path / "backups" / MAC.replace(":", "-")
    directory.mkdir(parents=True)
    stem = f"20260101T000000.000000Z-{hashlib.sha256(data).hexdigest()[:12]}"
    (directory / f"{stem}.bin").write_bytes(data)
    meta = {
        "mac": MAC,
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "created": "2026-01-01T00:00:00+00:00",
        "verified": True,
    }
    (directory / f"{stem}.json").write_text(json.dumps(meta))
    error = failed(run("restore", "--slot", SLOT, "--json"))
    assert f"{size} bytes" in error and "not the whole" in error, error
    assert run.flash() == VENDOR
