"""`rig serve --until-stdin-closes`: a supervisor (labgrid's exporter, rig.labgrid.export) that
dies - however it dies, SIGKILL included - takes its `rig serve` with it, and the slot's relays are
released and its client disconnected."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import serial

from rig.esp32 import format_mac
from rig.images.flash_contents import vendor_l7x_flash
from rig.operations.backups import BackupStore
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")


def test_serve_stops_cleanly_when_its_supervisors_pipe_closes(sim_station_file, tmp_path):
    flash = vendor_l7x_flash()
    BackupStore(tmp_path / "backups").save(
        format_mac(mac_from_seed("l7x:l7x-1")),
        flash,
        hashlib.md5(flash).hexdigest(),
        {"seeded_by": "tests"},
        flash_size=len(flash),
    )
    cmd = [sys.executable, "-m", "rig.cli.serve", "--station", str(sim_station_file)]
    proc = subprocess.Popen(
        [*cmd, "--slot", "l7x-1", "--port", "0", "--until-stdin-closes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().split()
        assert line[:2] == ["SERVE", "l7x-1"], proc.stderr.read() if proc.poll() else line
        client = serial.serial_for_url(f"{line[2]}?timeout=20", timeout=0.2)
        client.dtr = False
        client.rts = True  # EN held low: the `off` sequence plays; the client holds the slot
        proc.stdin.close()  # the supervisor is gone
        proc.wait(timeout=30)
        err = proc.stderr.read()
        assert proc.returncode == 0, err
        assert "stdin closed" in err
        assert "relays released, slot unlocked" in err  # the client was disconnected
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
