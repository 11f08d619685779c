"""The reported steps as library verbs (rig.operations.steps) on the simulated station: each
writes one ReportStep - name, ok, detail, data - on success and on failure, and returns data.

Backups are seeded (no 4 MB dump) except where the dump itself is the subject.
"""

from __future__ import annotations

import hashlib

import pytest

from rig.board.station import LiveStation
from rig.errors import OperationError, is_transient
from rig.esp32 import BLOCK
from rig.images import flash_contents
from rig.operations import steps
from rig.operations.backups import BackupStore
from rig.operations.images import resolve_images
from rig.operations.report import Report
from rig.operations.safeguards import BackupPolicy, take_backup
from rig.operations.session import FlasherError, FlasherSession

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def station(sim_station_config):
    cfg = sim_station_config()
    l7x = cfg.boards["l7x"].model_copy(update={"boot_timeout": 1.0})  # a failing check is quick
    with LiveStation(cfg.model_copy(update={"boards": {**cfg.boards, "l7x": l7x}})) as st:
        yield st


def seed_backup(station, slot_id, flash: bytes | None = None, mac: str | None = None):
    """A verified backup of ``flash`` (default: the slot's current flash), without a dump."""
    sim = station.simulated_board(slot_id)
    flash = sim.flash.view() if flash is None else flash
    md5 = hashlib.md5(flash).hexdigest()
    store = BackupStore(station.config.backups)
    return store.save(mac or sim.mac_str, flash, md5, {"slot": slot_id}, flash_size=len(flash))


def images(slot, name):
    return resolve_images([name], slot.board_type)


# -- identify --------------------------------------------------------------------------------------
def test_identify_records_the_chip_and_the_reports_mac(station):
    slot = station.open_slot("l7x-1")
    report = Report("test", slot.id)
    with FlasherSession(slot.board) as session:
        ident = steps.identify(report, session)
    [step] = report.steps
    assert step.name == "identify" and step.ok
    assert step.data == ident.as_dict() and report.mac == ident.mac
    assert step.detail == steps.describe(ident)
    assert f"MAC {ident.mac}" in step.detail and "40 MHz crystal" in step.detail


def test_a_connect_that_finds_another_board_fails_its_step_and_the_report(station):
    """The batch's ``connect``: identify on a session not connected yet connects it, so the
    refusal is that step's failure; :func:`steps.reported` puts it into the report."""
    slot = station.open_slot("l7x-3")
    report = Report("test", slot.id)
    session = FlasherSession(slot.board, expected_mac="24:0a:c4:99:99:99")
    with steps.reported(report, slot.id) as run:
        run.open(session)
        steps.identify(report, session, name="connect")
    [step] = report.steps
    assert step.name == "connect" and not step.ok
    assert step.detail.startswith("WrongBoard: l7x-3: the board on")
    assert not report.ok and "expected 24:0a:c4:99:99:99 - refusing to touch it" in report.error
    assert station.simulated_board("l7x-3").flash.program_bytes == 0


# -- erase, write, verify --------------------------------------------------------------------------
def test_erase_a_region_or_the_chip_with_its_blank_check(station):
    slot = station.open_slot("l7x-2")
    sim = station.simulated_board("l7x-2")
    report = Report("test", slot.id)
    with FlasherSession(slot.board) as session:
        steps.erase(report, session, (0x10000, 0x1000))
        assert sim.flash.read(0x10000, 0x1000) == b"\xff" * 0x1000
        steps.erase(report, session, blank_check=True)
    region, chip = report.steps
    assert (region.name, region.ok, region.detail) == ("erase", True, "0x10000+0x1000")
    assert (chip.name, chip.ok, chip.detail) == ("erase", True, "4 MB blank (chip MD5)")
    assert sim.flash.view() == b"\xff" * (4 << 20)


def test_write_then_verify_and_a_verify_that_fails(station):
    slot = station.open_slot("l7x-1")
    custom, vendor = images(slot, "custom-grbl"), images(slot, "vendor-l7x")
    report = Report("test", slot.id)
    with FlasherSession(slot.board) as session:
        stats = steps.write(report, session, custom)
        steps.verify(report, session, custom)
        with pytest.raises(FlasherError) as err:
            steps.verify(report, session, vendor)
    write, verify, failed = report.steps
    [image] = custom
    assert write.ok and write.data["bytes_written"] == stats.written > 0
    assert write.data["bytes_skipped"] == stats.skipped > 0  # the shared bootloader
    assert write.data["images"] == [
        {
            "name": "custom-grbl",
            "offset": image.offset,
            "sha256": image.sha256,
            "bytes_written": stats.written,
            "bytes_skipped": stats.skipped,
        }
    ]
    assert write.detail.startswith(f"custom-grbl at {image.offset:#x}: wrote {stats.written} B")
    assert verify.ok and verify.detail == f"chip MD5 matches custom-grbl at {image.offset:#x}"
    assert str(err.value) == f"l7x-1: vendor-l7x at {vendor[0].offset:#x}: chip MD5 differs"
    assert is_transient(err.value)  # an MD5 that came over the link: worth another attempt
    assert failed.name == "verify" and not failed.ok
    assert failed.detail == f"FlasherError: {err.value}"


# -- boot check ------------------------------------------------------------------------------------
def test_boot_check_on_success_and_on_failure(station):
    slot, other = station.open_slot("l7x-1"), station.open_slot("l7x-2")
    vendor = slot.board_type.firmware_named("vendor-l7x")
    report = Report("test", slot.id)
    check = steps.boot(report, slot.board, vendor.console, firmware="vendor-l7x", tail=60)
    with pytest.raises(OperationError) as err:
        steps.boot(report, other.board, "never printed", firmware="custom-grbl")
    ok, failed = report.steps
    assert check.ok and ok.ok and ok.name == "boot check"
    assert ok.detail.startswith(f"vendor-l7x: console matched {vendor.console!r} after ")
    assert ok.data["firmware"] == "vendor-l7x" and ok.data["console"] == check.console[-60:]
    assert "Grbl 1.1f" in ok.data["console"]
    assert str(err.value) == "custom-grbl did not boot: the console never showed 'never printed'"
    assert not failed.ok and "Grbl 1.1f" in failed.data["console"]  # what it printed instead


# -- backup, dump, restore -------------------------------------------------------------------------
def test_the_backup_step_reuses_a_matching_backup_and_keeps_its_id(station):
    slot = station.open_slot("l7x-4")
    seeded = seed_backup(station, "l7x-4")
    report = Report("test", slot.id)
    policy = BackupPolicy(BackupStore(station.config.backups), "require", {"slot": slot.id})
    with FlasherSession(slot.board) as session:
        check = steps.backup(report, session, policy, None)
    [step] = report.steps
    assert check.backup == seeded and not check.taken
    assert step.ok and step.data["id"] == seeded.id and step.data["taken"] is False
    assert report.data["backup_id"] == seeded.id  # the way back, should a later step fail


ERASED = b"\xff" * BLOCK


def test_take_backup_reuses_an_identical_backup_only_when_asked(station):
    slot = station.open_slot("l7x-3")
    seeded = seed_backup(station, "l7x-3")
    store = BackupStore(station.config.backups)
    report = Report("test", slot.id)
    with FlasherSession(slot.board) as session:
        reused = take_backup(session, store, {"slot": slot.id}, reuse=True)
        dumped = steps.dump(report, session, BackupPolicy(store, "auto", {"slot": slot.id}), None)
    assert reused.reused and reused.backup == seeded
    flash = seeded.read()
    not_blank = [i for i in range(0, len(flash), BLOCK) if flash[i : i + BLOCK] != ERASED]
    assert reused.transfer.size == len(not_blank) * BLOCK  # erased blocks are not read
    assert reused.chip_md5 == seeded.meta["md5"]
    assert not dumped.reused and dumped.backup.id != seeded.id  # rig dump: always a new file
    assert [b.id for b in store.list(seeded.mac)] == [seeded.id, dumped.backup.id]
    [step] = report.steps
    assert step.name == "dump" and step.ok and step.data["id"] == dumped.backup.id
    assert step.detail.startswith(f"{dumped.backup.id} ({4 << 20} B, ")


def test_restore_verifies_the_original_and_boots_it(station):
    slot = station.open_slot("l7x-2")
    sim = station.simulated_board("l7x-2")
    backup = seed_backup(station, "l7x-2")
    with FlasherSession(slot.board) as session:
        session.write(0x10000, flash_contents.custom_grbl_flash()[0x10000:0x20000])
    report = Report("test", slot.id)
    with FlasherSession(slot.board, expected_mac=backup.mac) as session:
        flash = steps.restore(report, session, backup)
    steps.boot_original(report, slot.board, flash, slot.board_type)
    restore, verify, boot = report.steps
    assert sim.flash.view() == backup.read() == flash
    assert restore.name == "restore" and restore.ok and restore.data["backup"] == backup.id
    assert 0 < restore.data["bytes_written"] <= 0x10000
    assert verify.name == "verify original" and verify.ok
    assert boot.name == "boot check original" and boot.ok
    assert boot.data["firmware"] == "vendor-l7x"
    assert boot.detail.startswith("the restored vendor-l7x: console matched")
    assert report.data["backup_id"] == backup.id


def test_restore_refuses_a_backup_of_another_board_before_writing(station):
    slot = station.open_slot("l7x-2")
    other = seed_backup(station, "l7x-2", flash_contents.custom_grbl_flash(), "24:0a:c4:99:99:99")
    report = Report("test", slot.id)
    with FlasherSession(slot.board) as session, pytest.raises(OperationError) as err:
        steps.restore(report, session, other)
    assert f"backup {other.id} is of 24:0a:c4:99:99:99, this board is" in str(err.value)
    assert report.steps == [] and station.simulated_board("l7x-2").flash.program_bytes == 0


# -- a reported run --------------------------------------------------------------------------------
def test_a_stop_during_a_write_names_the_unverified_range_and_the_way_back(station):
    slot = station.open_slot("l7x-1")
    backup = seed_backup(station, "l7x-1")
    custom = images(slot, "custom-grbl")
    policy = BackupPolicy(BackupStore(station.config.backups), "require", {"slot": slot.id})
    report = Report("test", slot.id)

    def ctrl_c(phase: str, done: int, total: int) -> None:
        if phase == "write" and done > 0x4000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), steps.reported(report, slot.id) as run:
        session = run.open(FlasherSession(slot.board))
        with session:
            steps.backup(report, session, policy, None)
            steps.write(report, session, custom, ctrl_c)
    [_, write] = report.steps
    assert write.name == "write" and not write.ok and not report.ok
    assert report.error.startswith("interrupted (SIGINT) during write; relays released; ")
    assert f"flash partly written: {custom[0].offset:#x}-" in report.error
    assert report.error.endswith(
        f"verified backup {backup.id} exists: run `rig restore --slot l7x-1`"
    )
