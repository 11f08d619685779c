"""The fault matrix: one rig operation on a simulated slot with one injected fault, then the
invariants every case must keep, whatever the fault did.

A case (``run_case(kind, seed, workdir)``) builds the shipped simulated station with locks and
backups under ``workdir``, pre-seeds verified backups (so no case spends its time dumping 4 MB),
arms one fault whose parameters (where it strikes, how long, how hard) come from the seed, and
runs what ``rig write`` runs: connect (relays into download mode, stub, baud ladder), require a
verified backup, the verified fast write of a small random image, then a read-back of the
region. After the slot is closed it checks:

* every backup file is still there with its sha256, and every new ``.bin`` is a verified backup
  (sidecar says so and matches); no temp file is left behind;
* no relay is left energised: every pin of the slot is at its inactive level, and the slot lock
  can be taken again;
* the board's flash equals the image, or the rig reported failure (never a success over a
  corrupted flash), and a failure is one of the rig's own errors naming the slot (no stray
  traceback, no raw pyserial exception);
* the simulator recorded no internal error.

The outcome is ``recovered`` (the operation succeeded, the fault notwithstanding) or
``failed_cleanly`` (it failed with a clear error and the invariants hold); any broken invariant
is listed in ``violations``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

IMAGE_OFFSET = 0x10000
IMAGE_SIZE = 0x20000  # 128 KB: short cases, still several 16 KB write blocks and MD5 blocks
SMALL_IMAGE_SIZE = 0x8000  # slow flash: 8 sectors at 0.45 s each
# Rough traffic of one case (measured: a case's `traffic`, kept by RIG_SOAK_JSON): where a seeded
# fault can strike.
TRAFFIC = {"to_chip": 142_000, "to_host": 135_000, "flash": IMAGE_SIZE}

TRANSIENT = ("noise", "drop", "stall", "unplug", "hang")
# kind -> what a healthy rig does about it: "recover" (the operation succeeds) or "fail" (a
# clear failure is the right answer: the bench needs a person).
EXPECTED = {
    "noise": "recover",
    "drop": "recover",
    "stall": "recover",
    "unplug": "recover",
    "hang": "recover",
    "connect_hang": "recover",
    "brownout": "recover",
    "slow_flash": "recover",
    "console_garbage": "recover",
    "bad_sector": "fail",
    "io0_open": "fail",
    "power_stuck_on": "fail",
    "power_stuck_off": "fail",
}
KINDS = tuple(EXPECTED)


@dataclass
class CaseResult:
    kind: str
    seed: int
    slot: str
    fault: dict[str, Any]
    ok: bool = False
    outcome: str = ""  # recovered | failed_cleanly | violation
    error: str = ""
    fired: list[str] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    traffic: dict[str, int] = field(default_factory=dict)  # bytes per stream, seen by the faults

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def fault_for(kind: str, seed: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(slot id, fault settings, other simulated overrides) for one case; all from the seed."""
    rng = random.Random(f"{kind}:{seed}")
    slot = "l7x-1"
    fault: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    def point(on: str) -> int:
        return rng.randrange(0, TRAFFIC[on])

    if kind in ("noise", "drop"):
        on = rng.choice(["to_chip", "to_host", "both"])
        fault = {
            "kind": kind,
            "rate": rng.choice([1e-4, 1e-3, 1e-2]),
            "on": on,
            "after": point("to_chip" if on == "both" else on),
            "length": rng.randrange(1_000, 30_000),
            "duration": round(rng.uniform(0.1, 1.5), 2),  # a burst: transient by definition
        }
    elif kind == "stall":
        on = rng.choice(["to_chip", "to_host", "flash"])
        fault = {"kind": kind, "seconds": round(rng.uniform(0.5, 4.0), 2), "on": on}
        fault["after"] = point(on)
    elif kind == "unplug":
        on = rng.choice(["to_chip", "to_host", "flash"])
        gone = round(rng.uniform(0.2, 2.5), 2)
        fault = {"kind": kind, "on": on, "after": point(on), "gone": gone}
        slot = rng.choice(["l7x-1", "devkitc-1"])
    elif kind == "hang":
        on = rng.choice(["to_chip", "to_host", "flash"])
        fault = {"kind": kind, "on": on, "after": point(on)}
    elif kind == "brownout":
        fault = {"kind": kind, "after": rng.randrange(0, IMAGE_SIZE)}
        slot = rng.choice(["l7x-1", "devkitc-1"])
    elif kind == "bad_sector":
        sector = rng.randrange(IMAGE_SIZE // 0x1000)
        fault = {"kind": kind, "address": IMAGE_OFFSET + sector * 0x1000}
    elif kind == "io0_open":
        fault = {"kind": kind}
        slot = rng.choice(["l7x-1", "devkitc-1"])
    elif kind in ("power_stuck_on", "power_stuck_off"):
        fault = {"kind": "relay_stuck", "role": "power", "state": kind.rsplit("_", 1)[1]}
    elif kind == "slow_flash":
        fault = {"kind": kind, "factor": 10}
    elif kind == "console_garbage":
        fault = {"kind": kind, "bytes": rng.randrange(1, 512)}
        slot = rng.choice(["l7x-1", "devkitc-1"])
    elif kind == "connect_hang":
        extra = {"fail_connects": rng.randint(1, 3)}
        slot = rng.choice(["l7x-1", "devkitc-1"])
    else:
        raise ValueError(f"unknown matrix kind {kind!r}")
    return slot, fault, extra


def image_for(kind: str, seed: int) -> bytes:
    size = SMALL_IMAGE_SIZE if kind == "slow_flash" else IMAGE_SIZE
    return random.Random(f"image:{kind}:{seed}").randbytes(size)


@cache
def _initial_flash(slot_id: str) -> bytes:
    from rig.images.flash_contents import vendor_l7x_flash

    if slot_id.startswith("l7x"):
        return vendor_l7x_flash()
    return b"\xff" * 0x400000


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot_backups(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def seed_backups(store, station, slot_id: str) -> None:
    """A verified backup of the case's board, and one of another board (must stay untouched)."""
    from rig.sim.parts.efuse import mac_from_seed

    slot = station.slot(slot_id)
    variant = slot.simulated.variant
    mac = slot.simulated.mac or ":".join(
        f"{b:02x}" for b in mac_from_seed(f"{variant}:{slot.simulated.seed}")
    )
    data = _initial_flash(slot_id)
    meta = {"slot": slot_id, "seeded": True}
    store.save(mac, data, hashlib.md5(data).hexdigest(), meta, flash_size=len(data))
    other = b"\x5a" * 0x1000  # another board's backup (a board type with a 4 KB flash)
    md5 = hashlib.md5(other).hexdigest()
    store.save("24:0a:c4:ff:ff:01", other, md5, {"seeded": True}, flash_size=len(other))


def check_backups(root: Path, before: dict[str, str]) -> list[str]:
    problems = []
    after = snapshot_backups(root)
    for name, sha in before.items():
        if name not in after:
            problems.append(f"backup file {name} is missing")
        elif after[name] != sha:
            problems.append(f"backup file {name} changed")
    for name in after:
        path = root / name
        if path.name.startswith("."):
            problems.append(f"temp file {name} left in the backup store")
        elif name not in before and path.suffix == ".bin":
            sidecar = path.with_suffix(".json")
            try:
                meta = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                problems.append(f"{name} has no readable sidecar: a partial dump looks complete")
                continue
            if not meta.get("verified") or meta.get("sha256") != _sha(path):
                problems.append(f"{name} is not a verified backup matching its sidecar")
    return problems


def station_config(workdir: Path, slot_id: str, fault: dict[str, Any], extra: dict[str, Any]):
    from rig import config

    base = config.default_station()
    slots = []
    for slot in base.slots:
        if slot.id == slot_id:
            specs = (config.parse_fault(fault),) if fault else ()
            sim = slot.simulated.model_copy(update={"faults": specs, **extra})
            slot = slot.model_copy(update={"simulated": sim})
        slots.append(slot)
    return base.model_copy(
        update={
            "locks": workdir / "locks",
            "backups": workdir / "backups",
            "slots": tuple(slots),
        }
    )


def run_case(kind: str, seed: int, workdir: Path) -> CaseResult:
    from rig.board.board import DownloadModeError
    from rig.board.station import LiveStation
    from rig.errors import OperationError
    from rig.hardware.locks import SlotLock
    from rig.hardware.pins import level_for
    from rig.operations.backups import BackupError, BackupStore
    from rig.operations.safeguards import ensure_backup, explain_failure
    from rig.operations.session import FlasherError, FlasherSession

    slot_id, fault, extra = fault_for(kind, seed)
    result = CaseResult(kind, seed, slot_id, {**fault, **extra})
    image = image_for(kind, seed)
    cfg = station_config(Path(workdir), slot_id, fault, extra)
    store = BackupStore(cfg.backups)
    seed_backups(store, cfg, slot_id)
    before = snapshot_backups(store.root)
    t0 = time.monotonic()
    backup_id = None
    with LiveStation(cfg) as station:
        slot = station.open_slot(slot_id)
        sim = station.simulated_board(slot_id)
        pins = [relay.pin for relay in slot.relays]
        session = FlasherSession(slot.board, expected_mac=slot.config.expected_mac)
        try:
            with session:
                check = ensure_backup(session, store, "require", {"slot": slot_id})
                backup_id = check.backup.id
                session.write(IMAGE_OFFSET, image)
                if session.read(IMAGE_OFFSET, len(image)) != image:
                    raise OperationError(f"{slot_id}: read-back differs from the image")
            result.ok = True
        except (FlasherError, OperationError, DownloadModeError, BackupError) as err:
            result.error = explain_failure(err, slot_id, backup_id)
            if slot_id not in result.error:
                result.violations.append(f"the error does not name the slot: {result.error}")
        except Exception as err:  # noqa: BLE001 - anything else is a violation
            result.error = f"{type(err).__name__}: {err}"
            result.violations.append(
                "unclean failure (not one of the rig's errors): "
                + "".join(traceback.format_exception(err))[-1500:]
            )
        result.recoveries = list(session.recoveries)
        slot.close()
        result.seconds = round(time.monotonic() - t0, 2)
        for pin in pins:
            if pin.level != level_for(False, pin.active_low):
                result.violations.append(f"relay {pin.label} left energised")
        try:
            SlotLock(cfg.locks, cfg.name, slot_id).acquire().release()
        except Exception as err:  # noqa: BLE001
            result.violations.append(f"slot lock not released: {err}")
        flash = sim.flash.read(IMAGE_OFFSET, len(image))
        result.fired = [f"{f.kind}: {f.what}" for f in sim.injector.fired][:20]
        result.traffic = dict(sim.injector.counts)
        internal = list(sim.faults)
    if result.ok and flash != image:
        result.violations.append("success reported over a flash that differs from the image")
    result.violations += check_backups(store.root, before)
    result.violations += [f"simulator internal error: {e[-800:]}" for e in internal]
    if result.violations:
        result.outcome = "violation"
    else:
        result.outcome = "recovered" if result.ok else "failed_cleanly"
    return result


def summarise(results: list[dict[str, Any]]) -> tuple[list[list[str]], list[str]]:
    """Rows of the soak table and the reasons the soak fails (empty: it passes)."""
    rows = []
    problems = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r)
    totals = [0, 0, 0, 0]
    transient = [0, 0]
    for kind in [k for k in KINDS if k in by_kind] + sorted(set(by_kind) - set(KINDS)):
        cases = by_kind[kind]
        rec = sum(r["outcome"] == "recovered" for r in cases)
        clean = sum(r["outcome"] == "failed_cleanly" for r in cases)
        bad = sum(r["outcome"] == "violation" for r in cases)
        secs = sum(r["seconds"] for r in cases) / len(cases)
        rows.append(
            [
                kind,
                str(len(cases)),
                str(rec),
                str(clean),
                str(bad),
                EXPECTED.get(kind, "?"),
                f"{secs:.1f}",
            ]
        )
        for i, n in enumerate((len(cases), rec, clean, bad)):
            totals[i] += n
        if kind in TRANSIENT:
            transient[0] += len(cases)
            transient[1] += rec
    rows.append(["total", *map(str, totals), "", ""])
    if totals[3]:
        problems.append(f"{totals[3]} invariant violation(s)")
    if transient[0] and transient[1] < 0.95 * transient[0]:
        problems.append(
            f"transient faults recovered automatically: {transient[1]}/{transient[0]} (< 95%)"
        )
    return rows, problems


def format_table(rows: list[list[str]]) -> str:
    head = ["kind", "cases", "recovered", "failed cleanly", "violations", "expected", "s/case"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    lines = [line(r) for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def env_seeds(default: int) -> int:
    return int(os.environ.get("RIG_SOAK_SEEDS", default))
