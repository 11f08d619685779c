"""`make bench`: the rig against the UART's physical limit and against stock esptool, side by
side, on the paced simulated station.

Run from the repository: ``python bench/run.py [--quick] [--json FILE]``. Every number comes
from one run on this machine: the simulated boards pace their UART at baud/10 bytes per second
per direction, take datasheet NOR erase/program times (rig/sim/transport/line.py,
rig/sim/parts/flash.py) and spend the chip-side time of flash reads and MD5s
(rig/sim/loader/costs.py: estimates; the dump and restore also run at half and double them),
so what is measured is protocol efficiency, not the host's speed.

This script is a tool outside the ``rig`` package, so it may build simulated stations directly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules

import remote  # noqa: E402
import scenarios  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rig.operations.esplog import captured  # noqa: E402

SCALES = (0.5, 1.0, 2.0)  # multiples of the chip-side cost estimates


def run(quick: bool) -> dict:
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}",
        "quick": quick,
    }
    steps = {
        "read_efficiency": lambda root: scenarios.read_efficiency(
            root,
            {921600: 0x20000, 2000000: 0x40000} if quick else {921600: 0x100000, 2000000: 0x100000},
        ),
        "dump": lambda root: scenarios.dump(root, 2000000, SCALES),
        "restore_app_change": lambda root: scenarios.restore(root, 2000000, SCALES),
        "first_flash": lambda root: scenarios.first_flash(root, 2000000),
        "batch_scaling": lambda root: scenarios.batch_scaling(
            root, (1, 16) if quick else (1, 2, 4, 8, 16), 921600
        ),
        "fallback": lambda root: scenarios.fallback(root, 0x40000 if quick else 0x100000),
        # pyserial 3.5 costs ~25 s per esptool run over RFC 2217 whatever the size: full only
        "remote": lambda root: remote.remote(
            root,
            0x10000 if quick else 0x100000,
            921600,
            ("pyserial-labgrid",) if quick else remote.PACKAGES,
        ),
        "serve_start": remote.serve_start,
    }
    with tempfile.TemporaryDirectory() as tmp_dir, captured():
        for name, step in steps.items():
            root = Path(tmp_dir) / name
            root.mkdir()
            t0 = time.monotonic()
            results[name] = step(root)
            print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return results


def table(results: dict) -> Table:
    t = Table(title=f"rig bench{' (quick)' if results['quick'] else ''}: {results['machine']}")
    for column in ("scenario", "rig", "side by side", "ratio", "target"):
        t.add_column(column)
    for e in results["read_efficiency"]["paced"]:
        t.add_row(
            f"read {e['bytes'] >> 10} KB at {e['baud']}",
            f"{e['seconds']} s",
            "",
            f"{e['efficiency']} of baud/10",
            ">= 0.95",
        )
    u = results["read_efficiency"]["unpaced_4mb_read_s"]
    t.add_row("unpaced 4 MB read (what tests pay)", f"{u} s", "", "", "<= 10 s")
    d = results["dump"]
    sens = ", ".join(f"{k}: {v}" for k, v in d["sensitivity"].items())
    t.add_row(
        f"(1) L7X vendor flash dump at {d['baud']}",
        f"{d['rig_s']} s ({d['bytes_read'] >> 10} KB read); with connect "
        f"{d['rig_with_connect_s']} s",
        f"wire (4 MB) {d['wire_s']} s; esptool read-flash {d['esptool_read_flash_s']} s",
        f"vs_wire {d['vs_wire']} (costs {sens})",
        "<= 0.5",
    )
    r = results["restore_app_change"]
    sens = ", ".join(f"{k}: {v['vs_diff_with']}" for k, v in r["sensitivity"].items())
    t.add_row(
        f"(2) restore after app change at {r['baud']}",
        f"{r['rig_s']} s ({r['rig_written'] >> 10} KB written)",
        f"write-flash {r['esptool_write_flash_s']} s; --diff-with {r['diff_with']['seconds']} s; "
        f"--skip-flashed {r['skip_flashed']['seconds']} s",
        f"vs_esptool_best ({r['esptool_best']}) {r['vs_esptool_best']} (costs {sens})",
        "<= 0.5",
    )
    f = results["first_flash"]
    t.add_row(
        f"(3) first flash, 4 MB image, erased chip, {f['baud']}",
        f"{f['rig_s']} s",
        f"esptool write-flash {f['esptool_s']} s",
        str(f["ratio"]),
        "-",
    )
    for b in results["batch_scaling"]:
        t.add_row(
            f"(4) rig flash, {b['boards']} boards at {b['baud']}",
            f"{b['seconds']} s",
            f"{b['core_share_per_board']:.0%} of a core per board",
            f"{b['vs_one_board']} x one board",
            "16: <= 1.25",
        )
    fb = results["fallback"]
    t.add_row(
        f"(5) 2 Mbaud -> 921600 fallback, connect + {fb['read_bytes'] >> 10} KB read",
        f"{fb['fallback']['total_s']} s (connect {fb['fallback']['connect_s']} s)",
        f"direct at 921600: {fb['direct']['total_s']} s (connect {fb['direct']['connect_s']} s)",
        f"lost {fb['lost_s']} s",
        "-",
    )
    rm = results["remote"]
    for name, p in rm["paths"].items():
        t.add_row(
            f"(6) {name}: {rm['bytes'] >> 10} KB read / write / verify at {rm['baud']}",
            f"{p['read']} / {p['write']} / {p['verify']} s",
            f"total {p['total']} s",
            f"{p['vs_local']} x local",
            "<= 1.5 (for 1 MB: make bench)" if results["quick"] else "<= 1.5",
        )
    ss = results["serve_start"]
    t.add_row(
        "(7) rig serve's start-up check on an acquire, no backup of the L7X yet",
        f"{ss['deferred']} s (--defer-backup)",
        f"dumping first: {ss['dumped']} s",
        f"labgrid waits {ss['coordinator_s']:.0f} s",
        "<= 7 s (the export's window)",
    )
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller transfers, fewer contenders (~3 minutes)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    results = run(args.quick)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    console = Console(width=200)
    console.print(table(results))
    console.print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
