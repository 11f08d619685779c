"""``rig status``: every slot of the station at a glance (:mod:`rig.operations.status`)."""

from __future__ import annotations

from typing import Any

from rig.cli.common import command, listing_options, load_station, options, output_format
from rig.cli.render.tables import Col, emit_rows

__all__ = ["COMMANDS", "status_command"]


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ")


def _lock(holder: str | None) -> str:
    return "free" if holder is None else f"in use: {holder}"


def _quarantine(entry: dict[str, Any] | None) -> str:
    return "-" if entry is None else f"QUARANTINED since {_when(entry['since'])}: {entry['reason']}"


def _run(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    error = f": {run['error']}" if run["error"] else ""
    return f"{run['result']} ({run['firmware']}, {_when(run['started'])}){error}"


def _backups(row: dict[str, Any]) -> str:
    latest = row["latest_backup"]
    return "none" if latest is None else f"{row['backups']}, latest {_when(latest['created'])}"


def _result_style(run: dict[str, Any] | None) -> str:
    return "" if run is None else ("green" if run["result"] == "ok" else "red")


STATUS_COLS = (
    Col("slot", kind="id"),
    Col("board", kind="id", drop=2),
    Col("mac", "MAC", kind="id"),
    Col("lock_holder", "lock", show=_lock),
    Col("quarantined", "quarantine", show=_quarantine, style=lambda q: "red" if q else ""),
    Col("last_run", "last run", show=_run, style=_result_style),
    Col("backup_summary", "backups"),
    Col("latest_backup", "latest backup", kind="id", drop=1, show=lambda b: b["id"] if b else "-"),
)


@command("status")
@options(listing_options)
def status_command(station_path, as_json, fmt):
    """Every slot: board type, MAC, who holds its lock, quarantine, last run, backups. Reads
    the station's files only: no relay moves, no port opens."""
    from rig.operations.status import station_status

    station = load_station(station_path)
    rows = [s.as_dict() for s in station_status(station)]
    for row in rows:  # people read a summary; --json has the parts
        if output_format(as_json, fmt) != "json":
            row["backup_summary"] = _backups(row)
    title = f"slots of station {station.name}"
    emit_rows(station, "slots", title, STATUS_COLS, rows, output_format(as_json, fmt))


COMMANDS = [status_command]
