"""A station's state file: the slots in quarantine, and where batch runs keep their records.

A board that keeps failing in a batch run (no download mode, no sync, lost port, after every
retry) is *quarantined*: its slot is recorded here with the reason, and later ``rig flash`` runs
skip it with a visible note until someone has looked at it and run ``rig quarantine --clear ID``.

Where: ``<backups>/../state/<station>/`` - beside the station's backups directory, not its locks
directory. Locks live on tmpfs (``/run/lock/rig`` on a Pi) and vanish at boot, by design: an
flock needs no cleanup. A quarantine must survive a reboot (a board with a broken IO0 wire is
still broken after one), and run records are worth keeping with the dumps they refer to, so both
go on the same persistent disk as the backups. For the embedded simulated station that is
``~/.local/share/rig/state/sim/``.

Layout::

    <state dir>/station.json        {"station": ..., "version": 1, "quarantine": {slot: entry}}
    <state dir>/station.json.lock   flock held while the file is read-modified-written
    <state dir>/runs/<UTC time>/    one directory per batch run: report.json, <slot>.log

The file is replaced atomically (temp file, fsync, rename) under an flock, so concurrent runs on
different slots of one station never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rig import config
from rig.errors import OperationError

STATE_FILE = "station.json"
FORMAT_VERSION = 1


class StateError(OperationError):
    """The state directory or file cannot be used (unwritable, not JSON, wrong shape)."""


@dataclass(frozen=True)
class QuarantineEntry:
    slot: str
    reason: str
    since: str  # UTC ISO time
    mac: str = ""
    attempts: int = 0
    run_dir: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def since_text(self) -> str:
        """``2026-11-26 22:12:07 UTC``"""
        return self.since[:19].replace("T", " ") + " UTC" if len(self.since) >= 19 else self.since


def state_dir(station: config.Station) -> Path:
    """``<backups>/../state/<station name>`` (see the module docstring for why)."""
    return station.state_dir


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StationState:
    """The state file of one station."""

    def __init__(self, directory: str | os.PathLike[str], station_name: str) -> None:
        self.dir = Path(directory)
        self.station = station_name
        self.path = self.dir / STATE_FILE

    @classmethod
    def of(cls, station: config.Station) -> StationState:
        return cls(state_dir(station), station.name)

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    def check_writable(self) -> None:
        """Refuse before anything moves if quarantine entries and run records cannot be kept."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.dir, prefix=".probe-"):
                pass
        except OSError as err:
            raise StateError(f"state directory {self.dir} is not writable: {err}") from err
        self.quarantined()  # a corrupt state file is reported now, not after the run

    def new_run_dir(self, when: datetime | None = None) -> Path:
        """``runs/<UTC time>/``, made unique with a suffix if a run started in the same second."""
        stamp = (when or utc_now()).strftime("%Y%m%dT%H%M%SZ")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = self.runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
        raise StateError(f"cannot make a run directory under {self.runs_dir}")

    # -- quarantine -----------------------------------------------------------------------------
    def quarantined(self) -> dict[str, QuarantineEntry]:
        """Quarantined slots by id (no file: none)."""
        data = self._read()
        return {
            slot: QuarantineEntry(**{**entry, "slot": slot})
            for slot, entry in data["quarantine"].items()
        }

    def quarantine(self, entries: list[QuarantineEntry]) -> None:
        """Record (or update) quarantine entries."""
        if not entries:
            return
        with self._locked():
            data = self._read()
            for entry in entries:
                data["quarantine"][entry.slot] = entry.as_dict()
            self._write(data)

    def clear(self, slot_ids: list[str]) -> dict[str, QuarantineEntry]:
        """Take slots out of quarantine; returns the entries removed (unknown ids are ignored)."""
        with self._locked():
            data = self._read()
            removed = {}
            for slot in slot_ids:
                entry = data["quarantine"].pop(slot, None)
                if entry is not None:
                    removed[slot] = QuarantineEntry(**{**entry, "slot": slot})
            if removed:
                self._write(data)
        return removed

    # -- file -----------------------------------------------------------------------------------
    def _empty(self) -> dict[str, Any]:
        return {"station": self.station, "version": FORMAT_VERSION, "quarantine": {}}

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return self._empty()
        except OSError as err:
            raise StateError(f"cannot read the state file {self.path}: {err}") from err
        try:
            data = json.loads(text)
        except ValueError as err:
            raise StateError(
                f"state file {self.path} is not valid JSON ({err}); fix or remove it"
            ) from err
        if not isinstance(data, dict) or not isinstance(data.get("quarantine", {}), dict):
            raise StateError(f"state file {self.path}: expected an object with a quarantine map")
        quarantine = data.setdefault("quarantine", {})
        fields = set(QuarantineEntry.__dataclass_fields__) - {"slot"}
        for slot, entry in quarantine.items():
            if not isinstance(entry, dict) or not {"reason", "since"} <= set(entry):
                raise StateError(f"state file {self.path}: bad quarantine entry for {slot!r}")
            quarantine[slot] = {k: v for k, v in entry.items() if k in fields}
        return {**self._empty(), **data}

    def _write(self, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / f"{STATE_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as err:
            raise StateError(f"state directory {self.dir} is not writable: {err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
