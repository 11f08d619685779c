"""pyserial or pyserial-labgrid: labgrid's fork installs the same `serial/` files as pyserial, and
whichever pip installs last wins. Every RFC 2217 path of the rig must work with either: `rig
serve` with stock esptool's client and resets, the simulator's RFC 2217 transport, and the rig's
own remote slot (tests/labgrid/serial_paths.py, run with each package first on the path).

The Makefile installs the fork last (docs/lab.md "pyserial") and keeps a copy of each package
under .venv/serial-packages/ for this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.labgrid.serialpkg import serial_distribution

HERE = Path(__file__).parent
PACKAGES = Path(sys.prefix) / "serial-packages"
VERSIONS = {"pyserial": "3.5", "pyserial-labgrid": "3.5.0.2"}


def test_the_fork_won_the_install():
    """make installs pyserial-labgrid last: its rfc2217.py is the one Python imports."""
    assert serial_distribution() == "pyserial-labgrid"


@pytest.mark.timeout(120)
def test_every_rfc2217_path_works_with_either_serial_package():
    if not all((PACKAGES / name / "serial").is_dir() for name in VERSIONS):
        pytest.skip(f"no copies of both serial packages in {PACKAGES} (make test installs them)")
    procs = {}
    for name in VERSIONS:
        env = {**os.environ, "PYTHONPATH": str(PACKAGES / name)}
        procs[name] = subprocess.Popen(
            [sys.executable, str(HERE / "serial_paths.py")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=110)
        assert proc.returncode == 0, f"{name}:\n{err[-3000:]}"
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["serial"] == VERSIONS[name], seen
        assert seen["file"].startswith(str(PACKAGES / name)), seen
        assert seen["rig_serve"] == seen["expected_mac"], seen
        assert seen["remote_slot"] == {
            "mac": seen["expected_mac"],
            "verified": True,
            "read_back": True,
        }, seen
        assert seen["sim_transport"] == seen["sim_mac"], seen
