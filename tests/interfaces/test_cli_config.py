"""`rig check | schema | boards | stations | relay` as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

RIG = [sys.executable, "-m", "rig.cli"]


def rig(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*RIG, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def env(sim_station_file):
    import os

    return {**os.environ, "RIG_STATION": str(sim_station_file)}


def test_check_passes_on_shipped_configs():
    proc = rig("check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_check_reports_file_line_and_exits_2(tmp_path):
    bad = tmp_path / "boards" / "l7x.yaml"
    bad.parent.mkdir()
    bad.write_text("name: l7x\nname: again\n")
    proc = rig("check", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:2:1:" in proc.stderr
    assert "duplicate key" in proc.stderr


def test_bad_station_is_bad_input_before_anything_moves(tmp_path):
    station = tmp_path / "st.yaml"
    station.write_text(
        "name: st\nbackups: b\nlocks: l\npins: {backend: sim}\nslots:\n"
        "  - {id: a, board: nosuch, simulated: {variant: l7x}}\n"
    )
    proc = rig("relay", "--station", str(station), "--slot", "a", "power", "on")
    assert proc.returncode == 2
    assert f"{station}:6:" in proc.stderr and "nosuch" in proc.stderr


def test_schema_is_json_for_every_kind():
    proc = rig("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert set(schema) == {"board", "station", "catalog"}
    assert "sequences" in json.dumps(schema["board"])


def test_boards_and_stations_list_what_is_configured(env):
    boards = rig("boards", env=env)
    assert boards.returncode == 0 and "l7x" in boards.stdout
    data = json.loads(rig("boards", "--json", env=env).stdout)["boards"]
    l7x = next(b for b in data if b["name"] == "l7x")
    assert l7x["modem_lines"] is False and l7x["relays"] == ["io0", "power"]
    assert {b["name"] for b in data} == {"l7x", "esp32-devkitc"}
    stations = rig("stations", env=env)
    assert stations.returncode == 0 and "l7x-1" in stations.stdout
    slots = json.loads(rig("stations", "--json", env=env).stdout)["slots"]
    assert [s["slot"] for s in slots] == [
        "l7x-1",
        "l7x-2",
        "l7x-3",
        "l7x-4",
        "devkitc-1",
        "devkitc-2",
    ]
    assert slots[0]["relays"] == ["io0=17 low", "power=27 low"]
    assert slots[3]["expected_mac"] == "24:0a:c4:00:00:04"


def test_relay_pulse_and_release_all_on_the_sim_station(env):
    proc = rig("relay", "--slot", "l7x-1", "power", "pulse", "--ms", "20", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "l7x-1: power pulsed for 20 ms" in proc.stderr
    proc = rig("relay", "--release-all", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "devkitc-2: released io0, reset" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slot", "nope", "power", "on"], "no slot 'nope'"),
        (["--slot", "l7x-1", "reset", "on"], "has no 'reset' relay"),
        (["power", "on"], "pick one with --slot"),
        (["--slot", "l7x-1", "power"], "give ROLE and ACTION"),
        (["--release-all", "--slot", "l7x-1"], "takes no slot"),
    ],
)
def test_relay_bad_input_exits_2(env, args, message):
    proc = rig("relay", *args, env=env)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_relay_on_holds_until_ctrl_c_then_releases(env):
    proc = subprocess.Popen(
        [*RIG, "relay", "--slot", "l7x-2", "io0", "on"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr.readline().startswith("station sim: SIMULATED boards")
        assert "io0 on - Ctrl-C to release" in proc.stderr.readline()
        busy = rig("relay", "--slot", "l7x-2", "io0", "off", env=env)
        assert busy.returncode == 1 and "slot l7x-2 is in use by PID" in busy.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "io0 released" in proc.stderr.read()
    finally:
        proc.kill()
