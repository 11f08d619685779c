"""Realistic timing: the pacing arithmetic (with a fake clock, no wall-time asserts) and a
functional run of a paced board."""

from __future__ import annotations

import pytest

from rig.clock import FakeClock
from rig.sim.parts.flash import REALISTIC, NorFlash
from rig.sim.transport.line import LineRate


def test_line_rate_paces_at_baud_over_ten_and_absorbs_jitter():
    fake = FakeClock(start=100.0)
    rate = LineRate(fake)
    rate.wait(1152, 115200)  # 1152 bytes x 10 bits at 115200 = 0.1 s
    assert fake.sleeps == pytest.approx([0.1])
    fake.now += 0.001  # the sleep overshot by 1 ms: the next chunk makes it up
    rate.wait(1152, 115200)
    assert abs(fake.sleeps[-1] - 0.099) < 1e-9
    assert abs(fake.now - 100.2) < 1e-9  # 2 x 0.1 s, no drift


def test_line_rate_restarts_after_an_idle_line():
    fake = FakeClock(start=100.0)
    rate = LineRate(fake)
    rate.wait(92160, 921600)
    fake.now += 5.0  # idle
    rate.wait(9216, 921600)
    assert abs(fake.sleeps[-1] - 0.1) < 1e-9


def test_nor_timing_uses_datasheet_values_per_operation():
    fake = FakeClock(start=100.0)
    flash = NorFlash(0x400000, timing=REALISTIC, sleep=fake.sleep)
    flash.erase(0x10000, 0x10000)  # one aligned 64 KB block
    flash.erase(0x1000, 0x2000)  # two 4 KB sectors
    flash.program(0x1000, b"\0" * 0x200)  # two 256-byte pages
    flash.erase_chip()
    assert fake.sleeps == pytest.approx(
        [
            REALISTIC.block_erase_s,
            2 * REALISTIC.sector_erase_s,
            2 * REALISTIC.page_program_s,
            REALISTIC.chip_erase_s,
        ]
    )


def test_paced_board_serves_esptool(make_board, esptool, tmp_path):
    board = make_board("l7x", boot="download", realtime=True)
    payload = bytes(range(256)) * 64
    (tmp_path / "p.bin").write_bytes(payload)
    result = esptool(board.port, "-b", "921600", "write-flash", "0x8000", str(tmp_path / "p.bin"))
    assert result.returncode == 0, result.output
    assert "Hash of data verified." in result.output
    assert board.flash.read(0x8000, len(payload)) == payload
    assert board.uart.baud == 921600  # the stub switched; pacing follows the negotiated rate
