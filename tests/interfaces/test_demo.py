"""`make demo` is the README's first command: it must keep working end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(180)
def test_demo_runs_the_whole_cycle_on_the_simulated_l7x(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("RIG_STATION", None)
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())  # rich wraps long lines at the terminal width
    assert "simulated Vigotech VG-L7X in slot l7x-1" in out
    for step in (
        "identify",
        "backup",
        "erase",
        "write",
        "verify",
        "boot check",
        "restore",
        "verify original",
        "boot check original",
    ):
        assert f"│ {step} " in proc.stdout, step
    assert "FAILED" not in out
    assert "Grbl 1.3a ['$' for help]" in out  # the custom firmware booted
    assert "Grbl 1.1f ['$' for help]" in out  # and the restored vendor firmware
    dumps = list((tmp_path / ".local/share/rig/sim-backups").glob("*/*.bin"))
    assert len(dumps) == 1 and dumps[0].stat().st_size == 0x400000
