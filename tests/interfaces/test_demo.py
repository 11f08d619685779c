"""`make demo` is the README's first command: it must keep working end to end."""

from __future__ import annotations

import os
import re
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
    assert proc.stdout.startswith("station sim: SIMULATED boards, no real hardware")
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
        assert re.search(rf"^{step} +ok ", proc.stdout, re.M), step  # plain: not a terminal
    assert "FAILED" not in out
    assert "Grbl 1.3a ['$' for help]" in out  # the custom firmware booted
    assert "Grbl 1.1f ['$' for help]" in out  # and the restored vendor firmware
    dumps = list((tmp_path / ".local/share/rig/sim-backups").glob("*/*.bin"))
    assert len(dumps) == 1 and dumps[0].stat().st_size == 0x400000


@pytest.mark.timeout(180)
def test_a_users_app_only_file_goes_through_the_cycle_on_the_simulated_l7x(tmp_path):
    """Issue 14's done-when, as a user types it on a fresh machine (the embedded simulated
    station): `rig firmware add app.bin --offset 0x10000 --name my-grbl`, then `rig cycle
    --firmware my-grbl` ends with the app booted and the vendor dump restored and booted. The
    app is a synthetic app-only image (no bootloader, no partition table); the board's vendor
    flash is backed up already (seeded: no 4 MB dump)."""
    import hashlib
    import json

    from rig.esp32 import format_mac
    from rig.images import app_image, flash_contents
    from rig.operations.backups import BackupStore
    from rig.sim.parts.efuse import mac_from_seed

    env = {**os.environ, "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("RIG_STATION", None)
    vendor = flash_contents.vendor_l7x_flash()
    store = BackupStore(tmp_path / ".local/share/rig/sim-backups")
    mac = format_mac(mac_from_seed("l7x:l7x-1"))
    backup = store.save(mac, vendor, hashlib.md5(vendor).hexdigest(), {}, flash_size=len(vendor))
    app = tmp_path / "app.bin"
    app.write_bytes(
        app_image(
            project_name="my-grbl",
            version="1.0",
            idf_ver="v4.4.7",
            date="Mar  1 2024",
            time="12:00:00",
            console_lines=["my-grbl up"],
            size_hint=200_000,
        )
    )

    def rig(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rig.cli", *args],
            capture_output=True,
            text=True,
            timeout=170,
            env=env,
            cwd=tmp_path,
        )

    added = rig("firmware", "add", "app.bin", "--offset", "0x10000", "--name", "my-grbl")
    assert added.returncode == 0, added.stdout + added.stderr
    assert added.stdout.startswith("station sim: SIMULATED boards")
    cycle = rig("cycle", "--firmware", "my-grbl", "--json")
    assert cycle.returncode == 0, cycle.stdout + cycle.stderr
    report = json.loads(cycle.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert report["ok"] and report["slot"] == "l7x-1" and report["mac"] == mac
    assert (report["station"], report["simulated"]) == ("sim", True)  # the embedded station
    added = steps["boot plan"]["data"]["added"]
    assert [(i["name"], i["source"]) for i in added] == [
        ("bootloader from the backup", f"backup {backup.id}"),
        ("partition table from the backup", f"backup {backup.id}"),
    ]
    assert steps["boot check"]["data"]["check"] == "default"
    assert "my-grbl up" in steps["boot check"]["data"]["console"]  # the app booted
    assert steps["restore"]["data"]["backup"] == backup.id
    assert "Grbl 1.1f ['$' for help]" in steps["boot check original"]["data"]["console"]
