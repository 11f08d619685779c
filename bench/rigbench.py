"""What the bench scenarios share: paced simulated stations, stock esptool as a process, and
contenders run side by side.

Contenders of one scenario run at the same time, each on its own paced simulated board: the
boards pace their UART and flash in wall-clock time and mostly wait, so this keeps `make bench
QUICK=1` short; what it costs is the CPU the contenders share (a few percent of a core each, all
contenders alike).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from rig import config

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
SERIALS = REPO / ".venv" / "serial-packages"  # pyserial 3.5 and pyserial-labgrid (Makefile)


def l7x_station(
    root: Path, slots: dict[str, dict], *, bauds: tuple[int, ...] | None = None
) -> config.Station:
    """A station of paced simulated L7X slots: ``slots`` maps each slot id to its ``simulated``
    overrides (``chip_costs``, ``max_baud``, ``vendor_flash``...); ``bauds``: the board type's
    baud ladder instead of the shipped one."""
    base = config.default_station()
    template = base.slots[0]
    made = []
    for i, (slot_id, changes) in enumerate(slots.items()):
        relays = {
            role: channel.model_copy(update={"pin": 100 + 2 * i + n})
            for n, (role, channel) in enumerate(template.relays.items())
        }
        sim = template.simulated.model_copy(update={"seed": slot_id, "realtime": True, **changes})
        made.append(template.model_copy(update={"id": slot_id, "relays": relays, "simulated": sim}))
    boards = dict(base.boards)
    if bauds is not None:
        board = base.board_of(template)
        serial = board.serial.model_copy(update={"bauds": bauds})
        boards[board.name] = board.model_copy(update={"serial": serial})
    return base.model_copy(
        update={
            "locks": root / "locks",
            "backups": root / "backups",
            "slots": tuple(made),
            "boards": boards,
        }
    )


def side_by_side(jobs: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run the contenders at once; their results by name (the first failure is raised)."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.monotonic()
    fn()
    return round(time.monotonic() - t0, 2)


def esptool(
    port: str,
    *args: str,
    baud: int,
    before: str = "no-reset",
    after: str = "no-reset",
    serial_package: str | None = None,
    strap: Callable[[], object] | None = None,
) -> float:
    """Stock esptool (``python -m esptool``, its own process, as a user runs it): seconds from
    start to exit, with ``strap`` (the relays putting the board into download mode, as the rig's
    own connect does) timed before it. ``serial_package``: run it with that copy of ``serial``
    (``pyserial`` 3.5, what ``pip install esptool`` brings, or ``pyserial-labgrid``); default
    the venv's."""
    t0 = time.monotonic()
    if strap is not None:
        strap()
    env = dict(os.environ)
    if serial_package is not None:
        env["PYTHONPATH"] = str(SERIALS / serial_package)
    command = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port]
    command += ["--before", before, "--after", after, "-b", str(baud), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}:\n{proc.stdout}\n{proc.stderr}")
    return round(seconds, 2)


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (/proc/stat): the batch workers are children of
    multiprocessing's fork server, out of reach of getrusage. Run the bench on a quiet machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
