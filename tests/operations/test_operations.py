"""Dump, write, restore, the guards, and the cycle, on slots of the simulated station."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from rig.board.station import LiveStation
from rig.cli import main
from rig.errors import BadInput as BadImage
from rig.errors import OperationError
from rig.esp32 import APP_OFFSET
from rig.images import flash_contents, synthetic
from rig.operations.backups import BackupStore
from rig.operations.cycle import run_cycle
from rig.operations.fastwrite import PartialWrite
from rig.operations.images import resolve_images
from rig.operations.safeguards import ensure_backup, take_backup
from rig.operations.session import FlasherSession, WrongBoard

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def station(sim_station_config):
    cfg = sim_station_config()
    with LiveStation(cfg) as st:
        yield st


def session(slot, **kwargs):
    return FlasherSession(slot.board, **kwargs)


def seed_backup(station, slot_id):
    """A verified backup of the slot's current flash without a 4 MB dump (tests that are not
    about dumping; the dump itself is tested once)."""
    sim = station.simulated_board(slot_id)
    flash = sim.flash.view()
    store = BackupStore(station.config.backups)
    md5 = hashlib.md5(flash).hexdigest()
    return store.save(sim.mac_str, flash, md5, {"slot": slot_id}, flash_size=len(flash))


def test_dump_is_a_verified_backup_equal_to_the_flash(station):
    slot = station.open_slot("l7x-1")
    store = BackupStore(station.config.backups)
    earlier = seed_backup(station, "l7x-1")
    with session(slot) as s:
        dump = take_backup(s, store, {"slot": "l7x-1"})
    backup = dump.backup
    assert not dump.reused  # without reuse=True a dump is always stored
    flash = station.simulated_board("l7x-1").flash.view()
    assert backup.read() == flash == earlier.read()
    assert backup.path != earlier.path  # a second dump is a second file, never a replacement
    assert backup.meta["md5"] == hashlib.md5(flash).hexdigest()
    assert backup.meta["chip"] == "ESP32-D0WD-V3 (revision v3.0)"
    assert backup.meta["flash_id"] == "1640ef" and backup.meta["baud"] == 2000000
    assert [b.id for b in store.list(backup.mac)] == [earlier.id, backup.id]


def test_destructive_step_refused_without_a_backup(station):
    slot = station.open_slot("l7x-2")
    store = BackupStore(station.config.backups)
    sim = station.simulated_board("l7x-2")
    before = sim.flash.view()
    with session(slot) as s, pytest.raises(OperationError, match="no verified backup"):
        ensure_backup(s, store, "require", {})
    assert sim.flash.view() == before
    assert sim.flash.erase_count == 0


def test_wrong_mac_is_refused_before_anything_is_written(station):
    slot = station.open_slot("l7x-3")
    sim = station.simulated_board("l7x-3")
    with pytest.raises(WrongBoard, match="refusing to touch it"):
        session(slot, expected_mac="24:0a:c4:99:99:99").connect()
    assert sim.flash.erase_count == 0 and sim.flash.program_bytes == 0


def test_pinned_slot_mac_guards_the_cycle(sim_station_config):
    cfg = sim_station_config(**{"l7x-4": {"mac": "24:0a:c4:00:00:05"}})  # not the pinned MAC
    with LiveStation(cfg) as st:
        slot = st.open_slot("l7x-4")
        images = resolve_images(["custom-grbl"], slot.board_type)
        report = run_cycle(slot, BackupStore(cfg.backups), images, console_pattern="Grbl")
        assert not report.ok and "expected 24:0a:c4:00:00:04" in report.error
        assert st.simulated_board("l7x-4").flash.program_bytes == 0


def test_restore_after_an_app_change_writes_only_changed_blocks(station):
    slot = station.open_slot("l7x-1")
    sim = station.simulated_board("l7x-1")
    backup = seed_backup(station, "l7x-1")
    with session(slot) as s:
        app = synthetic.custom_grbl_app()
        s.write(APP_OFFSET, app)  # only the app changes
        assert sim.flash.read(APP_OFFSET, len(app)) == app
        stats = s.write(0, backup.read())  # restore
    assert sim.flash.view() == backup.read()
    assert stats.skipped > 3 * 1024 * 1024  # everything but the app region was left alone
    assert 0 < stats.written <= len(synthetic.vendor_l7x_app()) + 0x1000


def test_power_loss_mid_write_fails_clearly_and_restore_recovers(station):
    slot = station.open_slot("l7x-2")
    sim = station.simulated_board("l7x-2")
    original = sim.flash.view()
    backup = seed_backup(station, "l7x-2")
    with session(slot, retries=0) as s:  # no automatic recovery: the failure must be clear
        cut = threading.Event()

        def pull_the_plug(done, total):
            if done > 100_000 and not cut.is_set():
                cut.set()
                slot.relays["power"].open()

        image = resolve_images(["custom-grbl"], slot.board_type)[0]
        with pytest.raises(PartialWrite) as err:
            s.write(image.offset, image.data, pull_the_plug)
    assert "l7x-2: write" in str(err.value)
    assert f"flash partly written: {image.offset:#x}-" in str(err.value)
    assert err.value.unverified[0][0] == image.offset
    assert sim.mode == "off" and sim.flash.view() != original
    with session(slot, expected_mac=backup.mac) as s:  # the relays bring it back
        stats = s.write(0, backup.read())
    assert sim.flash.view() == original and stats.written > 0


@pytest.mark.parametrize(
    ("make_spec", "message"),
    [
        (lambda d: [f"{d / 'big.bin'}@0x300000"], "past the 4 MB flash"),
        (lambda d: [f"{d / 'app.bin'}@0x10800"], "not 4 KB aligned"),
        (lambda d: [f"{d / 's3.bin'}@0x10000"], "not ESP32"),
        (lambda d: ["nosuch"], "no firmware 'nosuch'"),
        (lambda d: [f"{d / 'app.bin'}@0x10000", f"{d / 'app.bin'}@0x20000"], "overlaps"),
    ],
)
def test_bad_images_are_rejected_before_any_relay_moves(tmp_path, monkeypatch, make_spec, message):
    app = synthetic.custom_grbl_app()
    (tmp_path / "app.bin").write_bytes(app)
    (tmp_path / "big.bin").write_bytes(b"\0" * 0x200000)
    s3 = bytearray(app)
    s3[12:14] = (9).to_bytes(2, "little")  # esp_image_header_t.chip_id = ESP32-S3
    (tmp_path / "s3.bin").write_bytes(bytes(s3))
    import rig.board.station

    def touched(*_a, **_k):
        raise AssertionError("a slot was opened")

    monkeypatch.setattr(rig.board.station.LiveStation, "open_slot", touched)
    result = CliRunner().invoke(main, ["write", "--slot", "l7x-1", *make_spec(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_catalog_file_changed_since_load_is_bad_input(sim_station_config):
    """The catalog pins each part's sha256; the write path checks the file against it before
    it reads the bytes it sends (a file changed since the catalog was written is refused)."""
    l7x = sim_station_config().board_of("l7x-1")
    fw = l7x.firmware[0]
    bad = fw.model_copy(update={"parts": (fw.parts[0].model_copy(update={"sha256": "0" * 64}),)})
    board = l7x.model_copy(update={"firmware": (bad,)})
    with pytest.raises(BadImage, match="hashes to [0-9a-f]{64}, the catalog pins 0000"):
        resolve_images([bad.name], board)


def test_cycle_json_reports_every_step(sim_station_config, sim_station_file):
    cfg = sim_station_config()
    # The dump is tested elsewhere: give the board a verified backup so the cycle reuses it.
    from rig.esp32 import format_mac
    from rig.sim.parts.efuse import mac_from_seed

    flash = flash_contents.vendor_l7x_flash()
    mac = format_mac(mac_from_seed("l7x:l7x-3"))
    md5 = hashlib.md5(flash).hexdigest()
    BackupStore(cfg.backups).save(mac, flash, md5, {"slot": "l7x-3"}, flash_size=len(flash))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rig.cli",
            "cycle",
            "--board",
            "l7x",
            "--slot",
            "l7x-3",
            "--json",
            "--station",
            str(sim_station_file),
        ],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["operation"] == "cycle"
    assert [s["name"] for s in report["steps"]] == [
        "identify",
        "backup",
        "boot plan",
        "erase",
        "write",
        "verify",
        "boot check",
        "restore",
        "verify original",
        "boot check original",
    ]
    assert all(s["ok"] for s in report["steps"])
    assert report["mac"] == mac and report["steps"][1]["data"]["taken"] is False
    assert report["steps"][2]["data"]["added"] == []  # merged: bootloader and table included
    restore = report["steps"][7]["data"]
    assert restore["bytes_skipped"] > 0 and restore["bytes_written"] > 0
    assert "Grbl 1.3a" in report["steps"][6]["data"]["console"]
    assert "Grbl 1.1f" in report["steps"][9]["data"]["console"]


def test_power_loss_mid_write_and_mid_read_are_recovered_automatically(station):
    slot = station.open_slot("l7x-4")
    sim = station.simulated_board("l7x-4")
    image = resolve_images(["custom-grbl"], slot.board_type)[0]
    cuts = []

    def pull_the_plug_once(done, total):
        if done > 100_000 and not cuts:
            cuts.append(done)
            slot.relays["power"].open()

    with session(slot, backoff=0.01) as s:
        stats = s.write(image.offset, image.data, pull_the_plug_once)
        assert sim.flash.read(image.offset, len(image.data)) == image.data
        assert s.recoveries and "write" in s.recoveries[0]
        # Resumed from the last verified block: the retry wrote less than the whole image.
        assert 0 < stats.written < len(image.data) - stats.skipped
        cuts.clear()
        data = s.read(0, 0x100000, pull_the_plug_once)  # resumes per 256 KB chunk
    assert data == sim.flash.read(0, 0x100000)
    assert any(r.startswith("read ") for r in s.recoveries)


def test_a_failed_write_names_the_unverified_range_and_the_way_back():
    from rig.operations.fastwrite import PartialWrite
    from rig.operations.safeguards import explain_failure

    err = PartialWrite(
        "l7x-2: write 0x10000+0x70000: No serial data received.; flash partly "
        "written: 0x10000-0x7ffff unverified",
        [(0x10000, 0x80000)],
    )
    text = explain_failure(err, "l7x-2", "24-0a-c4-00-00-02/20261126T000000.000000Z-abc")
    assert text.endswith(
        "verified backup 24-0a-c4-00-00-02/20261126T000000.000000Z-abc exists: "
        "run `rig restore --slot l7x-2`"
    )
    assert "0x10000-0x7ffff unverified" in text


def test_a_backup_is_current_only_if_size_and_md5_match_the_whole_flash(tmp_path):
    from rig.operations.backups import Backup
    from rig.operations.safeguards import matches_chip

    md5 = hashlib.md5(b"\xff" * 0x400000).hexdigest()

    def backup(size: int, digest: str) -> Backup:
        return Backup("m/x", "24:0a:c4:00:00:01", tmp_path / "x.bin", {"size": size, "md5": digest})

    assert matches_chip(backup(0x400000, md5.upper()), 0x400000, md5)
    assert not matches_chip(backup(0x100000, md5), 0x400000, md5)  # a partial dump never is
    assert not matches_chip(backup(0x400000, "0" * 32), 0x400000, md5)
    assert not matches_chip(Backup("m/x", "m", tmp_path, {"size": 0x400000}), 0x400000, md5)


def test_auto_dumps_again_after_the_flash_changed_and_reuses_the_matching_backup(station):
    """ensure_backup on the session API: settings programmed since the backup -> a new dump;
    then the new backup matches and is reused (no third dump)."""
    slot = station.open_slot("l7x-3")
    store = BackupStore(station.config.backups)
    stale = seed_backup(station, "l7x-3")
    sim = station.simulated_board("l7x-3")
    sim.flash.program(0xB000, b"ssid=bench\0")
    with session(slot) as s:
        with pytest.raises(OperationError, match=f"changed since its latest backup {stale.id}"):
            ensure_backup(s, store, "require", {})
        taken = ensure_backup(s, store, "auto", {"slot": "l7x-3"})
        again = ensure_backup(s, store, "require", {})
    assert taken.taken and taken.stale == stale and taken.backup.read() == sim.flash.view()
    assert not again.taken and again.backup == taken.backup and again.stale is None
    assert [b.id for b in store.list(stale.mac)] == [stale.id, taken.backup.id]
