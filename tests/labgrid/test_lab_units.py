"""The lab's pieces that need no coordinator: the exporter config as labgrid reads it, places,
lab stations, and the core rig without labgrid installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import labgrid  # noqa: F401 - the dev extra installs it: missing must fail, not skip
import pytest
from labgrid.remote.config import ResourceConfig

import rig
from rig import config
from rig.labgrid.client import Leased
from rig.labgrid.config import exporter_config, place_specs
from rig.labgrid.station import lab_station_text

MAC = "24:0a:c4:00:00:01"
CHECKOUT = Path(rig.__file__).resolve().parent.parent  # installed editable by `make test`
AWKWARD = "st{{ x }}a#b ## c {% raw %}"  # Jinja delimiters, a line comment, a statement prefix


def _station(tmp_path, directory: str = AWKWARD) -> tuple[config.Station, object]:
    where = tmp_path / directory / "stations"
    where.mkdir(parents=True)
    path = where / "pi-a.yaml"
    path.write_text(
        f"name: pi-a\nbackups: {tmp_path}/b\nlocks: {tmp_path}/l\npins: {{backend: sim}}\nslots:\n"
        "  - {id: l7x-1, board: l7x, relays: {io0: {pin: 17}, power: {pin: 27}},"
        " expected_mac: '24:0a:c4:00:00:01', simulated: {variant: l7x, mac: '24:0a:c4:00:00:01'}}\n"
        "  - {id: devkitc-1, board: esp32-devkitc, relays: {io0: {pin: 5}, reset: {pin: 6}},"
        " simulated: {variant: devkit}}\n"
    )
    return config.load_station(path), path


def test_exporter_config_reads_back_through_labgrids_jinja_loader(tmp_path):
    station, path = _station(tmp_path)
    text = exporter_config(station, path)
    assert all(line.startswith(("##", '"', "  ")) for line in text.splitlines()), text
    out = tmp_path / "exporter.yaml"
    out.write_text(text)
    data = ResourceConfig(str(out)).data
    assert data["l7x-1"]["RigServePort"] == {
        "station": str(path.resolve()),
        "slot": "l7x-1",
        "bind": "127.0.0.1",
        "backup": "auto",
    }
    assert data["l7x-1"]["RigSlot"] == {
        "station": "pi-a",
        "slot": "l7x-1",
        "board": "l7x",
        "relays": "io0,power",
        "expected_mac": "24:0a:c4:00:00:01",
    }
    assert data["devkitc-1"]["RigSlot"]["relays"] == "io0,reset"
    assert "expected_mac" not in data["devkitc-1"]["RigSlot"]


def test_one_place_per_slot_tagged_and_matched(tmp_path):
    station, _ = _station(tmp_path, "plain")
    specs = place_specs(station)
    assert [(s.name, s.tags, s.matches) for s in specs] == [
        (
            "pi-a-l7x-1",
            {"board": "l7x", "station": "pi-a", "slot": "l7x-1"},
            ("pi-a/l7x-1/*",),
        ),
        (
            "pi-a-devkitc-1",
            {"board": "esp32-devkitc", "station": "pi-a", "slot": "devkitc-1"},
            ("pi-a/devkitc-1/*",),
        ),
    ]
    assert place_specs(station, "rack-3")[0].matches == ("rack-3/l7x-1/*",)


def test_leased_places_make_a_station_of_remote_slots(tmp_path):
    leased = [
        Leased("pi-a-l7x-1", "rfc2217://127.0.0.1:4100", "l7x", "pi-a", "l7x-1", MAC, 0.5),
        Leased("pi-b-l7x-1", "rfc2217://127.0.0.1:4200", "l7x", "pi-b", "l7x-1", None, 1.0),
    ]  # fmt: skip
    path = tmp_path / "lab.yaml"
    path.write_text(lab_station_text(leased, backups=str(tmp_path / "b"), locks=str(tmp_path)))
    station = config.load_station(path)
    assert [(s.id, s.board, s.remote, s.expected_mac) for s in station.slots] == [
        ("pi-a-l7x-1", "l7x", "rfc2217://127.0.0.1:4100", "24:0a:c4:00:00:01"),
        ("pi-b-l7x-1", "l7x", "rfc2217://127.0.0.1:4200", None),
    ]


# -- the core without the extra --------------------------------------------------------------------
BLOCKER = textwrap.dedent(
    """
    import sys

    class NoLabgrid:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("labgrid", "grpc"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoLabgrid())
    """
)


def test_the_core_works_without_labgrid_and_says_what_to_install(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    blocked = run("-c", "import labgrid")
    assert "No module named 'labgrid'" in blocked.stderr  # the blocker works
    assert run("-m", "rig.cli", "boards").returncode == 0
    places = run("-m", "rig.cli", "labgrid", "places", "-c", "127.0.0.1:9")
    assert places.returncode == 2, places.stderr
    hint = f"pip install -e '{CHECKOUT}[labgrid]'"  # the extra of the checkout installed here
    assert hint in places.stderr
    assert run("-m", "rig.cli", "labgrid", "exporter-config").returncode == 0  # needs no labgrid
    env["LG_COORDINATOR"] = "127.0.0.1:9"
    lab_run = run("-m", "pytest", "-p", "no:labgrid", "-p", "no:cacheprovider", "--board", "l7x",
                  "--labgrid")  # fmt: skip
    assert lab_run.returncode == 4, lab_run.stdout + lab_run.stderr  # a usage error
    assert hint in lab_run.stderr


def test_a_lab_run_without_a_coordinator_is_a_usage_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # nobody listens there
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:pytest_embedded", "-p", "no:cacheprovider",
         "--board", "l7x", "--lg-coordinator", address],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "GRPC_ENABLE_FORK_SUPPORT": "0"},
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr  # a usage error, no traceback
    assert f"rig lab: no labgrid coordinator at {address}" in result.stderr


# -- which catalog the lab client writes from ----------------------------------------------------
def test_the_lab_clients_catalog_is_its_own_never_the_simulated_stations(tmp_path, monkeypatch):
    """A real lab's boards must never get the simulated station's synthetic images: the drivers
    and `rig flash --lg-coordinator` take firmware from the lab client's catalog only."""
    from labgrid import Target
    from labgrid.resource import NetworkSerialPort

    from rig.labgrid.drivers import RigPowerDriver, RigSlot

    target = Target("main")
    NetworkSerialPort(target, None, host="127.0.0.1", port=4100)
    RigSlot(target, None, station="pi-a", slot="l7x-1", board="l7x")
    power = RigPowerDriver(target, None)  # no station: given: the lab client's catalog
    monkeypatch.setenv("HOME", str(tmp_path))  # the default lab catalog: empty
    monkeypatch.delenv("RIG_LAB_FIRMWARE", raising=False)
    assert power.board_type.firmware == ()
    shipped = config.builtin_configs_dir() / "firmware"  # a lab of simulated Pis (CI)
    monkeypatch.setenv("RIG_LAB_FIRMWARE", str(shipped))
    assert {fw.name for fw in power.board_type.firmware} == {"vendor-l7x", "custom-grbl"}


def test_rig_flash_over_a_lab_checks_the_firmware_name_before_any_lease(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # nobody listens: a lease would fail
    result = subprocess.run(
        [sys.executable, "-m", "rig.cli", "flash", "--board", "l7x", "--firmware", "custom-grbl",
         "--lg-coordinator", address],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "GRPC_ENABLE_FORK_SUPPORT": "0"},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "board l7x has no firmware 'custom-grbl' in the lab's catalog" in result.stderr
    assert "coordinator" not in result.stderr  # refused before talking to the lab


def _export(station: Path):
    """The gated export of the station's slot l7x-1, as `rig labgrid exporter` makes it."""
    from rig.labgrid import export

    return export.RigServeExport(
        {
            "cls": "RigServePort",
            "params": {"station": str(station), "slot": "l7x-1"},
            "avail": False,
        },
        host="127.0.0.1",
    )


def test_an_acquire_rig_serve_cannot_answer_in_labgrids_window_is_refused_and_leaves_it_free(
    tmp_path, monkeypatch
):
    """labgrid's coordinator waits 10 s for an exporter to answer an acquire, then gives up; an
    exporter that answers later holds the resource for the place anyway (until it restarts). A
    rig serve still checking its board after ACQUIRE_WINDOW is stopped and the acquire refused:
    the resource stays free and nothing keeps running."""
    from rig.labgrid import export

    _, path = _station(tmp_path)
    resource = _export(path)
    pid_file = tmp_path / "pid"
    never_serves = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))"
    monkeypatch.setattr(export, "ACQUIRE_WINDOW", 1.0)
    monkeypatch.setattr(
        resource, "_command", lambda: [sys.executable, "-c", f"{never_serves}; time.sleep(60)"]
    )
    with pytest.raises(export.Refused, match=r"pi-a/l7x-1: rig serve did not vouch for the board"):
        resource.acquire("pi-a-l7x-1")
    assert resource.data["acquired"] is None and resource.child is None
    assert not resource.broken  # refused, not broken: the next acquire starts afresh
    assert "within 1 s" in resource.refused
    with pytest.raises(ProcessLookupError):  # stopped (and reaped), not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_a_rig_serve_that_refuses_is_told_apart_from_one_that_overruns(tmp_path, monkeypatch):
    """rig serve refusing a slot (busy, an unvouched board) writes its error, ends its stdout and
    exits a moment later: the acquire is refused with its reason and its exit status, not taken
    for one still checking the board after the window (a full suite in a fresh clone did)."""
    from rig.labgrid import export

    _, path = _station(tmp_path)
    resource = _export(path)
    refuses = (
        "import os, sys, time; sys.stderr.write('failed: slot l7x-1 is in use by PID 4242\\n'); "
        "sys.stderr.flush(); os.close(1); time.sleep(0.5); sys.exit(1)"
    )
    monkeypatch.setattr(resource, "_command", lambda: [sys.executable, "-c", refuses])
    with pytest.raises(export.Refused, match=r"^pi-a/l7x-1: slot l7x-1 is in use by PID 4242$"):
        resource.acquire("pi-a-l7x-1")
    assert resource.data["acquired"] is None and not resource.broken


HOLDS_POWER = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a rig serve that hangs on its way out
from rig import config
from rig.board.station import LiveStation
slot = LiveStation(config.load_station(sys.argv[1])).open_slot("l7x-1")
slot.relays["power"].close()  # the power button held, as during a session
print("SERVE l7x-1 rfc2217://127.0.0.1:4000", flush=True)
time.sleep(60)
"""


def _gpio_station(tmp_path, monkeypatch):
    """A Pi's station whose relays are lines of the fake gpiod kernel, shared through a file
    with the processes this test starts (their `import gpiod` finds the fake on PYTHONPATH):
    like a Pi's kernel, it keeps a line driven after the process that drove it dies. Returns the
    station file and the kernel."""
    from fakes import gpiod as fake_gpiod

    fakes = Path(__file__).parent.parent / "fakes"
    dev = tmp_path / "dev"
    dev.mkdir()
    kernel = fake_gpiod.boot("pi3", dev_dir=dev, state=tmp_path / "gpio-state.json")
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    station = tmp_path / "pi.yaml"
    station.write_text(
        f"name: pi\nbackups: {tmp_path}/b\nlocks: {tmp_path}/l\n"
        f"pins: {{backend: gpiod, chip: {dev / 'gpiochip0'}}}\nslots:\n"
        f"  - {{id: l7x-1, board: l7x, port: {port},\n"
        "      relays: {io0: {pin: 17}, power: {pin: 27}}}\n"
    )
    monkeypatch.setitem(sys.modules, "gpiod", fake_gpiod)  # `import gpiod` here: this kernel
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(fakes), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv(fake_gpiod.STATE_ENV, str(kernel.state_path))
    return station, kernel


def test_a_rig_serve_killed_after_ignoring_sigterm_has_its_relays_released_by_the_exporter(
    tmp_path, monkeypatch, caplog
):
    """On release the export stops rig serve with SIGTERM and kills it if it does not go. A
    killed process releases nothing, and a Pi's kernel keeps the relay line driven: the exporter
    releases the slot's relays itself."""
    from rig.labgrid import export

    station, kernel = _gpio_station(tmp_path, monkeypatch)
    resource = _export(station)
    monkeypatch.setattr(resource, "_command", lambda: [sys.executable, "-c", HOLDS_POWER, station])
    monkeypatch.setattr(export, "STOP_TIMEOUT", 0.5)  # TERM ignored for this long: KILL
    resource.acquire("pi-l7x-1")
    assert resource.port == 4000
    power = kernel.refresh().line("pinctrl-bcm2835", 27)
    assert power.level is False and power.owner == resource.child.pid  # held (active-low input)
    resource.release()
    power = kernel.refresh().line("pinctrl-bcm2835", 27)
    assert power.level is True and power.owner is None  # released by the exporter
    assert resource.child is None and not resource.broken
    said = "rig serve for l7x-1 ended with None; the exporter released its relays (io0=open, "
    said += "power=open)"
    assert said in caplog.messages, caplog.messages


def test_a_rig_serve_that_dies_while_serving_has_its_relays_released_at_the_next_poll(
    tmp_path, monkeypatch
):
    """A rig serve killed while a place holds its slot (the OOM killer, a crash) leaves the
    power relay driven; the exporter's next poll of the resource (every 0.25 s) releases it and
    withdraws the port, instead of leaving the board held until the place is released."""
    station, kernel = _gpio_station(tmp_path, monkeypatch)
    resource = _export(station)
    dies = HOLDS_POWER.replace("time.sleep(60)", "os.kill(os.getpid(), 9)")
    dies = dies.replace("import signal, sys, time", "import os, signal, sys, time")
    monkeypatch.setattr(resource, "_command", lambda: [sys.executable, "-c", dies, station])
    resource.acquire("pi-l7x-1")
    assert resource.port == 4000
    assert resource.child.wait(30) == -9
    assert kernel.refresh().line("pinctrl-bcm2835", 27).level is False  # still held: it died
    resource.poll()
    power = kernel.refresh().line("pinctrl-bcm2835", 27)
    assert power.level is True and power.owner is None  # released by the exporter
    assert resource.child is None and resource.data["params"]["port"] is None  # no port shown
    assert resource.acquired == "pi-l7x-1"  # the place still holds it, until its user releases
