"""`rig identify | write | verify | erase | restore | backups | dump` end to end (in-process)."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from rig.cli import main
from rig.config import load_station
from rig.esp32 import format_mac
from rig.hardware.safety import uninstall_safety_net
from rig.images import flash_contents
from rig.operations.backups import BackupStore
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.timeout(180)
MAC = format_mac(mac_from_seed("l7x:l7x-2"))  # the simulated slot l7x-2's factory MAC


@pytest.fixture
def rig(sim_station_file, tmp_path):
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        """The parsed --json report of a successful command, else click's result."""
        result = runner.invoke(main, [*args, "--station", str(sim_station_file)])
        if not ok:
            return result
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result

    yield run
    uninstall_safety_net()


def seed(tmp_path) -> None:
    flash = flash_contents.vendor_l7x_flash()
    md5 = hashlib.md5(flash).hexdigest()
    BackupStore(tmp_path / "backups").save(MAC, flash, md5, {}, flash_size=len(flash))


def test_identify_reports_the_chip(rig):
    report = rig("identify", "--slot", "l7x-2", "--json")
    ident = report["steps"][0]["data"]
    assert report["ok"] and report["mac"] == MAC
    assert ident["chip"] == "ESP32-D0WD-V3 (revision v3.0)" and ident["crystal_mhz"] == 40
    assert ident["flash_size"] == 0x400000 and ident["device"] == "4016"


def test_write_verify_erase_restore_and_list(rig, tmp_path):
    seed(tmp_path)
    write = rig("write", "--slot", "l7x-2", "--backup", "require", "custom-grbl", "--json")
    step = write["steps"][-1]
    assert write["ok"] and step["name"] == "write custom-grbl"
    assert step["data"]["bytes_written"] > 0 and step["data"]["bytes_skipped"] > 0  # bootloader
    assert rig("verify", "--slot", "l7x-2", "custom-grbl", "--json")["ok"]
    failed = rig("verify", "--slot", "l7x-2", "vendor-l7x", "--json", ok=False)
    assert failed.exit_code == 1 and "chip MD5 differs" in json.loads(failed.stdout)["error"]
    erase = rig("erase", "--slot", "l7x-2", "--region", "0x10000", "0x1000", "--json")
    # custom-grbl was written since the seeded backup: the erase backs the board up again.
    assert erase["ok"] and erase["steps"][1]["detail"].startswith("flash changed since backup")
    restore = rig("restore", "--slot", "l7x-2", "--json")
    names = [s["name"] for s in restore["steps"]]
    assert names == ["identify", "restore", "verify original"]  # the cycle's restore
    data = restore["steps"][1]["data"]
    assert restore["ok"] and data["bytes_skipped"] > 3 * 1024 * 1024
    listing = rig("backups", "--json")["backups"]
    assert [b["mac"] for b in listing] == [MAC, MAC]
    assert [b["intact"] for b in listing] == [True, True]


def test_dump_makes_a_new_verified_backup(rig, tmp_path):
    out = tmp_path / "copy.bin"
    report = rig("dump", "--slot", "l7x-1", "--out", str(out), "--json")
    data = report["steps"][-1]["data"]
    assert out.read_bytes() == flash_contents.vendor_l7x_flash()
    assert data["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_destructive_commands_need_a_backup_or_force(rig):
    refused = rig("erase", "--slot", "l7x-2", "--backup", "require", "--json", ok=False)
    assert refused.exit_code == 1 and "no verified backup" in json.loads(refused.stdout)["error"]
    bad = rig("erase", "--slot", "l7x-2", "--backup", "skip", ok=False)
    assert bad.exit_code == 2 and "--force" in bad.output


@pytest.mark.parametrize(
    "command", [("write", "custom-grbl"), ("erase", "--region", "0x10000", "0x1000")]
)
def test_auto_backs_up_again_when_the_flash_changed_since_the_backup(
    rig, tmp_path, sim_station_file, change_sim_flash, command
):
    """Settings saved since the latest backup are not in it: reusing it would destroy them."""
    seed(tmp_path)
    store = BackupStore(tmp_path / "backups")
    [stale] = store.list(MAC)
    changed = change_sim_flash(load_station(sim_station_file), "l7x-2")
    report = rig(command[0], "--slot", "l7x-2", "--backup", "auto", *command[1:], "--json")
    old, new = store.list(MAC)
    assert old.id == stale.id and new.read() == changed
    step = report["steps"][1]
    assert step["name"] == "backup" and step["data"]["taken"] is True
    assert step["detail"] == f"flash changed since backup {stale.id}: took {new.id}"


def test_require_refuses_when_the_latest_backup_no_longer_matches_the_chip(
    rig, tmp_path, sim_station_file, change_sim_flash
):
    seed(tmp_path)
    [stale] = BackupStore(tmp_path / "backups").list(MAC)
    station = load_station(sim_station_file)
    changed = change_sim_flash(station, "l7x-2")
    refused = rig("erase", "--slot", "l7x-2", "--backup", "require", "--json", ok=False)
    error = json.loads(refused.stdout)["error"]
    assert refused.exit_code == 1
    assert f"changed since its latest backup {stale.id}" in error
    assert "`rig dump --slot l7x-2`" in error
    assert change_sim_flash(station, "l7x-2", b"") == changed  # nothing was erased


def test_a_backup_that_matches_the_chip_is_reused_and_says_so(rig, tmp_path):
    seed(tmp_path)
    [backup] = BackupStore(tmp_path / "backups").list(MAC)
    report = rig("erase", "--slot", "l7x-2", "--region", "0x10000", "0x1000", "--json")
    step = report["steps"][1]
    assert step["data"]["taken"] is False and step["data"]["id"] == backup.id
    assert step["detail"] == (
        f"verified backup exists and matches the chip (chip MD5): {backup.id}"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["identify", "--board", "nope"],
            "unknown board 'nope' (known boards: esp32-devkitc, l7x)",
        ),
        (
            ["identify"],
            "station sim has several slots; pick one with --slot or --board (slots: l7x-1 (l7x), ",
        ),
        (
            ["erase", "--board", "l7x", "--slot", "devkitc-1"],
            "slot devkitc-1 holds a board of type esp32-devkitc, not l7x",
        ),
        (["dump", "--slot", "nope"], "no slot 'nope' in station sim (slots: l7x-1 (l7x), "),
    ],
)
def test_slot_selection_errors_exit_2_and_name_what_is_known(rig, args, message):
    """The one-slot commands select through rig.operations.selection, as rig flash, rig serve
    and the plugin do: the same words for the same mistake."""
    result = rig(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in result.output


def test_a_restore_that_fails_midway_names_the_backup_to_run_it_again(
    rig, tmp_path, sim_station_file
):
    """A worn sector stops the restore half-way: the error says the flash is partly written and
    that the verified backup still exists, with the command that puts it back."""
    custom, vendor = flash_contents.custom_grbl_flash(), flash_contents.vendor_l7x_flash()
    sectors = [(a, custom[a : a + 0x1000]) for a in range(0, len(custom), 0x1000)]
    # the first sector the restore must program (an erase alone would not make it match)
    bad = next(a for a, s in sectors if s != vendor[a : a + 0x1000] and s != b"\xff" * 0x1000)
    plain = "simulated: {variant: l7x, seed: l7x-2}"
    worn = f"faults: [{{kind: bad_sector, address: {bad:#x}}}]"
    text = sim_station_file.read_text()
    assert plain in text, "the shipped sim station changed: update this test"
    sim_station_file.write_text(text.replace(plain, plain[:-1] + f", {worn}}}"))
    md5 = hashlib.md5(custom).hexdigest()
    backup = BackupStore(tmp_path / "backups").save(MAC, custom, md5, {}, flash_size=len(custom))
    result = rig("restore", "--slot", "l7x-2", "--json", ok=False)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["steps"][-1]["name"] == "restore" and not report["steps"][-1]["ok"]
    assert "flash partly written" in report["error"] and "bad or worn sector" in report["error"]
    assert report["error"].endswith(
        f"verified backup {backup.id} exists: run `rig restore --slot l7x-2`"
    )
