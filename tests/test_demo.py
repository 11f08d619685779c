"""`make demo` is the README's first command: it must keep working end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(180)
def test_demo_runs_the_whole_session(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())  # rich wraps long lines at the terminal width
    assert "waiting for download" in out
    assert "ESP32-D0WD-V3 (revision v3.0)" in out
    assert "chip MD5 matches" in out
    assert "equals the simulated flash byte for byte: yes" in out
    assert "Grbl 1.3a ['$' for help]" in out  # the written firmware booted
    dumps = list(tmp_path.glob("*.bin"))
    assert len(dumps) == 1 and dumps[0].stat().st_size == 0x400000
