"""The dump that skips blocks the chip proves erased (rig.operations.blankskip), through the one
dump path (take_backup), on the unpaced simulator: what crosses the wire is what the simulated
chip counts as sent (``chip.flash_sent``)."""

from __future__ import annotations

import hashlib

import pytest

from rig.board.station import LiveStation
from rig.esp32 import BLOCK
from rig.operations import blankskip
from rig.operations.backups import BackupStore
from rig.operations.errors import FlasherError
from rig.operations.safeguards import ensure_backup, take_backup
from rig.operations.session import FlasherSession

pytestmark = pytest.mark.timeout(120)

SLOT = "l7x-1"


@pytest.fixture
def station(sim_station_config):
    with LiveStation(sim_station_config(**{SLOT: {"vendor_flash": False}})) as st:
        yield st


def written(station, blocks: dict[int, bytes]) -> bytes:
    """An erased flash with ``blocks`` (address -> data) programmed; the whole flash."""
    station.open_slot(SLOT)  # the simulated board exists once its slot is in use
    flash = station.simulated_board(SLOT).flash
    for address, data in blocks.items():
        flash.preload(address, data)
    return flash.view()


def dump(station, **session_kwargs):
    slot = station.open_slot(SLOT)
    board = station.simulated_board(SLOT)
    with FlasherSession(slot.board, **session_kwargs) as session:
        sent = board.chip.flash_sent
        result = take_backup(session, BackupStore(station.config.backups), {"slot": SLOT})
        return result, board.chip.flash_sent - sent


def test_only_blocks_that_are_not_blank_cross_the_wire(station):
    data = bytes(range(256)) * (BLOCK // 256)
    flash = written(station, {0: data, BLOCK: data, 5 * BLOCK: data[:100]})
    result, sent = dump(station)
    assert result.backup.read() == flash  # still the whole flash
    assert result.backup.sha256 == hashlib.sha256(flash).hexdigest()
    assert result.chip_md5 == hashlib.md5(flash).hexdigest()
    assert sent == 3 * BLOCK  # blocks 0, 1 and 5; the other 61 were proven erased
    assert result.transfer.size == 3 * BLOCK
    assert result.backup.meta["bytes_read"] == 3 * BLOCK


def test_a_block_blank_but_for_one_byte_is_read(station):
    address = 40 * BLOCK + 0x7FFF
    flash = written(station, {address: b"\xfe"})  # one bit programmed in 4 MB
    result, sent = dump(station)
    assert result.backup.read() == flash
    assert result.backup.read()[address] == 0xFE
    assert sent == BLOCK


def test_a_blank_block_whose_md5_fails_is_read_not_assumed(station, monkeypatch):
    flash = written(station, {})  # all erased
    failing = 7 * BLOCK
    real_md5 = FlasherSession.md5

    def md5(self, offset, length):
        if (offset, length) == (failing, BLOCK):
            raise FlasherError(f"{offset:#x}: MD5 timed out")
        return real_md5(self, offset, length)

    monkeypatch.setattr(FlasherSession, "md5", md5)
    result, sent = dump(station)
    assert result.backup.read() == flash
    assert sent == BLOCK  # the block that could not be proven blank, and only that one


def test_read_flash_reports_what_it_skipped_and_what_it_could_not_check(station, monkeypatch):
    data = b"\x00" * BLOCK
    flash = written(station, {2 * BLOCK: data, 3 * BLOCK: data})
    real_md5 = FlasherSession.md5

    def md5(self, offset, length):
        if offset == 9 * BLOCK:
            raise FlasherError("MD5 failed")
        return real_md5(self, offset, length)

    monkeypatch.setattr(FlasherSession, "md5", md5)
    done: list[tuple[int, int]] = []
    with FlasherSession(station.open_slot(SLOT).board) as session:
        data_read, stats = blankskip.read_flash(
            session, len(flash), lambda d, t: done.append((d, t))
        )
    assert data_read == flash
    assert (stats.read, stats.blank, stats.unchecked) == (3 * BLOCK, 61 * BLOCK, [9 * BLOCK])
    assert done[-1] == (3 * BLOCK, 3 * BLOCK)  # progress over what is read, to the end


def test_the_backup_policy_dumps_through_the_same_path(station):
    """ensure_backup (every destructive step: rig write, the batch, the cycle) takes its backup
    with take_backup: blank blocks are not read there either."""
    flash = written(station, {0x20000: b"\x00" * 16})
    slot = station.open_slot(SLOT)
    board = station.simulated_board(SLOT)
    with FlasherSession(slot.board) as session:
        sent = board.chip.flash_sent
        check = ensure_backup(session, BackupStore(station.config.backups), "auto", {})
    assert check.taken and check.backup.read() == flash
    assert board.chip.flash_sent - sent == BLOCK


def test_erased_md5_is_the_md5_of_0xff():
    assert blankskip.erased_md5(BLOCK) == hashlib.md5(b"\xff" * BLOCK).hexdigest()
