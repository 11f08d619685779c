"""``pytest --board l7x --lg-coordinator HOST:PORT`` (or ``--labgrid`` with ``$LG_COORDINATOR``):
the scripted hardware-in-the-loop suite on boards leased from a labgrid lab.

Before the session starts, the controller reserves places tagged ``board=<type>`` - one per xdist
worker, or ``--slots N`` - waits in the coordinator's queue (``--lab-timeout``, progress on the
terminal), acquires them, and hands the rig's own plugin (:mod:`rig.pytest_plugin`) a lab station
whose slots are those places, remote (:mod:`rig.labgrid.station`): the same suite then runs
through the Pis' ``rig serve``, one place per worker. The lease is held by a hook wrapper around
the whole run, so the places are released and the reservations cancelled on every way out - the
tests passing or failing, a crash, Ctrl-C, and SIGTERM/SIGHUP (turned into exceptions by the
rig's safety net while the lease is held). Only a SIGKILL leaves a place acquired: the
coordinator then shows who holds it (docs/lab.md).

This module is a pytest11 plugin of the rig's distribution, so it must import without labgrid
installed (the ``labgrid`` extra): labgrid is imported only when a lab run is asked for.
``--lg-coordinator`` itself is labgrid's own pytest option.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

from rig.install import install_hint

__all__ = ["pytest_addoption", "pytest_cmdline_main", "pytest_report_header"]

LEASED = pytest.StashKey[list]()
WORKER_KEY = "rig_lab_station"  # the lab station's file, handed to xdist workers


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig-lab", "ESP32 flash rig: boards from a labgrid lab (docs/lab.md)")
    group.addoption(
        "--labgrid",
        action="store_true",
        dest="rig_labgrid",
        help="lease the --board slots from the labgrid coordinator at --lg-coordinator or "
        "$LG_COORDINATOR",
    )
    group.addoption(
        "--slots",
        type=int,
        dest="rig_lab_slots",
        metavar="N",
        help="places to lease (default: one per xdist worker)",
    )
    group.addoption(
        "--lab-timeout",
        type=float,
        default=600.0,
        dest="rig_lab_timeout",
        metavar="SECONDS",
        help="how long to wait in the coordinator's queue for the places (default 600)",
    )


def _address(config: pytest.Config) -> str | None:
    address = config.getoption("lg_coordinator", None)
    if address:
        return address
    if config.getoption("rig_labgrid", False):
        address = os.environ.get("LG_COORDINATOR")
        if not address:
            raise pytest.UsageError("rig: --labgrid needs --lg-coordinator or $LG_COORDINATOR")
        return address
    return None


def _count(config: pytest.Config) -> int:
    slots = config.getoption("rig_lab_slots", None)
    if slots is not None:
        if slots < 1:
            raise pytest.UsageError(f"rig: --slots must be at least 1 (got {slots})")
        return slots
    workers = config.getoption("numprocesses", None)
    if isinstance(workers, int):
        return max(workers, 1)
    if workers in ("auto", "logical"):
        return os.cpu_count() or 1
    return 1


def _board(config: pytest.Config) -> str:
    names = [n for v in config.getoption("rig_board", None) or () for n in v.split(",") if n]
    if len(names) != 1:
        raise pytest.UsageError("rig: a lab run needs exactly one --board NAME (places' tag)")
    if config.getoption("rig_station", None) or config.getoption("rig_slot", None):
        raise pytest.UsageError("rig: --lg-coordinator picks the station and slots from the lab")
    return names[0]


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    worker_station = getattr(config, "workerinput", {}).get(WORKER_KEY)
    if worker_station is not None:  # an xdist worker: the controller holds the lease
        config.option.rig_station = worker_station
        return (yield)
    address = _address(config)
    if address is None or hasattr(config, "workerinput"):
        return (yield)
    board, count = _board(config), _count(config)
    try:
        from rig.hardware.safety import (
            install_safety_net,
            safety_net_installed,
            uninstall_safety_net,
        )
        from rig.labgrid.station import leased_station
    except ImportError as err:
        raise pytest.UsageError(
            f"rig: a lab run needs the labgrid extra: {install_hint('labgrid')} ({err})"
        ) from None
    from rig.errors import RigError

    installed = not safety_net_installed()
    install_safety_net()  # SIGTERM/SIGHUP unwind through the lease's release
    directory = Path(tempfile.gettempdir()) / "rig-lab"
    with contextlib.ExitStack() as stack:
        if installed:
            stack.callback(uninstall_safety_net)
        try:
            path, leased = stack.enter_context(
                leased_station(
                    address,
                    [{"board": board}] * count,
                    directory,
                    timeout=config.getoption("rig_lab_timeout"),
                    backups=config.getoption("rig_backups", None),
                    progress=_progress(config),
                )
            )
        except RigError as err:  # no coordinator, no place in time, an unknown board type
            raise pytest.UsageError(f"rig lab: {err}") from None
        config.option.rig_station = str(path)
        config.stash[LEASED] = leased
        return (yield)


def _progress(config: pytest.Config):
    """Lease progress on the terminal (before the session: past pytest's output capture)."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stdout.write(f"rig {line}\n")
            sys.stdout.flush()

    return say


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: each worker runs on the controller's lab station (its options are parsed again
    from the command line, so the file goes in its workerinput)."""
    station = getattr(node.config.option, "rig_station", None)
    if node.config.stash.get(LEASED, None) is not None and station:
        node.workerinput[WORKER_KEY] = station


def pytest_report_header(config: pytest.Config) -> list[str]:
    leased = config.stash.get(LEASED, None)
    if not leased:
        return []
    return [
        f"rig lab: {s.place} = {s.station}/{s.slot} ({s.board}) at {s.url}, "
        f"acquired after {s.waited:.1f} s"
        for s in leased
    ]
