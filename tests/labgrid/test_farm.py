"""Two simulated Pis as one labgrid farm, on loopback: places, queued reservations, the gated
`rig serve` export, the strategy and drivers, and a Pi that dies mid-job.

The tests share the module's farm (tests/labgrid/conftest.py) and run in file order on one xdist
worker (the repository's conftest.py keeps this module whole); each leaves every place released.
The exporter is killed last, and that test checks that every other test of the module ran on its
farm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import labgrid  # noqa: F401 - the dev extra installs it: missing must fail, not skip
import pytest
from lab_farm import sim_mac
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

from rig import config
from rig.board.station import LiveStation
from rig.errors import OperationError
from rig.hardware.locks import SlotLock
from rig.labgrid.client import Lab, LabError, lease
from rig.labgrid.station import lab_station_text
from rig.operations import hil

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]
L7X_PLACES = {"pi-a-l7x-1", "pi-a-l7x-2", "pi-b-l7x-1"}


def _port_of(lab: Lab, place: str) -> int | None:
    lab.sync()
    ports = [e for e in lab._resources_of(place) if e.cls == "NetworkSerialPort"]
    assert len(ports) == 1
    return ports[0].args.get("port")


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_places_tagged_and_matched_and_no_rig_serve_until_acquired(farm):
    with Lab(farm.address) as lab:
        places = lab.places()
        assert set(places) == {*L7X_PLACES, "pi-b-devkitc-1"}
        assert places["pi-b-l7x-1"].tags == {"board": "l7x", "station": "pi-b", "slot": "l7x-1"}
        assert [str(m) for m in places["pi-a-l7x-2"].matches] == ["pi-a/l7x-2/*"]
        for place in places:
            classes = sorted(e.cls for e in lab._resources_of(place))
            assert classes == ["NetworkSerialPort", "RigSlot"], place
            assert _port_of(lab, place) is None  # gated: nothing listens for anyone


def test_reservations_queue_jobs_and_the_export_is_gated(farm):
    with Lab(farm.address) as lab:
        tokens = [lab.reserve({"board": "l7x"}) for _ in range(3)]
        fourth = None
        try:
            assert _wait(lambda: all(lab.poll(t).state.name == "allocated" for t in tokens))
            allocated = [lab.poll(t).allocations["main"][0] for t in tokens]
            assert set(allocated) == L7X_PLACES  # three jobs, three distinct places
            fourth = lab.reserve({"board": "l7x"})
            # the coordinator schedules a reservation as it creates it: no free L7X, it queues
            assert lab.poll(fourth).state.name == "waiting"

            place = allocated[0]
            lab.acquire(place)  # the exporter starts the slot's rig serve now
            port = _port_of(lab, place)
            assert port
            lab.cancel(tokens[0])  # the first job is done (reservation, then place: as lease())
            lab.release(place)  # ... and the exporter stops rig serve: nothing listens any more
            assert _wait(lambda: _port_of(lab, place) is None)
            assert _wait(lambda: lab.poll(fourth).state.name == "allocated")
            assert lab.poll(fourth).allocations["main"] == [place]
        finally:
            for token in [*tokens, fourth]:
                if token:
                    lab.cancel(token)


def test_a_slot_busy_with_a_local_rig_command_refuses_the_acquire_cleanly(farm):
    station = config.load_station(farm.stations["pi-a"])
    with Lab(farm.address) as lab:
        with LiveStation(station) as local:
            local.open_slot("l7x-2")  # a local `rig` command holds the slot
            with pytest.raises(LabError, match=r"pi-a-l7x-2: pi-a/l7x-2: .*is in use by PID"):
                lab.acquire("pi-a-l7x-2")
        lab.acquire("pi-a-l7x-2")  # the resource is not broken: once free, it works
        try:
            assert _port_of(lab, "pi-a-l7x-2")
        finally:
            lab.release("pi-a-l7x-2")


def test_an_acquire_leaves_the_dump_a_board_needs_to_its_first_connect(farm):
    """labgrid's coordinator gives an acquire 10 s; a dump of a 4 MB L7X at 2 Mbaud takes ~21 s.
    pi-b's devkit has no backup on its Pi yet: the acquire identifies it and checks its flash,
    and leaves the dump to the first connect (tests/operations/test_serve.py)."""
    with Lab(farm.address) as lab:
        lab.acquire("pi-b-devkitc-1")
        try:
            assert _port_of(lab, "pi-b-devkitc-1")
        finally:
            lab.release("pi-b-devkitc-1")
    log = farm.serve_log("pi-b", "devkitc-1")
    deferred = "no verified backup matches the chip (none yet); not dumped yet: the first client"
    assert deferred in log and ": took " not in log, log


def _env_file(farm, place: str, image: str) -> str:
    path = farm.root / f"env-{place}.yaml"
    path.write_text(
        f"options: {{coordinator_address: '{farm.address}'}}\n"
        "imports: [rig.labgrid.drivers]\n"
        "targets:\n  main:\n"
        f"    resources:\n      RemotePlace: {{name: {place}}}\n"
        "    drivers:\n"
        "      RigPowerDriver: {}\n"
        f"      RigFlashDriver: {{backups: '{farm.root}/lab-backups'}}\n"
        f"      RigStrategy: {{image: {image}}}\n"
    )
    return str(path)


def test_strategy_takes_a_remote_l7x_off_flashed_running_with_a_backup_first(farm, monkeypatch):
    from labgrid import Environment

    from rig.operations.backups import BackupStore

    # the drivers' catalog is the lab client's (never the simulated station's by default); these
    # Pis' boards are simulated, so it is the synthetic one
    monkeypatch.setenv("RIG_LAB_FIRMWARE", farm.env["RIG_LAB_FIRMWARE"])
    with lease(farm.address, [{"board": "l7x", "name": "pi-a-l7x-1"}]) as (leased,):
        env = Environment(_env_file(farm, leased.place, "custom-grbl"))
        target = env.get_target("main")
        strategy = target.get_driver("RigStrategy")
        try:
            strategy.transition("off")
            strategy.transition("flashed")
            flash = target.get_driver("RigFlashDriver")
            check = flash.last_backup
            assert check.taken and check.backup.mac == sim_mac("pi-a", "l7x-1"), check
            stored = BackupStore(farm.root / "lab-backups").latest(check.backup.mac)
            assert stored is not None and stored.sha256 == check.backup.sha256
            strategy.transition("running")
            assert strategy.boot.ok and "Grbl 1.3a" in strategy.boot.console
        finally:
            target.deactivate_all_drivers()
            env.cleanup()
            _end_labgrids_place_session()


def _end_labgrids_place_session() -> None:
    """labgrid's RemotePlace resources share a process-wide manager whose coordinator session
    (a stream) outlives the Environment: it would keep the farm's coordinator in its graceful
    shutdown at teardown (up to 5 s), and a later Environment in this process would reuse it."""
    from labgrid.resource.common import ResourceManager
    from labgrid.resource.remote import RemotePlaceManager

    manager = ResourceManager.instances.pop(RemotePlaceManager, None)
    if manager is not None and manager.session is not None:
        manager.loop.run_until_complete(manager.session.stop())
        manager.loop.run_until_complete(manager.session.close())


def test_rig_flash_over_the_lab_reflashes_every_l7x_place_across_pis(farm):
    result = farm.rig(
        "flash", "--board", "l7x", "--firmware", "custom-grbl", "--slots", "pi-a-l7x-2,pi-b-l7x-1",
        "--lg-coordinator", farm.address, "--json", timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "lab: acquired pi-a-l7x-2" in result.stderr
    assert "lab: released pi-b-l7x-1" in result.stderr
    run = json.loads(result.stdout)
    assert run["ok"] and run["counts"] == {"ok": 2}, run  # both boards written, verified, booted
    with Lab(farm.address) as lab:
        assert not any(p.acquired for p in lab.places().values())


HIL_SUITE = Path(__file__).parent.parent / "hil"


def _pytest_env(farm, monkeypatch) -> None:
    for key, value in farm.env.items():
        monkeypatch.setenv(key, value)
    # pytest-embedded's autouse fixtures want a `target`, which labgrid's plugin also defines;
    # hypothesis's plugin only costs these runs its import (~0.3 s a process)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:pytest_embedded -p no:hypothesispytest")


@pytest.mark.timeout(200)
def test_pytest_runs_the_hil_suite_over_the_lab_one_place_per_xdist_worker(
    farm, pytester, monkeypatch, tmp_path
):
    """Two xdist workers, no --slots: the controller leases two places and each worker runs the
    whole HIL suite on a place of its own (on the controller's lab station, handed to it)."""
    for name in ("conftest.py", "test_hil_cycle.py"):
        shutil.copy(HIL_SUITE / name, pytester.path / name)
    _pytest_env(farm, monkeypatch)
    result = pytester.runpytest_subprocess(
        "--board", "l7x", "--lg-coordinator", farm.address, "-n", "2",
        "--backups", str(tmp_path / "hil-backups"), "-p", "no:cacheprovider", "-v",
        timeout=170,
    )  # fmt: skip
    out = result.stdout.str()
    result.assert_outcomes(passed=14)  # the seven steps of the suite, on each place
    leased = dict(
        re.findall(r"rig lab: (\S+) = (pi-[ab]/l7x-\d) \(l7x\) at rfc2217://127\.0\.0\.1", out)
    )
    assert len(leased) == 2 and set(leased) <= L7X_PLACES, out
    workers: dict[str, set[str]] = {}
    for worker, place in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED \S+\[(pi-[ab]-l7x-\d)", out):
        workers.setdefault(place, set()).add(worker)
    assert set(workers) == set(leased), out  # every test ran on a leased place
    assert all(len(w) == 1 for w in workers.values()), workers  # a place stays on its worker
    assert len(set.union(*workers.values())) == 2, workers  # ... and each worker has its own
    for place in leased:
        assert f"test_boot_check_original[{place}]" in out
        assert f"lab: released {place}" in out
    with Lab(farm.address) as lab:
        assert not any(p.acquired for p in lab.places().values())


def test_sigterm_while_queued_releases_the_places_and_cancels_the_reservations(farm, tmp_path):
    """Three places wanted while this test holds one of the three: the run waits in the queue
    holding two; a SIGTERM then gives everything back."""
    (tmp_path / "test_nothing.py").write_text("def test_nothing(board):\n    pass\n")
    with Lab(farm.address) as lab:
        held = lab.reserve({"board": "l7x"})  # allocated, never acquired: nothing starts
        try:
            assert lab.poll(held).state.name == "allocated"
            proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:pytest_embedded",
                 "-p", "no:cacheprovider", "--board", "l7x", "--lg-coordinator", farm.address,
                 "--slots", "3"],
                cwd=tmp_path, env=farm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            lines: list[str] = []
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if sum("rig lab: acquired" in seen for seen in lines) == 2:
                        break
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            text = "".join(lines) + out
            assert proc.returncode != 0, text
            assert text.count("rig lab: released") == 2, text
            assert not any(p.acquired for p in lab.places().values())
            reservations = lab._call("GetReservations", pb2.GetReservationsRequest()).reservations
            assert [r.token for r in reservations] == [held], reservations  # only this test's
        finally:
            lab.cancel(held)


@pytest.fixture(autouse=True)
def _on_the_farm(farm, request):
    farm.tests.add(request.node.nodeid)


def test_killing_an_exporter_mid_job_fails_the_job_and_releases_the_pis_relays(
    farm, tmp_path, request
):
    module = request.node.module
    selected = {item.nodeid for item in request.session.items if item.module is module}
    assert farm.tests == selected, (  # one farm for the whole module: one worker, in file order
        f"tests of this module ran on other farms (other xdist workers): {selected - farm.tests}"
    )
    failure: list[BaseException] = []
    with lease(farm.address, [{"board": "l7x", "name": "pi-b-l7x-1"}]) as leased:
        lab_station = tmp_path / "lab.yaml"
        lab_station.write_text(
            lab_station_text(leased, backups=str(tmp_path / "b"), locks=str(tmp_path / "l"))
        )
        station = config.load_station(lab_station)
        started = threading.Event()

        def job():
            with LiveStation(station) as remote:
                slot = remote.open_slot("pi-b-l7x-1")
                try:
                    with hil.flasher(slot) as session:
                        started.set()
                        for _ in range(200):  # reads until the Pi goes away
                            session.md5(0, 0x400000)
                except OperationError as err:
                    failure.append(err)

        worker = threading.Thread(target=job, daemon=True)
        worker.start()
        assert started.wait(60), "the job never connected"
        exporter = farm.children["exporter-pi-b"]
        os.killpg(exporter.proc.pid, 9)  # the Pi's exporter dies, no chance to clean up
        worker.join(60)
        assert not worker.is_alive(), "the job hung"
    assert failure, "the job did not fail"
    log = farm.serve_log("pi-b", "l7x-1")
    assert _wait(lambda: "relays released, slot unlocked" in farm.serve_log("pi-b", "l7x-1")), log
    assert "stdin closed" in farm.serve_log("pi-b", "l7x-1")
    pi_b = config.load_station(farm.stations["pi-b"])
    SlotLock(pi_b.locks, "pi-b", "l7x-1").acquire().release()  # nothing holds the slot on the Pi
