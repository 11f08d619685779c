"""The scripted hardware-in-the-loop suite: ``pytest --board l7x`` (see docs/runner.md).

Per board, in this order: identify; the dump (the session's verified backup) equals the chip's
MD5; erase leaves the flash blank; for each catalog firmware of the station: write + verify (with
what it needs to boot: bootloader and partition table from the backup for an app-only entry,
otadata that selects it), then a boot check sees its console pattern (the default check for an
entry without one); restore the original (the backup) and verify; the original boots (its
catalog pattern, else the default check). Destructive steps are marked ``destructive`` (skipped with
``--no-destructive``). The plugin takes the verified backup before a board's first test, marked
or not, and puts it back when the slot is done if a failure left the flash changed.

Each step establishes what it needs (a boot check writes its firmware if the chip does not hold
it), so any subset (``-k boot``) runs on its own. Without ``--board`` every test here is skipped.
"""

from __future__ import annotations

import hashlib

import pytest

from rig.operations import hil


def test_identify(board, esp, rig_record):
    ident = esp.identity
    board_type = board.board_type
    assert ident.chip.upper().startswith(board_type.chip.upper()), ident.chip
    assert ident.flash_size == board_type.flash_size, (
        f"the chip reports {ident.size_text} of flash, the {board_type.name} board "
        f"type says {board_type.flash_size >> 20} MB"
    )
    if board.config.expected_mac:
        assert ident.mac == board.config.expected_mac
    assert ident.baud in {*board_type.serial.bauds, 115200}
    rig_record("baud", ident.baud)


def test_dump_matches_chip_md5(esp, rig_dump, rig_record):
    size = esp.identity.flash_size
    backup = rig_dump.backup
    data = backup.read()  # also checks the file against its recorded sha256
    assert len(data) == size
    assert backup.mac == esp.identity.mac and backup.meta["verified"]
    assert hashlib.md5(data).hexdigest() == rig_dump.chip_md5 == esp.md5(0, size)
    rig_record("dump", backup.path)
    rig_record("firmware_sha256", backup.sha256)
    rig_record("bytes_per_s", rig_dump.transfer.bytes_per_s)


@pytest.mark.destructive
def test_erase_leaves_flash_blank(esp):
    blank, chip_md5 = hil.erase_and_check(esp)
    size = esp.identity.flash_size
    assert blank, f"chip MD5 {chip_md5} after the erase; blank flash is {hil.blank_md5(size)}"


@pytest.mark.destructive
class TestCatalogFirmware:
    """Runs once per catalog entry of the board's type: write + verify, then boot."""

    def test_write_and_verify(self, board, esp, backup, catalog_firmware, rig_record):
        plan = hil.firmware_plan(esp, board.board_type, catalog_firmware.name, backup)
        results = [hil.write_verified(esp, image) for image in plan.images]
        for image in plan.images:
            assert esp.verify(image.offset, image.data), image.name
        written = sum(r.stats.written for r in results)
        seconds = sum(r.transfer.seconds for r in results)
        rig_record("bytes_written", written)
        rig_record("bytes_per_s", round(written / seconds) if seconds > 0 else 0)

    def test_boot_check(self, board, backup, catalog_firmware, artifacts):
        plan = hil.ensure_firmware(board, catalog_firmware.name, backup, track=artifacts.track)
        check = hil.boot(board, catalog_firmware.console, app_offset=plan.app.offset)
        artifacts.console(check.console, f"boot check {catalog_firmware.name}")
        assert check.ok, (
            f"{catalog_firmware.name} did not boot within {check.seconds:.1f} s: "
            f"{check.problem}; the console ended with:\n{check.console[-500:]}"
        )


@pytest.mark.destructive
def test_restore_original(esp, backup, rig_record):
    data = backup.read()
    image = hil.FlashImage("backup", 0, data, str(backup.path))
    result = hil.write_verified(esp, image)
    assert esp.md5(0, len(data)) == hashlib.md5(data).hexdigest()
    rig_record("firmware_sha256", backup.sha256)
    rig_record("bytes_written", result.stats.written)
    rig_record("bytes_per_s", result.transfer.bytes_per_s)


@pytest.mark.destructive
def test_boot_check_original(board, backup, artifacts, rig_record):
    data = backup.read()
    hil.ensure_flash(board, 0, data, track=artifacts.track)
    fw, pattern = hil.original_firmware(data, board.board_type)
    app = hil.expected_app(lambda offset, size: data[offset : offset + size])
    rig_record("firmware", fw.name if fw is not None else "not in the catalog")
    check = hil.boot(board, pattern, app_offset=app.offset if app is not None else None)
    artifacts.console(check.console, "boot check original")
    assert check.ok, (
        f"the original firmware did not boot within {check.seconds:.1f} s: {check.problem}; "
        f"the console ended with:\n{check.console[-500:]}"
    )
