"""`make bench`: the rig against the UART's physical limit, on the paced simulated station.

Run from the repository: ``python bench/run.py [--quick] [--json FILE]``. Every number comes
from one run on this machine, side by side: the simulated boards pace their UART at baud/10
bytes per second per direction and take datasheet NOR erase/program times
(rig/sim/transport/line.py, rig/sim/parts/flash.py), so what is measured is protocol efficiency,
not the host's speed.

This script is a tool outside the ``rig`` package, so it may build simulated stations directly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rig import config
from rig.board.station import LiveStation
from rig.esp32 import APP_OFFSET
from rig.images import flash_contents, synthetic
from rig.operations.esplog import captured
from rig.operations.session import FlasherSession

HAND_DUMP_S = 402.0  # the seed's measurement: esptool read_flash of 4 MB at 115200 by hand
FLASH = 0x400000


def station(tmp: Path, *, realtime: bool, **slot_changes) -> config.Station:
    base = config.default_station()
    slots = []
    for slot in base.slots:
        sim = slot.simulated.model_copy(update={"realtime": realtime, **slot_changes})
        slots.append(slot.model_copy(update={"simulated": sim}))
    return base.model_copy(
        update={"locks": tmp / "locks", "backups": tmp / "backups", "slots": tuple(slots)}
    )


def dump(tmp: Path, baud: int, size: int, *, realtime: bool = True, slot: str = "l7x-1") -> dict:
    """Read ``size`` bytes at ``baud`` through the rig's flasher session; payload bytes/s."""
    with LiveStation(station(tmp, realtime=realtime)) as st:
        live = st.open_slot(slot)
        with FlasherSession(live.board, bauds=[baud]) as session:
            t0 = time.monotonic()
            data = session.read(0, size)
            seconds = time.monotonic() - t0
        assert data == st.simulated_board(slot).flash.read(0, size), "dump differs from flash"
    rate = size / seconds
    return {
        "baud": baud,
        "bytes": size,
        "seconds": round(seconds, 3),
        "bytes_per_s": round(rate),
        "efficiency": round(rate / (baud / 10), 4),
    }


def restore(tmp: Path, baud: int) -> dict:
    """App-only change, then: the rig's verified fast restore vs stock esptool write-flash of
    the whole 4 MB image, both end to end (download mode by relays, connect, write, verify)."""
    original = flash_contents.vendor_l7x_flash()
    image = tmp / "backup.bin"
    image.write_bytes(original)
    app = synthetic.custom_grbl_app()
    result = {"baud": baud, "image_bytes": len(original)}
    with LiveStation(station(tmp, realtime=True)) as st:
        live = st.open_slot("l7x-2")
        sim = st.simulated_board("l7x-2")
        for who in ("rig", "esptool"):
            sim.flash.preload(0, original)
            sim.flash.preload(APP_OFFSET, app + b"\xff" * 0x1000)  # the app changed
            t0 = time.monotonic()
            if who == "rig":
                with FlasherSession(live.board, bauds=[baud]) as session:
                    stats = session.write(0, original)
                result["rig_written"] = stats.written
            else:
                live.board.download_mode()
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "esptool",
                        "--chip",
                        "esp32",
                        "--port",
                        live.board.port.resolve(),
                        "--before",
                        "no-reset",
                        "--after",
                        "no-reset",
                        "-b",
                        str(baud),
                        "write-flash",
                        "0",
                        str(image),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                if proc.returncode != 0:
                    raise RuntimeError(proc.stdout + proc.stderr)
            result[f"{who}_s"] = round(time.monotonic() - t0, 2)
            assert sim.flash.view() == original, f"{who}: flash differs after the restore"
    result["ratio"] = round(result["rig_s"] / result["esptool_s"], 3)
    return result


def batch_scaling(tmp: Path, counts: tuple[int, ...], baud: int) -> list[dict]:
    """`rig flash` of the custom firmware on 1, 2, 4, 8 paced L7X boards at once: wall time vs
    one board, and the host CPU each board's worker process used (rig + esptool + its
    simulated board, which a real bench does not pay for)."""
    import hashlib

    from rig.esp32 import format_mac
    from rig.operations.backups import BackupStore
    from rig.operations.batch import plan_batch, run_batch
    from rig.sim.parts.efuse import mac_from_seed

    base = station(tmp, realtime=True)
    template = base.slots[0]
    board = base.board_of(template).model_copy(
        update={"serial": base.board_of(template).serial.model_copy(update={"bauds": (baud,)})}
    )
    slots = []
    for i in range(max(counts)):
        relays = {
            role: ch.model_copy(update={"pin": 100 + 2 * i + n})
            for n, (role, ch) in enumerate(template.relays.items())
        }
        sim = template.simulated.model_copy(update={"seed": f"bench-{i}"})
        slots.append(
            template.model_copy(update={"id": f"l7x-{i + 1}", "relays": relays, "simulated": sim})
        )
    flash = flash_contents.vendor_l7x_flash()
    store = BackupStore(tmp / "backups")
    for i in range(max(counts)):  # every board already has its verified backup
        mac = format_mac(mac_from_seed(f"l7x:bench-{i}"))
        store.save(mac, flash, hashlib.md5(flash).hexdigest(), {}, flash_size=len(flash))
    results = []
    for n in counts:
        st = base.model_copy(
            update={
                "slots": tuple(slots[:n]),
                "boards": {**base.boards, "l7x": board},
            }
        )
        # Simulated boards keep their flash between runs (in the state dir, as hardware keeps
        # it): without this, the boards of the previous run hold custom-grbl, unlike their
        # seeded backups, and the backup policy dumps 4 MB before writing.
        shutil.rmtree(st.state_dir / "sim-flash", ignore_errors=True)
        plan = plan_batch(st, "l7x", "custom-grbl", [s.id for s in slots[:n]], jobs=n)
        cpu0 = machine_cpu_seconds()
        t0 = time.monotonic()
        report = run_batch(plan, handle_signals=False)
        seconds = time.monotonic() - t0
        cpu = machine_cpu_seconds() - cpu0
        if not report.ok:
            raise RuntimeError(report.summary())
        dumped = [b.slot for b in report.boards if b.backup_taken]
        if dumped:  # a 4 MB dump is not what this measures
            raise RuntimeError(f"{n} boards: {', '.join(dumped)} dumped: flash unlike its backup")
        results.append(
            {
                "boards": n,
                "baud": baud,
                "seconds": round(seconds, 2),
                "cpu_s_per_board": round(cpu / n, 2),
                "core_share_per_board": round(cpu / n / seconds, 3),
            }
        )
    one = results[0]["seconds"]
    for r in results:
        r["vs_one_board"] = round(r["seconds"] / one, 3)
    return results


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (/proc/stat): the batch workers are children of
    multiprocessing's fork server, out of reach of getrusage. Run the bench on a quiet machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def profile_read(tmp: Path) -> dict:
    """Where an unpaced 4 MB read spends its time (cProfile, top functions)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    with LiveStation(station(tmp, realtime=False)) as st:
        live = st.open_slot("l7x-3")
        with FlasherSession(live.board, bauds=[921600]) as session:
            prof.enable()
            session.read(0, FLASH)
            prof.disable()
    stats = pstats.Stats(prof).sort_stats("tottime")
    top = []
    for (file, line, fn), (_cc, _nc, tt, _ct, _callers) in list(stats.stats.items()):
        top.append((tt, f"{Path(file).name}:{line} {fn}"))
    top.sort(reverse=True)
    return {"host_side_top": [{"seconds": round(t, 3), "where": w} for t, w in top[:5]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller transfers (< 2 minutes)")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    console = Console()
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}",
        "quick": args.quick,
    }
    sizes = (
        {115200: 0x10000, 921600: 0x40000, 2000000: 0x80000}
        if args.quick
        else {115200: 0x100000, 921600: 0x100000, 2000000: 0x100000}
    )
    with tempfile.TemporaryDirectory() as tmp_dir, captured():
        tmp = Path(tmp_dir)
        results["dump_efficiency"] = [dump(tmp, b, n) for b, n in sizes.items()]
        results["l7x_dump_4mb"] = dump(tmp, 2000000, FLASH)
        results["l7x_dump_4mb"]["vs_hand_s"] = HAND_DUMP_S
        results["restore_app_change"] = restore(tmp, 921600 if args.quick else 2000000)
        results["unpaced_4mb_read"] = dump(tmp, 921600, FLASH, realtime=False, slot="l7x-4")
        results["batch_scaling"] = batch_scaling(tmp, (1, 2, 4, 8), 921600)
        if not args.quick:
            results["profile"] = profile_read(tmp)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")

    table = Table(title=f"rig bench{' (quick)' if args.quick else ''}: {results['machine']}")
    for column in ("measure", "result", "target"):
        table.add_column(column)
    for d in results["dump_efficiency"]:
        table.add_row(
            f"dump {d['bytes'] >> 10} KB at {d['baud']}",
            f"{d['efficiency']:.3f} of baud/10 ({d['bytes_per_s'] / 1024:.1f} KiB/s)",
            ">= 0.95",
        )
    d = results["l7x_dump_4mb"]
    table.add_row("L7X 4 MB dump at 2 Mbaud", f"{d['seconds']:.1f} s (by hand: 402 s)", "-")
    r = results["restore_app_change"]
    table.add_row(
        f"restore after app change ({r['baud']})",
        f"rig {r['rig_s']} s vs esptool {r['esptool_s']} s = {r['ratio']}",
        "<= 0.5",
    )
    for b in results["batch_scaling"]:
        table.add_row(
            f"rig flash, {b['boards']} boards at {b['baud']}",
            f"{b['seconds']} s = {b['vs_one_board']} x one board; "
            f"{b['core_share_per_board']:.0%} of a core per board",
            "8: <= 1.2x, <= 15%",
        )
    u = results["unpaced_4mb_read"]
    table.add_row("unpaced 4 MB read", f"{u['seconds']:.1f} s", "<= 10 s")
    console.print(table)
    console.print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
