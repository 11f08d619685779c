"""What a batch run reports: one :class:`BoardResult` per board, the :class:`Event` stream a
display follows, and the :class:`BatchReport` (data and JSON; the command line renders it:
:func:`rig.cli.render.print_batch`)."""

from __future__ import annotations

import json
import signal
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "RESULTS",
    "STEPS",
    "BatchReport",
    "BoardResult",
    "Event",
    "describe_relays",
]

STEPS = ("connect", "backup", "boot plan", "write", "verify", "boot check")
OK, FAILED, QUARANTINED = "ok", "failed", "quarantined"
STOPPED, NOT_STARTED, SKIPPED = "stopped", "not started", "skipped"
RESULTS = (OK, FAILED, QUARANTINED, STOPPED, NOT_STARTED, SKIPPED)


@dataclass
class BoardResult:
    """One board's outcome; ``steps`` are what was done (with time and detail), ``not_done``
    the steps of :data:`STEPS` that never completed."""

    slot: str
    result: str = NOT_STARTED  # ok | failed | quarantined | stopped | not started | skipped
    mac: str = ""
    bytes_written: int = 0
    bytes_skipped: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the worker's CPU time (simulated slots: the simulator's included)
    error: str = ""
    attempts: int = 0
    download_sequences: int = 0
    attempt_errors: list[str] = field(default_factory=list)  # transient failures retried
    recoveries: list[str] = field(default_factory=list)  # failures the session itself resumed
    backup: str = ""
    backup_taken: bool = False
    baud: int = 0
    console: str = ""  # the end of the boot console
    steps: list[dict[str, Any]] = field(default_factory=list)
    not_done: list[str] = field(default_factory=lambda: list(STEPS))
    started: str = ""
    ended: str = ""
    pid: int | None = None
    log: str = ""
    relays_before_release: dict[str, bool] = field(default_factory=dict)
    relays_after_release: dict[str, bool] = field(default_factory=dict)
    # Who released the relays: "worker" (its slot closed), "parent" (the worker died without
    # doing it; the parent re-opened the slot), "" (nobody could: the error says what to do).
    relays_released_by: str = ""

    @property
    def ok(self) -> bool:
        return self.result == OK

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoardResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Event:
    """A worker (or the runner) telling the display something. Kinds: ``queued``, ``skipped``,
    ``started``, ``phase`` (phase), ``progress`` (done, total), ``identified`` (mac, baud),
    ``retry`` (attempt, error, wait), ``result`` (result: a BoardResult dict), ``stopping``."""

    slot: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchReport:
    station: str
    board: str
    firmware: dict[str, Any]
    run_dir: str
    state_file: str
    started: str
    jobs: int
    retries: int
    seconds: float = 0.0
    interrupted: str | None = None  # the signal that stopped the run
    boards: list[BoardResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    operation: str = "flash"
    simulated: bool = False  # the station's boards are simulated (config.Station.simulated)

    @property
    def ok(self) -> bool:
        return bool(self.boards) and self.interrupted is None and all(b.ok for b in self.boards)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(RESULTS, 0)
        for board in self.boards:
            counts[board.result] = counts.get(board.result, 0) + 1
        return {k: v for k, v in counts.items() if v}

    def summary(self) -> str:
        n = len(self.boards)
        parts = []
        for result, count in self.counts().items():
            names = "" if result == OK else f" ({', '.join(self._slots(result))})"
            parts.append(f"{count} {result}{names}")
        head = "OK" if self.ok else ("INTERRUPTED" if self.interrupted else "FAILED")
        stop = f", interrupted by {self.interrupted}" if self.interrupted else ""
        return (
            f"{head}: {self.firmware['name']} on {n} {self.board} board{'s' * (n != 1)}: "
            f"{', '.join(parts) or 'nothing to do'} in {self.seconds:.1f} s{stop}; "
            f"logs in {self.run_dir}"
        )

    def _slots(self, result: str) -> list[str]:
        return [b.slot for b in self.boards if b.result == result]

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        if self.interrupted:
            return 128 + int(signal.Signals[self.interrupted])
        return 1

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["counts"] = self.counts()
        data["summary"] = self.summary()
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchReport:
        names = {f.name for f in fields(cls)} - {"boards"}
        report = cls(**{k: v for k, v in data.items() if k in names})
        report.boards = [BoardResult.from_dict(b) for b in data.get("boards", [])]
        return report


def describe_relays(states: dict[str, bool]) -> str:
    return ", ".join(f"{role}={'closed' if on else 'open'}" for role, on in states.items())
