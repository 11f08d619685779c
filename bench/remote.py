"""(6) The remote path: stock esptool with its default reset (DTR/RTS) over ``rfc2217://``,
through ``rig serve`` (relays strap an L7X) and through the simulator's RFC 2217 transport (a
devkit's auto-reset circuit), against the same commands on a local port (download mode by
relays, ``--before no-reset``). Each path runs read-flash, write-flash and verify-flash of
``size`` bytes, with pyserial 3.5 (what ``pip install esptool`` brings) and with
pyserial-labgrid (what the lab extra installs) as the client's ``serial``."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from rigbench import esptool, l7x_station, side_by_side

from rig.board.station import LiveStation
from rig.operations.serve import SlotServer
from rig.sim.board import SimBoard
from rig.sim.rfc2217 import Rfc2217Endpoint

ADDRESS = 0x100000
PACKAGES = ("pyserial", "pyserial-labgrid")


def remote(root: Path, size: int, baud: int, packages: tuple[str, ...] = PACKAGES) -> dict:
    data = random.Random(16).randbytes(size)  # incompressible: the write moves every byte
    payload = root / "remote.bin"
    payload.write_bytes(data)
    out = {pkg: root / f"read-{pkg}.bin" for pkg in ("local", *packages)}

    def session(url: str, reset: bool, out_file: Path, pkg: str | None, strap=None) -> dict:
        """read, write, verify: seconds of each esptool run."""
        opts = {"before": "default-reset", "after": "hard-reset"} if reset else {}
        times = {}
        for what, args in (
            ("read", ["read-flash", hex(ADDRESS), hex(size), str(out_file)]),
            ("write", ["write-flash", hex(ADDRESS), str(payload)]),
            ("verify", ["verify-flash", hex(ADDRESS), str(payload)]),
        ):
            # the local path's reset: download mode by relays, timed with it
            times[what] = esptool(url, *args, baud=baud, serial_package=pkg, strap=strap, **opts)
        times["total"] = round(sum(times.values()), 2)
        return times

    slots = {"local": {}, **{f"serve-{pkg}": {} for pkg in packages}}
    with LiveStation(l7x_station(root, slots)) as st:
        lives = {slot: st.open_slot(slot) for slot in slots}
        for slot in slots:
            lives[slot].close()  # rig serve locks the slot per client; local opens it below
        lock = threading.Lock()  # the servers open and close slots of one station
        servers = {
            pkg: SlotServer(
                st, f"serve-{pkg}", station_lock=lock, backup_mode="skip", log=lambda _l: None
            )
            for pkg in packages
        }
        boards = {pkg: SimBoard("devkit", seed=f"bench-{pkg}", realtime=True, boot="flash")
                  for pkg in packages}  # fmt: skip
        endpoints = {pkg: Rfc2217Endpoint(boards[pkg]) for pkg in packages}
        try:
            for server in servers.values():
                server.start()
            local = st.open_slot("local")
            paths = {
                "local": lambda: session(
                    local.board.port.resolve(), False, out["local"], None, local.board.download_mode
                )
            }
            for pkg in packages:
                paths[f"sim_rfc2217/{pkg}"] = lambda pkg=pkg: session(
                    endpoints[pkg].url, True, out[pkg], pkg
                )
                paths[f"rig_serve/{pkg}"] = lambda pkg=pkg: session(
                    servers[pkg].url, True, root / f"serve-{pkg}.bin", pkg
                )
            # One after the other, except pyserial 3.5's paths: they wait in the client (see
            # docs/remote.md "Speed"), beside the others, so the bench stays short.
            slow = {name: job for name, job in paths.items() if name.endswith("/pyserial")}
            done = side_by_side(
                {**slow, "rest": lambda: {n: job() for n, job in paths.items() if n not in slow}}
            )
            done |= done.pop("rest")
        finally:
            for server in servers.values():
                server.close()
            for endpoint in endpoints.values():
                endpoint.close()
            for board in boards.values():
                board.close()
    local_total = done["local"]["total"]
    for times in done.values():
        times["vs_local"] = round(times["total"] / local_total, 3)
    return {"bytes": size, "baud": baud, "paths": done}


def serve_start(root: Path) -> dict:
    """(7) ``rig serve``'s start-up check of a paced L7X whose flash no verified backup holds
    yet, as labgrid's exporter runs it on an acquire: with ``--defer-backup`` (identify and the
    chip's whole-flash MD5; the first connect dumps) and without (the dump first). labgrid's
    coordinator waits 10 s for an acquire; the gated export refuses one whose check is not done
    within its ACQUIRE_WINDOW (rig/labgrid/export.py). In-process: ``rig serve``'s own start-up
    (Python, imports) comes on top."""
    seconds = {}
    for deferred in (True, False):
        where = root / ("deferred" if deferred else "dumped")
        with LiveStation(l7x_station(where, {"l7x-1": {}})) as st:
            server = SlotServer(st, "l7x-1", log=lambda _l: None, defer_backup=deferred)
            try:
                t0 = time.monotonic()
                check = server.check()
                seconds["deferred" if deferred else "dumped"] = round(time.monotonic() - t0, 2)
                assert check.deferred == deferred and check.taken != deferred, check
            finally:
                server.close()
    return {**seconds, "coordinator_s": 10.0}
