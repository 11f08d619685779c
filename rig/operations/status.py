"""What each slot of a station is up to, read without touching a board: its board type, who
holds its lock, whether a batch run quarantined it, how its last run ended and what backups
the rig keeps of it. Data only (``rig status`` renders it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rig.hardware.locks import SlotLock
from rig.operations.backups import Backup, BackupStore
from rig.operations.batch.quarantine import StationState

if TYPE_CHECKING:
    from rig import config

__all__ = ["SlotStatus", "station_status"]

RUNS_READ = 50  # the newest run reports searched for a slot's last run


@dataclass
class SlotStatus:
    slot: str
    board: str
    simulated: bool
    expected_mac: str = ""
    mac: str = ""  # the expected MAC, else the one its last run or its backups saw
    lock_holder: str | None = None  # PID and command line, None: free
    quarantined: dict[str, Any] | None = None  # reason, since, attempts, run_dir
    last_run: dict[str, Any] | None = None  # run, started, result, error, firmware
    backups: int = 0
    latest_backup: dict[str, Any] | None = None  # id, created, size, sha256
    macs: list[str] = field(default_factory=list)  # every MAC seen in this slot

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def station_status(station: config.Station) -> list[SlotStatus]:
    """One :class:`SlotStatus` per slot, in the station's order."""
    state = StationState.of(station)
    quarantined = state.quarantined()
    runs = _last_runs(state, [s.id for s in station.slots])
    backups = BackupStore(station.backups).list()
    out = []
    for slot in station.slots:
        status = SlotStatus(
            slot=slot.id,
            board=slot.board,
            simulated=slot.simulated is not None,
            expected_mac=slot.expected_mac or "",
            lock_holder=SlotLock(station.locks, station.name, slot.id).holder(),
        )
        if slot.id in quarantined:
            entry = quarantined[slot.id].as_dict()
            status.quarantined = {k: v for k, v in entry.items() if k != "slot"}
        status.last_run = runs.get(slot.id)
        macs = [slot.expected_mac or "", (status.last_run or {}).get("mac", "")]
        mine = [b for b in backups if b.meta.get("slot") == slot.id or b.mac in macs]
        status.macs = sorted({m for m in macs if m} | {b.mac for b in mine})
        status.mac = next((m for m in (*macs, *(b.mac for b in reversed(mine))) if m), "")
        status.backups = len(mine)
        status.latest_backup = _backup(mine[-1]) if mine else None
        out.append(status)
    return out


def _backup(b: Backup) -> dict[str, Any]:
    return {"id": b.id, "created": b.created, "size": b.size, "sha256": b.sha256}


def _last_runs(state: StationState, slots: list[str]) -> dict[str, dict[str, Any]]:
    """Each slot's board result in the newest run report that has it."""
    found: dict[str, dict[str, Any]] = {}
    if not state.runs_dir.is_dir():
        return found
    for run in sorted(state.runs_dir.iterdir(), reverse=True)[:RUNS_READ]:
        try:
            report = json.loads((run / "report.json").read_text())
        except (OSError, ValueError):
            continue  # a run still going, or one killed before its report
        for board in report.get("boards", []):
            if board.get("slot") in slots and board["slot"] not in found:
                found[board["slot"]] = {
                    "run": str(run),
                    "started": report.get("started", ""),
                    "firmware": report.get("firmware", {}).get("name", ""),
                    "result": board.get("result", ""),
                    "error": board.get("error", ""),
                    "mac": board.get("mac", ""),
                }
        if len(found) == len(slots):
            break
    return found
