"""A labgrid farm on loopback for the tests: a coordinator on 127.0.0.1 and a free port, and one
`rig labgrid exporter` per simulated station ("Pi"), each serving its slots through `rig serve`.

Everything stops by itself: each child runs in its own session (process group) under a
`timeout`, and :meth:`Farm.close` stops them by group (TERM, then KILL), exporters first so they
stop their `rig serve` children. HOME, XDG_RUNTIME_DIR, the stations' locks, backups and state
live under the farm's directory; GRPC_ENABLE_FORK_SUPPORT=0 (forking from a process that has
started gRPC can abort, as labgrid's own tests note).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rig.config import builtin_configs_dir
from rig.esp32 import format_mac
from rig.images.flash_contents import vendor_l7x_flash
from rig.operations.backups import BackupStore
from rig.sim.parts.efuse import mac_from_seed

RIG = [sys.executable, "-m", "rig.cli"]
CHILD_LIMIT = 300  # s: no farm process outlives this, whatever happens to the test run
READY_TIMEOUT = 30.0
LAB_FIRMWARE = "custom-grbl"  # the one entry of the lab client's catalog
CLIENT_BACKUPS = ".local/share/rig/lab-backups"  # rig.labgrid.station.DEFAULT_BACKUPS under HOME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sim_mac(station: str, slot: str) -> str:
    return format_mac(mac_from_seed(f"l7x:{station}-{slot}"))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(rx.search(line) for line in list(self.lines)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {pattern!r} in:\n{self.text()[-3000:]}")

    def stop(self) -> int | None:
        """TERM the process group, then KILL it if it has not gone within 2 s."""
        self.terminate()
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        return self.proc.returncode

    def terminate(self) -> None:
        """TERM the process group (without waiting: several children stop side by side)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)


class Farm:
    """``stations``: name -> [(slot id, board type), ...]: simulated slots, seeded backups."""

    def __init__(self, root: Path, stations: dict[str, list[tuple[str, str]]]) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = self._env()
        self.children: dict[str, Child] = {}
        self.tests: set[str] = set()  # node ids of the tests that ran on this farm
        self.stations = {name: self._station(name, slots) for name, slots in stations.items()}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LG_", "ESPTOOL_"))}
        home = self.root / "home"
        runtime = self.root / "run"
        for path in (home, runtime):
            path.mkdir(parents=True, exist_ok=True)
        env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            GRPC_ENABLE_FORK_SUPPORT="0",
            RIG_LAB_FIRMWARE=str(self._lab_firmware()),
            LG_COORDINATOR=self.address,
            PYTHONUNBUFFERED="1",
        )
        return env

    def _lab_firmware(self) -> Path:
        """The lab client's catalog: the synthetic custom-grbl, an image the simulated Pis' boards
        understand, and only it (what these tests write; the vendor original is the backups')."""
        shipped = builtin_configs_dir() / "firmware"
        catalog = yaml.safe_load((shipped / "catalog.yaml").read_text())
        entries = [fw for fw in catalog["firmware"] if fw["name"] == LAB_FIRMWARE]
        lab = self.root / "lab-firmware"
        lab.mkdir(parents=True, exist_ok=True)
        for part in entries[0]["parts"]:
            shutil.copy(shipped / part["file"], lab / part["file"])
        (lab / "catalog.yaml").write_text(yaml.safe_dump({"firmware": entries}))
        return lab

    def _station(self, name: str, slots: list[tuple[str, str]]) -> Path:
        base = self.root / name
        lines = [f"name: {name}", f"backups: {base}/backups", f"locks: {base}/locks"]
        lines += ["pins: {backend: sim}", "slots:"]
        pins = iter(range(2, 28))
        flash = vendor_l7x_flash()
        md5 = hashlib.md5(flash).hexdigest()
        for slot, board in slots:
            a, b = next(pins), next(pins)
            if board == "l7x":
                relays = f"{{io0: {{pin: {a}}}, power: {{pin: {b}}}}}"
                sim = f"{{variant: l7x, seed: {name}-{slot}}}"
                # a verified backup of its flash already, on the Pi (serving it only checks it)
                # and in the lab clients' default store (rig flash relies on it, no dump)
                for store in (base / "backups", self.root / "home" / CLIENT_BACKUPS):
                    BackupStore(store).save(
                        sim_mac(name, slot), flash, md5, {"seeded": "tests"}, flash_size=len(flash)
                    )
            else:
                relays = f"{{io0: {{pin: {a}}}, reset: {{pin: {b}}}}}"
                sim = f"{{variant: devkit, seed: {name}-{slot}, vendor_flash: false}}"
            lines.append(f"  - {{id: {slot}, board: {board}, relays: {relays}, simulated: {sim}}}")
        base.mkdir(parents=True, exist_ok=True)
        path = base / "station.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- processes ------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], cwd: Path | None = None) -> Child:
        proc = subprocess.Popen(
            ["timeout", str(CHILD_LIMIT), *args],
            cwd=cwd or self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        child = self.children[name] = Child(name, proc)
        threading.Thread(target=_collect, args=(child,), daemon=True).start()
        return child

    def start(self) -> Farm:
        """The coordinator, the exporters and the places (`rig labgrid places`)."""
        coord = self.root / "coordinator"
        coord.mkdir(exist_ok=True)
        listen = ["-m", "labgrid.remote.coordinator", "-l", self.address]
        self.spawn("coordinator", [sys.executable, *listen], cwd=coord)
        self.children["coordinator"].wait_for(r"Coordinator ready")
        self.write_exporter_configs()
        for name in self.stations:
            self.start_exporter(name)
        self.create_places()  # the coordinator's side: needs no exporter yet
        for name in self.stations:
            self.children[f"exporter-{name}"].wait_for(r"creating poll task")
        return self

    def create_places(self) -> None:
        """`rig labgrid places` for every station: one place per slot, tagged and matched."""
        stations = [arg for path in self.stations.values() for arg in ("--station", str(path))]
        result = self.rig("labgrid", "places", *stations, "-c", self.address)
        assert result.returncode == 0, result.stdout + result.stderr

    def write_exporter_configs(self) -> None:
        """`rig labgrid exporter-config` for each station, side by side."""
        names, procs = list(self.stations), []
        for name in names:
            with (self.root / name / "exporter.yaml").open("w") as out:
                station = ["--station", str(self.stations[name])]
                procs.append(
                    subprocess.Popen(
                        [*RIG, "labgrid", "exporter-config", *station], env=self.env, stdout=out
                    )
                )
        for name, proc in zip(names, procs, strict=True):
            assert proc.wait(timeout=60) == 0, f"exporter-config {name}: exit {proc.returncode}"

    def start_exporter(self, name: str) -> Child:
        """The station's exporter, on the config :meth:`write_exporter_configs` wrote."""
        config = self.root / name / "exporter.yaml"
        args = ["-c", self.address, "-n", name, "--hostname", "127.0.0.1", str(config)]
        return self.spawn(f"exporter-{name}", [*RIG, "labgrid", "exporter", *args])

    def rig(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*RIG, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )

    def serve_log(self, station: str, slot: str) -> str:
        path = self.root / station / "state" / station / "labgrid" / f"{slot}.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        exporters = [child for name, child in self.children.items() if name != "coordinator"]
        for child in exporters:  # the exporters first, all at once: each stops its rig serves
            child.terminate()
        for child in exporters:
            child.stop()
        if "coordinator" in self.children:
            self.children["coordinator"].stop()


def _collect(child: Child) -> None:
    for line in child.proc.stdout:
        child.lines.append(line.rstrip())
