"""Fixtures of the simulator's unit tests: a board whose ROM loader (or stub) a test drives."""

from __future__ import annotations

import pytest
from sim_harness import Driver, upload_stub

from rig.sim.board import SimBoard


@pytest.fixture(scope="module")
def loader_board():
    board = SimBoard("l7x", boot="download", seed="units-loader")
    assert board.wait_for_console("waiting for download", 5)
    yield board
    board.close()


@pytest.fixture
def rom(loader_board):
    """A driver talking to a freshly reset ROM loader (blank flash)."""
    loader_board.chip.uart = loader_board.uart
    loader_board.boot_into("download")
    assert loader_board.mode == "download"
    loader_board.flash.preload(0, b"\xff" * loader_board.flash.size)
    return Driver(loader_board)


@pytest.fixture
def stub(rom):
    frames = upload_stub(rom)
    assert rom.board.mode == "stub"
    return rom, frames
