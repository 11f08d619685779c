"""Shared fixtures: simulated boards and a stock-esptool runner (always under a timeout)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from rig.sim.board import SimBoard

ESPTOOL_TIMEOUT = 120  # seconds; a confused esptool can wait forever for OHAI


@dataclass
class EsptoolResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def make_board():
    """Factory for simulated boards; every board is closed at teardown."""
    boards: list[SimBoard] = []

    def make(variant: str = "l7x", **kwargs) -> SimBoard:
        kwargs.setdefault("seed", f"test-{len(boards)}")
        board = SimBoard(variant, **kwargs)
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()
    faults = [fault for board in boards for fault in board.faults]
    assert not faults, "simulator internal errors:\n" + "\n".join(faults)


@pytest.fixture
def no_hard_links_in(monkeypatch):
    """``no_hard_links_in(root)``: from now on ``os.link`` fails with EPERM for paths under
    ``root``, as on FAT, exFAT or an SMB share; returns ``root``."""

    def refuse(root):
        real_link = os.link

        def link(src, dst, *args, **kwargs):
            if str(root) in os.fspath(dst):
                raise OSError(errno.EPERM, "Operation not permitted", os.fspath(dst))
            return real_link(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "link", link)
        return root

    return refuse


@pytest.fixture
def sim_station_config(tmp_path):
    """The shipped simulated station with locks and backups under tmp_path, with optional
    per-slot ``simulated`` overrides: ``sim_station_config(**{"l7x-2": {"fail_connects": 1}})``."""
    from rig import config

    def make(**slot_changes):
        base = config.default_station()
        slots = []
        for slot in base.slots:
            change = slot_changes.get(slot.id)
            if change:
                sim = slot.simulated.model_copy(update=change)
                slot = slot.model_copy(update={"simulated": sim})
            slots.append(slot)
        return base.model_copy(
            update={
                "locks": tmp_path / "locks",
                "backups": tmp_path / "backups",
                "slots": tuple(slots),
            }
        )

    return make


@pytest.fixture
def sim_station_file(tmp_path):
    """The shipped simulated station as a file whose locks, backups and user firmware directory
    live under tmp_path (for commands run as subprocesses; parallel tests must not share them)."""
    from rig.config import builtin_configs_dir

    station = tmp_path / "stations" / "sim.yaml"
    station.parent.mkdir()
    text = (builtin_configs_dir() / "stations" / "sim.yaml").read_text()
    text = text.replace("${XDG_RUNTIME_DIR:-/tmp}/rig-locks", str(tmp_path / "locks"))
    text = text.replace("~/.local/share/rig/sim-backups", str(tmp_path / "backups"))
    firmware = f"[{builtin_configs_dir() / 'firmware'}, {tmp_path / 'sim-firmware'}]"
    text = text.replace("[../firmware, ~/.local/share/rig/sim-firmware]", firmware)
    assert text.count(str(tmp_path)) == 3, "the shipped sim station's paths changed: update this"
    station.write_text(text)
    return station


@pytest.fixture(scope="module")
def shared_board(request):
    """One simulated L7X per test module (and xdist worker), for tests that reset it anyway."""
    board = SimBoard("l7x", boot="download", seed=f"shared-{request.module.__name__}")
    yield board
    board.close()
    assert not board.faults, "simulator internal errors:\n" + "\n".join(board.faults)


@pytest.fixture
def dut(shared_board) -> SimBoard:
    """The module's shared board, freshly reset into ROM download mode with blank flash."""
    shared_board.boot_into("download")
    shared_board.flash.preload(0, b"\xff" * shared_board.flash.size)
    assert shared_board.mode == "download"
    return shared_board


@pytest.fixture
def sim_board(make_board) -> SimBoard:
    """A simulated L7X in ROM download mode (power held, IO0 latched low), blank flash."""
    return make_board("l7x", boot="download")


@pytest.fixture
def esptool(tmp_path):
    """Run the real esptool CLI as a subprocess against a port, in a clean working directory.

    ``esptool(board.port, "read-mac")`` adds ``--chip esp32 --before no-reset --after no-reset``
    (the rig owns resets); pass ``chip=None`` / ``resets=False`` to leave them out.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPTOOL_")}
    # An empty [esptool] section stops esptool's config search: no stray esptool.cfg in a home
    # directory can change timeouts or reset sequences under the tests.
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text("[esptool]\n")
    env["ESPTOOL_CFGFILE"] = str(cfg)

    def run(
        port: str,
        *args: str,
        chip: str | None = "esp32",
        resets: bool = True,
        timeout: float = ESPTOOL_TIMEOUT,
    ) -> EsptoolResult:
        cmd = [sys.executable, "-m", "esptool", "--port", port]
        if chip:
            cmd += ["--chip", chip]
        if resets:
            cmd += ["--before", "no-reset", "--after", "no-reset"]
        proc = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env
        )
        return EsptoolResult(proc.returncode, proc.stdout, proc.stderr)

    return run


# Where the default partition table puts NVS: data a firmware rewrites at run time (settings).
SETTINGS_AT = 0xB000


@pytest.fixture
def change_sim_flash():
    """``change_sim_flash(station_config, slot_id, data=...) -> flash``: the board's firmware
    saved settings since its last backup. ``data`` is programmed (NOR: bits only clear) into the
    NVS region of the simulated slot, opened and closed as any rig command does, so the next
    command - in this process or another - finds the changed flash; returns the whole flash."""
    from rig.board.station import LiveStation

    def change(cfg, slot_id: str, data: bytes = b"ssid=bench-wifi\0") -> bytes:
        with LiveStation(cfg) as station:
            station.open_slot(slot_id)
            flash = station.simulated_board(slot_id).flash
            flash.program(SETTINGS_AT, data)
            return flash.view()

    return change
