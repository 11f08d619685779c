"""The bench's scenarios, each the rig against stock esptool (or the wire) on paced simulated L7X
boards with chip-side costs modelled (rig.sim.loader.costs; ``scales`` runs them at other
multiples of the estimates to show how much the result depends on them)."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from rigbench import esptool, l7x_station, machine_cpu_seconds, side_by_side, timed

from rig.board.station import LiveStation
from rig.esp32 import APP_OFFSET, format_mac
from rig.images import flash_contents, synthetic
from rig.operations.backups import BackupStore
from rig.operations.safeguards import take_backup
from rig.operations.session import FlasherSession

FLASH = 0x400000


def read_efficiency(root: Path, sizes: dict[int, int]) -> dict:
    """The rig's read (flasher session, no blank-skip) against the wire at each baud, and a 4 MB
    read on the unpaced simulator (what the tests pay per 4 MB)."""
    out: dict = {"paced": []}
    slots = {f"b{baud}": {} for baud in sizes} | {"unpaced": {"realtime": False}}
    with LiveStation(l7x_station(root, slots)) as st:
        for baud, size in sizes.items():
            with FlasherSession(st.open_slot(f"b{baud}").board, bauds=[baud]) as session:
                seconds = timed(lambda s=session, n=size: s.read(0, n))
            rate = size / seconds
            out["paced"].append({"baud": baud, "bytes": size, "seconds": seconds,
                                 "efficiency": round(rate / (baud / 10), 3)})  # fmt: skip
        with FlasherSession(st.open_slot("unpaced").board, bauds=[921600]) as session:
            out["unpaced_4mb_read_s"] = timed(lambda: session.read(0, FLASH))
    return out


def wire_seconds(size: int, baud: int) -> float:
    """The UART's bound for ``size`` payload bytes at ``baud`` (8N1: baud/10 bytes/s)."""
    return size * 10 / baud


def dump(root: Path, baud: int, scales: tuple[float, ...]) -> dict:
    """(1) The L7X vendor flash dumped at ``baud``: the rig's verified backup (blank-skip, whole-
    flash chip MD5) vs the wire time of the whole flash vs stock ``esptool read-flash 0 ALL``."""
    slots = {f"rig-x{s}": {"chip_costs": s} for s in scales} | {"esptool": {}}
    flash = flash_contents.vendor_l7x_flash()
    with LiveStation(l7x_station(root, slots, bauds=(baud,))) as st:
        lives = {slot: st.open_slot(slot) for slot in slots}
        store = BackupStore(root / "backups")

        def rig(slot: str) -> dict:
            t0 = time.monotonic()
            with FlasherSession(lives[slot].board) as session:
                t1 = time.monotonic()
                result = take_backup(session, store, {"slot": slot})
                seconds = time.monotonic() - t1
            if result.backup.read() != flash:
                raise RuntimeError(f"{slot}: the backup differs from the flash")
            return {
                "seconds": round(seconds, 2),
                "with_connect_s": round(time.monotonic() - t0, 2),
                "bytes_read": result.transfer.size,
            }

        def stock() -> float:
            out = root / "esptool-dump.bin"
            board = lives["esptool"].board
            seconds = esptool(board.port.resolve(), "read-flash", "0", "ALL", str(out), baud=baud,
                              strap=board.download_mode)  # fmt: skip
            if out.read_bytes() != flash:
                raise RuntimeError("esptool's dump differs from the flash")
            return seconds

        # The rig beside esptool, then the rig at the other cost scales beside each other.
        done = side_by_side({"x1.0": lambda: rig("rig-x1.0"), "esptool": stock})
        done |= side_by_side({f"x{s}": (lambda s=s: rig(f"rig-x{s}")) for s in scales if s != 1})
    wire = wire_seconds(FLASH, baud)
    rig_1 = done["x1.0"]
    return {
        "baud": baud,
        "bytes": FLASH,
        "wire_s": round(wire, 2),
        "rig_s": rig_1["seconds"],
        "rig_with_connect_s": rig_1["with_connect_s"],
        "bytes_read": rig_1["bytes_read"],
        # the least a dump that reads only non-blank 64 KB blocks can take, in wire time
        "floor_vs_wire": round(rig_1["bytes_read"] / FLASH, 3),
        "esptool_read_flash_s": done["esptool"],
        "vs_wire": round(rig_1["seconds"] / wire, 3),
        "sensitivity": {
            f"x{s}": round(done[f"x{s}"]["seconds"] / wire, 3) for s in scales if s != 1.0
        },
    }


def restore(root: Path, baud: int, scales: tuple[float, ...]) -> dict:
    """(2) The app changed (custom GRBL over the vendor app); put the vendor flash back: the
    rig's verified fast write vs stock ``esptool write-flash`` of the 4 MB image, with
    ``--diff-with`` the previous image (what is on the chip now, as its docs say) and with
    ``--skip-flashed``. End to end: download mode by relays, connect, write, verify."""
    original = flash_contents.vendor_l7x_flash()
    app = synthetic.custom_grbl_app()
    changed = bytearray(original)
    changed[APP_OFFSET : APP_OFFSET + len(app) + 0x1000] = app + b"\xff" * 0x1000
    image, previous = root / "backup.bin", root / "previous.bin"
    image.write_bytes(original)
    previous.write_bytes(changed)
    modes = {
        "write_flash": [],
        "diff_with": ["--diff-with", str(previous)],
        "skip_flashed": ["--skip-flashed"],
    }
    slots = {f"rig-x{s}": {"chip_costs": s} for s in scales}
    slots |= {f"diff_with-x{s}": {"chip_costs": s} for s in scales if s != 1.0}
    slots |= {mode: {} for mode in modes}
    with LiveStation(l7x_station(root, slots, bauds=(baud,))) as st:
        lives = {slot: st.open_slot(slot) for slot in slots}
        for slot in slots:
            st.simulated_board(slot).flash.preload(0, bytes(changed))
        written: dict[str, int] = {}

        def rig(slot: str) -> float:
            def run() -> None:
                with FlasherSession(lives[slot].board) as session:
                    written[slot] = session.write(0, original).written

            return timed(run)

        def stock(slot: str, mode: str) -> float:
            board = lives[slot].board
            # --diff-with takes several files: the options go after the address and image
            return esptool(board.port.resolve(), "write-flash", "0", str(image), *modes[mode],
                           baud=baud, strap=board.download_mode)  # fmt: skip

        # The rig and --diff-with (the close contest) one after the other, beside the two
        # long full writes: the ratio is not skewed by CPU shared between them.
        close = [(f"rig-x{s}", f"diff_with-x{s}" if s != 1.0 else "diff_with") for s in scales]

        def one_by_one() -> dict[str, float]:
            times = {}
            for rig_slot, diff_slot in close:
                times[rig_slot] = rig(rig_slot)
                times[diff_slot] = stock(diff_slot, "diff_with")
            return times

        jobs = {
            mode: (lambda mode=mode: stock(mode, mode)) for mode in ("write_flash", "skip_flashed")
        }
        done = side_by_side({**jobs, "close": one_by_one})
        done |= done.pop("close")
        for slot in slots:
            if st.simulated_board(slot).flash.view() != original:
                raise RuntimeError(f"{slot}: the flash differs from the image after the restore")
    best_mode = min(modes, key=lambda mode: done[mode])
    result = {
        "baud": baud,
        "image_bytes": len(original),
        "rig_s": done["rig-x1.0"],
        "rig_written": written["rig-x1.0"],
        "esptool_write_flash_s": done["write_flash"],
        "diff_with": {"seconds": done["diff_with"]},
        "skip_flashed": {"seconds": done["skip_flashed"]},
        "esptool_best": best_mode,
        "vs_esptool_best": round(done["rig-x1.0"] / done[best_mode], 3),
        "vs_write_flash": round(done["rig-x1.0"] / done["write_flash"], 3),
        "sensitivity": {},
    }
    for s in scales:
        if s != 1.0:
            rig_s, diff_s = done[f"rig-x{s}"], done[f"diff_with-x{s}"]
            result["sensitivity"][f"x{s}"] = {
                "rig_s": rig_s,
                "diff_with_s": diff_s,
                "vs_diff_with": round(rig_s / diff_s, 3),
            }
    return result


def first_flash(root: Path, baud: int) -> dict:
    """(3) A full 4 MB image (custom GRBL, the rest erased) onto an erased chip: the rig
    (compares by chip MD5, writes what differs, compressed) vs stock ``esptool write-flash``
    (writes all 4 MB, compressed)."""
    image_bytes = flash_contents.custom_grbl_flash()
    image = root / "first.bin"
    image.write_bytes(image_bytes)
    slots = {"rig": {"vendor_flash": False}, "esptool": {"vendor_flash": False}}
    with LiveStation(l7x_station(root, slots, bauds=(baud,))) as st:
        lives = {slot: st.open_slot(slot) for slot in slots}

        def rig() -> float:
            def run() -> None:
                with FlasherSession(lives["rig"].board) as session:
                    session.write(0, image_bytes)

            return timed(run)

        def stock() -> float:
            board = lives["esptool"].board
            return esptool(board.port.resolve(), "write-flash", "0", str(image), baud=baud,
                           strap=board.download_mode)  # fmt: skip

        done = side_by_side({"rig": rig, "esptool": stock})
        for slot in slots:
            if st.simulated_board(slot).flash.view() != image_bytes:
                raise RuntimeError(f"{slot}: the flash differs from the image")
    return {
        "baud": baud,
        "image_bytes": len(image_bytes),
        "rig_s": done["rig"],
        "esptool_s": done["esptool"],
        "ratio": round(done["rig"] / done["esptool"], 3),
    }


def batch_scaling(root: Path, counts: tuple[int, ...], baud: int) -> list[dict]:
    """(4) `rig flash` of the custom firmware on N paced L7X boards at once: wall time vs one
    board, and the host CPU each board's worker process used (rig + esptool + its simulated
    board, which a real bench does not pay for)."""
    from rig.operations.batch import plan_batch, run_batch
    from rig.sim.parts.efuse import mac_from_seed

    ids = [f"l7x-{i + 1}" for i in range(max(counts))]
    base = l7x_station(root, {slot: {} for slot in ids}, bauds=(baud,))
    flash = flash_contents.vendor_l7x_flash()
    store = BackupStore(root / "backups")
    for slot in ids:  # every board already has its verified backup
        mac = format_mac(mac_from_seed(f"l7x:{slot}"))
        store.save(mac, flash, hashlib.md5(flash).hexdigest(), {}, flash_size=len(flash))
    results = []
    for n in counts:
        st = base.model_copy(update={"slots": base.slots[:n]})
        # Simulated boards keep their flash between runs (in the state dir, as hardware keeps
        # it): without this, the boards of the previous run hold custom-grbl, unlike their
        # seeded backups, and the backup policy dumps before writing.
        shutil.rmtree(st.state_dir / "sim-flash", ignore_errors=True)
        plan = plan_batch(st, "l7x", "custom-grbl", ids[:n], jobs=n)
        cpu0 = machine_cpu_seconds()
        t0 = time.monotonic()
        report = run_batch(plan, handle_signals=False)
        seconds = time.monotonic() - t0
        cpu = machine_cpu_seconds() - cpu0
        if not report.ok:
            raise RuntimeError(report.summary())
        dumped = [b.slot for b in report.boards if b.backup_taken]
        if dumped:  # a dump is not what this measures
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
    for r in results:
        r["vs_one_board"] = round(r["seconds"] / results[0]["seconds"], 3)
    return results


def fallback(root: Path, size: int) -> dict:
    """(5) A bridge that cannot do 2 Mbaud (its divisor lands off-rate): the session's switch
    fails its register check, it resets and reconnects at 921600. Against a board connected at
    921600 directly: the time lost to the fallback, for a connect plus a ``size`` read."""
    slots = {"direct": {}, "fallback": {"max_baud": 921600}}
    ladders = {"direct": [921600], "fallback": [2000000, 921600]}
    with LiveStation(l7x_station(root, slots)) as st:
        lives = {slot: st.open_slot(slot) for slot in slots}

        def run(slot: str) -> dict:
            t0 = time.monotonic()
            with FlasherSession(lives[slot].board, bauds=ladders[slot]) as session:
                connect = time.monotonic() - t0
                session.read(0, size)
                baud = session.identity.baud
            return {"connect_s": round(connect, 2), "total_s": round(time.monotonic() - t0, 2),
                    "baud": baud}  # fmt: skip

        done = side_by_side({slot: (lambda slot=slot: run(slot)) for slot in slots})
    return {
        "read_bytes": size,
        "direct": done["direct"],
        "fallback": done["fallback"],
        "lost_s": round(done["fallback"]["total_s"] - done["direct"]["total_s"], 2),
    }
