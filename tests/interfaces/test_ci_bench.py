"""The bench CI job (.github/workflows/hil.yml, job ``bench``) takes its firmware from the
station's catalog and refuses a station with simulated slots (.ci/bench_preflight.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import yaml

from rig.config import builtin_configs_dir
from rig.images import custom_grbl_app

REPO = Path(__file__).resolve().parents[2]
PREFLIGHT = REPO / ".ci" / "bench_preflight.py"


def preflight(station: Path, board: str = "l7x") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PREFLIGHT), str(station), board],
        capture_output=True,
        text=True,
        timeout=60,
    )


def real_station(tmp_path: Path, catalog: str | None) -> Path:
    """pi-example.yaml with its firmware directory under tmp_path (and ``catalog`` in it)."""
    text = (builtin_configs_dir() / "stations" / "pi-example.yaml").read_text()
    firmware = tmp_path / "firmware"
    firmware.mkdir(parents=True)
    assert "firmware: /var/lib/rig/firmware" in text, "pi-example changed: update this test"
    text = text.replace("firmware: /var/lib/rig/firmware", f"firmware: {firmware}")
    if catalog is not None:
        (firmware / "catalog.yaml").write_text(catalog)
    path = tmp_path / "stations" / "bench.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_the_bench_job_checks_the_station_before_the_suite_and_names_no_firmware_file():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "hil.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["bench"]["steps"]]
    preflight_at = next(i for i, r in enumerate(runs) if ".ci/bench_preflight.py" in r)
    suite_at = next(i for i, r in enumerate(runs) if "pytest tests/hil" in r)
    assert preflight_at < suite_at
    assert '"$RIG_STATION" l7x' in runs[preflight_at]
    assert "--firmware" not in runs[suite_at] and "--board l7x" in runs[suite_at]


def test_a_station_with_simulated_slots_is_refused():
    result = preflight(builtin_configs_dir() / "stations" / "sim.yaml")
    assert result.returncode == 1
    assert "station sim has simulated slots (l7x-1, " in result.stderr


def test_a_real_station_needs_usable_firmware_for_the_board_in_its_catalog(tmp_path):
    empty = preflight(real_station(tmp_path / "a", None))
    assert empty.returncode == 1 and "has no firmware for l7x" in empty.stderr
    app = custom_grbl_app()
    sha = hashlib.sha256(app).hexdigest()
    catalog = (
        "firmware:\n  - name: grbl\n    board: l7x\n    parts:\n"
        f"      - {{file: grbl.bin, offset: 0x10000, sha256: {sha}}}\n"
    )
    station = real_station(tmp_path / "b", catalog)
    missing = preflight(station)
    assert missing.returncode == 1 and "grbl.bin does not exist" in missing.stderr
    (tmp_path / "b" / "firmware" / "grbl.bin").write_bytes(app)
    ok = preflight(station)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"grbl: grbl.bin@0x10000 sha256 {sha} (default boot check)\n"
