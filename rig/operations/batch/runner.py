"""Batch re-flashing: every matching slot of a station at once, one worker process per board.

``rig flash --board l7x --firmware custom-grbl`` is :func:`plan_batch` (all input checked before
any relay moves) then :func:`run_batch`. Per board, in its own process: lock the slot, connect
(download mode by relays, esptool, stub, baud ladder), make sure a verified backup of the MAC
exists (dump one if not), verified fast write, verify, boot check (the firmware's console
pattern). One failing board never stops the others.

Why processes: esptool's logger (where its progress goes) is one per process, and a slot's lock
and relays belong to one process anyway. Workers are started with the ``forkserver`` method
(``spawn`` where there is none): a clean, single-threaded server process with the rig already
imported forks each worker, so a worker starts in milliseconds without inheriting the parent's
threads or file descriptors. Each worker builds its own :class:`~rig.board.LiveStation`, opens
only its own slot, reports events to the parent over a queue and writes ``<slot>.log`` in the
run directory (``<state dir>/runs/<UTC time>/``, see :mod:`rig.quarantine`).

Retries: a transient failure (no download mode, no sync, timeouts, a lost port: the flasher's
errors, :class:`~rig.board.board.DownloadModeError`, ``OSError``) re-runs the whole board attempt -
download sequence, connect, backup check, fast write (which skips what an earlier attempt
already wrote), verify, boot check - after ``backoff * 2**(n-1)`` seconds. Below that, each
attempt's download sequence is retried ``download_retries`` times by the board (its board type
says how many), and the flasher session resumes a transfer that fails midway by itself (a read
per 256 KB chunk, a write from the last verified block; ``recoveries`` in the result). A board
that exhausts its retries is *quarantined* in the station's state file; later runs skip it
until ``rig quarantine --clear ID``. Other failures (the wrong board in the slot, the firmware
not booting, a backup that cannot be stored, a flash sector that does not keep what is written:
:class:`~rig.flasher.FlashDefect`) fail the board without retry and without quarantine.

Stopping: the first SIGINT/SIGTERM/SIGHUP asks every worker to stop at its next safe point -
before a download sequence, before the backup, before the write, before the boot check; a dump
in progress is abandoned at once (it only reads); a write in progress finishes and is verified
(the reconnects it needs included), so no board is left half-written. Boards not started yet are
not started. A second signal (or :data:`GRACE` seconds without the workers finishing) sends
SIGTERM to the workers, which unwind at once through :func:`~rig.relays.install_safety_net`.
Either way every worker releases its relays (its slot closes in a ``finally``), records the
relay states before and after the release in its result and its log, and the report says per
board what was done and what not. A worker still running :data:`KILL_AFTER` seconds after the
SIGTERM is killed; a killed worker (by the parent, the OOM killer, a ``kill -9``) releases
nothing, so the parent re-opens its slot and releases the relays itself
(:func:`_dead_worker_result`). Workers ignore SIGINT (a Ctrl-C reaches the whole process
group; the parent decides) and watch their parent: if it dies, they stop as if told to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from esptool.util import FatalError

from . import config, signals
from .backups import BackupStore
from .board.board import DownloadModeError
from .flasher import FlashDefect, FlasherError, FlasherSession, PartialWrite, WrongBoard
from .hardware.locks import SlotBusy
from .hardware.safety import install_safety_net
from .operations import (
    BackupCheck,
    BadInput,
    Image,
    OperationError,
    boot_check,
    ensure_backup,
    explain_failure,
    prepare_backups,
    resolve_images,
)
from .quarantine import QuarantineEntry, StateError, StationState, utc_now
from .report import Report
from .signals import Terminated

__all__ = [
    "GRACE",
    "STEPS",
    "BatchControl",
    "BatchPlan",
    "BatchReport",
    "BoardResult",
    "Event",
    "Job",
    "flash_board",
    "is_transient",
    "plan_batch",
    "run_batch",
]

STEPS = ("connect", "backup", "write", "verify", "boot check")
OK, FAILED, QUARANTINED = "ok", "failed", "quarantined"
STOPPED, NOT_STARTED, SKIPPED = "stopped", "not started", "skipped"
RESULTS = (OK, FAILED, QUARANTINED, STOPPED, NOT_STARTED, SKIPPED)

GRACE = 30.0  # seconds after a stop request before the workers are sent SIGTERM
KILL_AFTER = 10.0  # seconds after that before a worker that still runs is killed
MAX_BACKOFF = 60.0
PROGRESS_INTERVAL = 0.1  # seconds between progress events of one worker
CONSOLE_TAIL = 400  # characters of the boot console kept in the report


# -- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """What one worker does (pickled to the worker process)."""

    station: config.Station
    slot_id: str
    firmware: str
    images: tuple[Image, ...]
    console: str  # the firmware's console regex (boot check)
    retries: int
    backoff: float
    run_dir: str
    meta: dict[str, Any] = field(default_factory=dict)


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


class Stopped(Exception):
    """A worker stopped at a safe point because it was asked to (or its parent died)."""


def is_transient(err: BaseException) -> bool:
    """Worth another attempt with the download sequence re-run: the board did not answer (no
    download mode, no sync, a timeout) or its port went away. Not: the wrong board, a firmware
    that does not boot, a backup that cannot be stored, a flash defect (every write of a range
    went through and it never verified: another attempt writes the same bad sector in vain)."""
    if isinstance(err, WrongBoard | FlashDefect):
        return False
    return isinstance(err, FlasherError | DownloadModeError | FatalError | OSError)


# -- planning (everything checked before a relay moves) -------------------------------------------
@dataclass(frozen=True)
class BatchPlan:
    station: config.Station
    board: str
    firmware: config.Firmware
    images: tuple[Image, ...]
    slots: tuple[str, ...]  # selected, in station order (quarantined ones included)
    quarantined: dict[str, QuarantineEntry]  # selected slots skipped because of the quarantine
    jobs: int
    retries: int
    backoff: float
    state: StationState

    @property
    def to_flash(self) -> list[str]:
        return [s for s in self.slots if s not in self.quarantined]


def plan_batch(
    station: config.Station,
    board: str,
    firmware: str,
    slots: str | list[str] = "all",
    *,
    jobs: int | None = None,
    retries: int = 2,
    backoff: float = 1.0,
) -> BatchPlan:
    """Check everything a batch needs; raise :class:`~rig.operations.BadInput` if anything is
    wrong. Nothing is opened: no lock taken, no relay moved, no port opened."""
    board_type = station.boards.get(board)
    if board_type is None:
        known = ", ".join(sorted(station.boards)) or "none"
        raise BadInput(f"station {station.name} has no {board!r} slots (its boards: {known})")
    if "@" in firmware:
        raise BadInput(
            f"{firmware!r}: name a firmware of the {board} catalog; the boot check needs its "
            "console pattern"
        )
    try:
        fw = board_type.firmware_named(firmware)
    except KeyError as err:
        raise BadInput(err.args[0]) from None
    images = tuple(resolve_images([firmware], board_type))
    selected = _select_slots(station, board, slots)
    if jobs is not None and jobs < 1:
        raise BadInput(f"--jobs must be at least 1 (got {jobs})")
    if retries < 0:
        raise BadInput(f"--retries must not be negative (got {retries})")
    if backoff < 0:
        raise BadInput(f"--backoff must not be negative (got {backoff})")
    prepare_backups(BackupStore(station.backups), "auto", False)
    state = StationState.of(station)
    try:
        state.check_writable()
        quarantine = state.quarantined()
    except StateError as err:
        raise BadInput(str(err)) from err
    skipped = {s: quarantine[s] for s in selected if s in quarantine}
    count = len(selected) - len(skipped)
    return BatchPlan(
        station=station,
        board=board,
        firmware=fw,
        images=images,
        slots=tuple(selected),
        quarantined=skipped,
        jobs=max(1, jobs if jobs is not None else count),
        retries=retries,
        backoff=backoff,
        state=state,
    )


def _select_slots(station: config.Station, board: str, slots: str | list[str]) -> list[str]:
    of_type = [s.id for s in station.slots if s.board == board]
    if not of_type:
        raise BadInput(f"station {station.name} has no {board} slot")
    if isinstance(slots, str):
        if slots.strip() == "all":
            return of_type
        slots = [s.strip() for s in slots.split(",")]
    wanted = list(dict.fromkeys(s for s in slots if s))
    if not wanted:
        raise BadInput("--slots: name slot ids separated by commas, or all")
    ids = [s.id for s in station.slots]
    for slot_id in wanted:
        if slot_id not in ids:
            raise BadInput(
                f"no slot {slot_id!r} in station {station.name} (slots: {', '.join(ids)})"
            )
        holds = station.slot(slot_id).board
        if holds != board:
            raise BadInput(f"slot {slot_id} holds a {holds}, not a {board}")
    return [s for s in ids if s in wanted]


# -- the worker -----------------------------------------------------------------------------------
class _StopFlag:
    """A worker's view of "stop": the parent's stop event, or the parent gone."""

    def __init__(self, event: Any = None) -> None:
        self.event = event
        self.parent = multiprocessing.parent_process()  # None when run in-process

    def orphaned(self) -> bool:
        return self.parent is not None and not self.parent.is_alive()

    def requested(self) -> bool:
        return (self.event is not None and self.event.is_set()) or self.orphaned()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a stop is requested."""
        deadline = time.monotonic() + seconds
        while True:
            if self.requested():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.event is not None:
                self.event.wait(min(left, 0.2))
            else:
                time.sleep(min(left, 0.2))


class _Emitter:
    def __init__(self, put: Callable[[Event], None], slot: str) -> None:
        self._put = put
        self.slot = slot
        self._last = 0.0

    def __call__(self, kind: str, **data: Any) -> None:
        self._put(Event(self.slot, kind, data))

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        self("progress", done=done, total=total)


class _BoardLog:
    """``<run dir>/<slot>.log``: timestamped lines, written as they happen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.monotonic()
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def __call__(self, text: str) -> None:
        stamp = f"{utc_now().strftime('%H:%M:%S.%f')[:-3]} +{time.monotonic() - self.t0:7.3f}s"
        for line in str(text).splitlines() or [""]:
            self._file.write(f"{stamp} {line}\n")

    def close(self) -> None:
        self._file.close()


class _WatchedBoard:
    """The slot's board as the flasher session sees it, with a safe point before every download
    sequence and a count of the sequences run (everything else is the board itself)."""

    def __init__(self, board: Any, before_download: Callable[[], None]) -> None:
        self._board = board
        self._before = before_download
        self.sequences = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._board, name)

    def download_mode(self, retries: int | None = None):
        self._before()
        try:
            evidence = self._board.download_mode(retries)
        except DownloadModeError:
            self.sequences += retries or self._board.type.download_retries
            raise
        self.sequences += evidence.attempt
        return evidence


class _BoardRun:
    """The attempts on one open slot."""

    def __init__(self, job: Job, slot: Any, emit: _Emitter, stop: _StopFlag, log, result):
        self.job = job
        self.slot = slot
        self.emit = emit
        self.stop = stop
        self.log = log
        self.result = result
        self.report = Report("flash", job.slot_id)
        self.board = _WatchedBoard(slot.board, self._before_download)
        self.store = BackupStore(job.station.backups)
        self.phase = ""
        self.writing = False  # a write is under way (flash partly changed)
        self.partial_reported = False  # the error says so itself (PartialWrite)

    def set_phase(self, phase: str, **data: Any) -> None:
        self.phase = phase
        self.emit("phase", phase=phase, **data)
        self.log(f"phase: {phase}" + "".join(f" {k}={v}" for k, v in data.items()))

    def checkpoint(self, before: str) -> None:
        if self.stop.requested():
            raise Stopped(f"before {before}")

    def _before_download(self) -> None:
        """A safe point, except inside a write: a write that needs a reconnect (its session
        resumes it from the last verified block) must finish and be verified, or the board
        would be left half-written; the run stops at the next safe point after it."""
        if not self.writing:
            self.checkpoint("the download sequence")

    def run(self) -> None:
        job, result = self.job, self.result
        attempt = 0
        while True:
            attempt += 1
            result.attempts = attempt
            self.checkpoint("connecting")
            try:
                self.attempt(attempt)
            except Stopped:
                raise
            except Exception as err:
                self.partial_reported = isinstance(err, PartialWrite)
                text = explain_failure(err, job.slot_id, result.backup or None)
                message = _without_slot(text or type(err).__name__, job.slot_id)
                self.log(f"attempt {attempt} failed: {type(err).__name__}: {message}")
                if not is_transient(err):
                    self.log(traceback.format_exc())
                    result.result, result.error = FAILED, message + self._partial()
                    return
                result.attempt_errors.append(message)
                if attempt > job.retries:
                    result.result = QUARANTINED
                    result.error = f"{message} (gave up after {attempt} attempts){self._partial()}"
                    return
                wait = min(job.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                self.emit("retry", attempt=attempt, error=message, wait=wait)
                self.set_phase("retry", attempt=attempt + 1, wait=round(wait, 2))
                if self.stop.wait(wait):
                    raise Stopped("while waiting to retry") from None
            else:
                result.result = OK
                return

    def attempt(self, n: int) -> None:
        job, result, report = self.job, self.result, self.report
        session = FlasherSession(self.board, expected_mac=self.slot.config.expected_mac)
        try:
            with report.step("connect") as step:
                self.set_phase("connect", attempt=n)
                ident = session.connect()
                result.mac, result.baud = ident.mac, ident.baud
                result.download_sequences = self.board.sequences
                step.data = ident.as_dict()
                step.detail = (
                    f"attempt {n}: {ident.chip}, MAC {ident.mac}, {ident.baud} baud "
                    f"({self.board.sequences} download sequence(s) so far)"
                )
                self.log(step.detail)
            self.emit("identified", mac=ident.mac, baud=ident.baud)
            self.checkpoint("the backup")
            with report.step("backup") as step:
                check = self._backup(session)
                result.backup, result.backup_taken = check.backup.id, check.taken
                step.data, step.detail = check.data, check.detail
                self.log(step.detail)
            self.checkpoint("the write")
            with report.step("write") as step:
                self.set_phase("write")
                written = skipped = 0
                self.writing = True
                for image in job.images:
                    stats = session.write(image.offset, image.data, self._progress(False))
                    written += stats.written
                    skipped += stats.skipped
                self.writing = False
                result.bytes_written += written
                result.bytes_skipped = skipped
                step.data = {"bytes_written": written, "bytes_skipped": skipped}
                step.detail = (
                    f"{job.firmware}: wrote {written} B, skipped {skipped} B unchanged "
                    "(chip MD5 per block), whole image verified"
                )
                self.log(step.detail)
            with report.step("verify") as step:
                self.set_phase("verify")
                for image in job.images:
                    if not session.verify(image.offset, image.data):
                        raise FlasherError(
                            f"{job.slot_id}: {image.name} at {image.offset:#x}: chip MD5 differs"
                        )
                step.detail = "chip MD5 matches " + ", ".join(
                    f"{i.name} at {i.offset:#x}" for i in job.images
                )
        finally:
            session.close()
            if session.recoveries:
                result.recoveries += session.recoveries
                self.log("recovered inside the session:\n  " + "\n  ".join(session.recoveries))
            if session.log_lines:
                self.log("esptool:\n  " + "\n  ".join(session.log_lines))
        self.checkpoint("the boot check")
        with report.step("boot check") as step:
            self.set_phase("boot")
            check = boot_check(self.board, job.console)
            result.console = check.console[-CONSOLE_TAIL:]
            step.data = {"console": result.console, "seconds": round(check.seconds, 3)}
            self.log("console:\n  | " + "\n  | ".join(check.console.splitlines()[-8:]))
            if not check.ok:
                raise OperationError(
                    f"{job.firmware} did not boot: the console never showed {job.console!r}"
                )
            step.detail = f"console matched {job.console!r} after {check.seconds:.1f} s"

    def _backup(self, session: FlasherSession) -> BackupCheck:
        """:func:`~rig.operations.ensure_backup` decides whether a backup is current; the
        ``dump`` phase (with its byte total) starts only if it has to dump."""
        self.set_phase("backup")
        dump_progress = self._progress(True)
        dumping = False

        def progress(done: int, total: int) -> None:
            nonlocal dumping
            if not dumping:
                dumping = True
                self.set_phase("dump", total=total)
            dump_progress(done, total)

        meta = {**self.job.meta, "slot": self.job.slot_id}
        return ensure_backup(session, self.store, "auto", meta, progress)

    def _progress(self, abortable: bool) -> Callable[[int, int], None]:
        """Progress to the parent; a dump (``abortable``: it only reads) stops at once when asked
        to, a write only if the parent is gone."""

        def progress(done: int, total: int) -> None:
            if (abortable and self.stop.requested()) or self.stop.orphaned():
                raise Stopped(f"during the {self.phase}")
            self.emit.progress(done, total)

        return progress

    def _partial(self) -> str:
        if not self.writing or self.partial_reported:
            return ""
        return f"; the flash is partly written, the verified backup is {self.result.backup}"

    def stopped_message(self, where: str) -> str:
        done = {s["name"] for s in self.report.as_dict()["steps"] if s["ok"]}
        if self.writing:
            state = (
                f"the write was cut short: the flash is partly written; the verified backup "
                f"is {self.result.backup}; run again to finish"
            )
        elif "verify" in done:
            state = "the new firmware is written and verified"
        elif "write" in done:
            state = "the new firmware is written"
        else:
            state = "nothing was written"
        return f"stopped {where}: {state}"


def flash_board(job: Job, emit: Callable[..., None], stop: Any = None) -> BoardResult:
    """Flash one board in the calling process: lock, attempts, release; emit and return the
    result. Never raises for a board problem. ``emit(kind, **data)`` receives the events (the
    last one is ``result``); ``stop`` is an event-like object whose ``is_set()`` asks for a stop
    at the next safe point. A SIGINT/SIGTERM that ends the attempts (main thread) is re-raised
    once the slot is closed and the result emitted."""
    from .board.station import LiveStation

    stop = stop if isinstance(stop, _StopFlag) else _StopFlag(stop)
    emitter = emit if isinstance(emit, _Emitter) else _Emitter(lambda e: emit(e.kind, **e.data), "")
    run_dir = Path(job.run_dir)
    t0, cpu0 = time.monotonic(), time.process_time()
    result = BoardResult(
        job.slot_id,
        result=FAILED,
        pid=os.getpid(),
        log=str(run_dir / f"{job.slot_id}.log"),
        started=utc_now().isoformat(),
    )
    log = _BoardLog(Path(result.log))
    log(f"rig flash {job.firmware} on slot {job.slot_id} of station {job.station.name}")
    log(f"pid {os.getpid()}, retries {job.retries}, backoff {job.backoff} s")
    station = LiveStation(job.station)
    slot = None
    run: _BoardRun | None = None
    outcome: BaseException | None = None
    try:
        emitter("phase", phase="lock")
        slot = station.open_slot(job.slot_id)
        log(f"slot locked ({slot.lock.path})")
        run = _BoardRun(job, slot, emitter, stop, log, result)
        run.run()
    except BaseException as err:  # judged below, with further signals held back
        outcome = err
    with signals.deferred():
        _judge(outcome, result, run, log)
        if slot is not None:
            result.relays_before_release = {r.role: r.is_closed for r in slot.relays}
        try:
            station.close()  # releases every relay, frees the pins, drops the lock
        except Exception as err:  # a pin that cannot be driven: say so loudly
            log("".join(traceback.format_exception(err)))
            result.result = FAILED
            result.error = (
                f"{result.error}; " if result.error else ""
            ) + f"releasing the slot failed: {err} - check its relays (rig relay --release-all)"
        else:
            result.relays_released_by = "worker" if slot is not None else ""
        if slot is not None:
            result.relays_after_release = {r.role: r.is_closed for r in slot.relays}
            relay_log = next(iter(slot.relays)).log if slot.relays.relays else None
            for event in relay_log.events if relay_log else []:
                log(f"relay {event.role} {event.action} (t={event.t - log.t0:+.3f}s)")
            log(
                "relays before release: "
                + _states(result.relays_before_release)
                + "; after release: "
                + _states(result.relays_after_release)
            )
        if run is not None:
            result.steps = run.report.as_dict()["steps"]
            result.download_sequences = run.board.sequences
        done = {s["name"] for s in result.steps if s["ok"]}
        result.not_done = [s for s in STEPS if s not in done]
        result.seconds = round(time.monotonic() - t0, 3)
        result.cpu_seconds = round(time.process_time() - cpu0, 3)
        result.ended = utc_now().isoformat()
        log(f"result: {result.result}" + (f": {result.error}" if result.error else ""))
        log.close()
        emitter("result", result=result.as_dict())
    if isinstance(outcome, KeyboardInterrupt | SystemExit):
        raise outcome  # Terminated is a SystemExit: the process exits 128 + signal
    if outcome is not None and not isinstance(outcome, Exception):
        raise outcome
    return result


def _judge(outcome: BaseException | None, result: BoardResult, run, log) -> None:
    """Turn how the attempts ended into the result (``run.run`` set it if they ended)."""
    if outcome is None:
        return
    if isinstance(outcome, Stopped):
        result.result = STOPPED
        result.error = run.stopped_message(str(outcome)) if run else f"stopped {outcome}"
    elif isinstance(outcome, Terminated | KeyboardInterrupt):
        what = outcome if isinstance(outcome, Terminated) else "interrupted by SIGINT"
        where = f"({what}) during the {run.phase}" if run else f"({what})"
        result.result = STOPPED
        result.error = run.stopped_message(where) if run else f"stopped {where}"
    elif isinstance(outcome, SlotBusy):
        result.result, result.error = FAILED, str(outcome)
    else:  # a bug or an unexpected failure: this board only
        result.result = FAILED
        result.error = f"{type(outcome).__name__}: {outcome}"
        log("".join(traceback.format_exception(outcome)))


def _dead_worker_result(
    station: config.Station, slot_id: str, process: Any, log_path: Path, *, killed: bool = False
) -> BoardResult:
    """The result of a worker that ended without one - killed by the parent after it ignored
    SIGTERM (``killed``), or by anything else (the OOM killer, a kill -9, a crash) - after the
    parent released the slot's relays itself.

    A SIGKILLed process releases nothing, and a Raspberry Pi kernel keeps its GPIO outputs
    driven after it dies: the board would stay in download mode with its power button held. Its
    slot lock went with it (an ``flock`` dies with its last holder), so the parent re-opens the
    slot through the station factory - requesting a pin drives it inactive from the first
    instant - and closes it again (every relay released, the pins freed, the lock dropped).
    """
    how = "killed by the rig after it ignored SIGTERM" if killed else "died"
    result = BoardResult(
        slot_id, result=FAILED, pid=process.pid, log=str(log_path), ended=utc_now().isoformat()
    )
    released = _release_for_dead_worker(station, slot_id, result)
    result.error = (
        f"worker process {how} (exit code {process.exitcode}) without a result; {released}"
    )
    log = _BoardLog(log_path)
    try:
        log(f"parent: {result.error}")
        if result.relays_released_by:
            log(f"relays released by the parent: {_states(result.relays_after_release)}")
    finally:
        log.close()
    return result


def _release_quietly(station: config.Station, slot_id: str, process: Any, log_path: Path) -> None:
    """:func:`_dead_worker_result` while the run is failing anyway: never raises (the run's own
    error matters more), says what happened in the log."""
    try:
        result = _dead_worker_result(station, slot_id, process, log_path, killed=True)
        logging.getLogger(__name__).warning("%s: %s", slot_id, result.error)
    except Exception as err:
        logging.getLogger(__name__).error("%s: releasing the relays failed: %s", slot_id, err)


def _release_for_dead_worker(station: config.Station, slot_id: str, result: BoardResult) -> str:
    """Re-open the slot of a dead worker and close it; record the relay states; say what
    happened (and what to do if it could not be done)."""
    from .board.station import LiveStation

    try:
        with LiveStation(station) as live:
            slot = live.open_slot(slot_id)  # the pins are requested inactive
            slot.close()  # every relay released, pins freed, lock dropped
            states = {r.role: r.is_closed for r in slot.relays}
    except SlotBusy as err:
        return (
            f"the rig could not release its relays: {err} - a process the worker started may "
            "still hold the slot; the relays may still be energised: once it has ended, run "
            "rig relay --release-all"
        )
    except Exception as err:
        return (
            f"the rig could not release its relays: {err} - they may still be energised: "
            "rig relay --release-all"
        )
    result.relays_after_release = states
    if any(states.values()):
        return f"releasing its relays failed ({_states(states)}): rig relay --release-all"
    result.relays_released_by = "parent"
    return f"the rig released its relays ({_states(states)})"


def _without_slot(message: str, slot: str) -> str:
    """``"l7x-1: cannot connect: l7x-1: no ROM..."`` -> ``"cannot connect: no ROM..."`` (the
    report names the slot already)."""
    return message.replace(f"{slot}: ", "")


def _states(states: dict[str, bool]) -> str:
    return ", ".join(f"{role}={'closed' if on else 'open'}" for role, on in states.items())


def _worker_main(job: Job, events: Any, stop_event: Any) -> None:
    """Entry point of a worker process."""
    signals.ignore(signal.SIGINT)  # Ctrl-C hits the process group; the parent decides
    install_safety_net(signals.TERMINATING)  # SIGTERM/SIGHUP -> Terminated (unwind); atexit
    handler = logging.FileHandler(Path(job.run_dir) / f"{job.slot_id}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.getLogger("rig").addHandler(handler)
    emit = _Emitter(events.put, job.slot_id)
    emit("started", pid=os.getpid())
    flash_board(job, emit, _StopFlag(stop_event))  # emits the result, re-raises Terminated


# -- the parent ----------------------------------------------------------------------------------
class BatchControl:
    """Stop requests (from signal handlers, or a test): the first asks for a stop at a safe
    point, the second (or ``hard=True``) terminates the workers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requests = 0
        self.hard = False

    def request_stop(self, signum: int | None = signal.SIGTERM, hard: bool = False) -> None:
        self.requests += 1
        if self.signum is None:
            self.signum = signum
        if hard or self.requests > 1:
            self.hard = True

    @property
    def stop_requested(self) -> bool:
        return self.requests > 0

    @property
    def reason(self) -> str:
        if self.signum is None:
            return "a stop request"
        return signal.Signals(self.signum).name


def _signals_to(control: BatchControl):
    """SIGINT/SIGTERM/SIGHUP become stop requests for the run."""
    return signals.routed(control.request_stop)


def _mp_context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


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

    def table(self):
        from rich.table import Table

        title = (
            f"rig flash {self.firmware['name']} - station {self.station}, "
            f"{len(self.boards)} {self.board} slot(s)"
        )
        table = Table(title=title)
        for name, justify in (
            ("slot", "left"),
            ("MAC", "left"),
            ("result", "left"),
            ("written", "right"),
            ("skipped", "right"),
            ("time", "right"),
            ("error", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=name != "error")
        colour = {OK: "green", FAILED: "red", QUARANTINED: "red", STOPPED: "yellow"}
        for b in self.boards:
            result = b.result
            if result in colour:
                result = f"[{colour[result]}]{result}[/]"
            table.add_row(
                b.slot,
                b.mac or "-",
                result,
                str(b.bytes_written),
                str(b.bytes_skipped),
                f"{b.seconds:.1f} s",
                b.error,
            )
        return table


def run_batch(
    plan: BatchPlan,
    *,
    on_event: Callable[[Event], None] | None = None,
    control: BatchControl | None = None,
    handle_signals: bool = True,
) -> BatchReport:
    """Flash every planned board in parallel (at most ``plan.jobs`` at once) and report.

    Writes ``report.json`` and the per-board logs into a new run directory, and quarantines
    the boards that exhausted their retries. With ``handle_signals`` (main thread only),
    SIGINT/SIGTERM/SIGHUP become stop requests for the duration of the run.
    """
    control = control or BatchControl()
    notify = _safe(on_event)
    started = utc_now()
    run_dir = plan.state.new_run_dir(started)
    report = BatchReport(
        station=plan.station.name,
        board=plan.board,
        firmware={
            "name": plan.firmware.name,
            "sha256": plan.firmware.sha256,
            "offset": plan.firmware.offset,
            "size": sum(len(i.data) for i in plan.images),
        },
        run_dir=str(run_dir),
        state_file=str(plan.state.path),
        started=started.isoformat(),
        jobs=plan.jobs,
        retries=plan.retries,
    )
    t0 = time.monotonic()
    results: dict[str, BoardResult] = {}
    for slot, entry in plan.quarantined.items():
        results[slot] = BoardResult(
            slot,
            result=SKIPPED,
            mac=entry.mac,
            error=f"quarantined since {entry.since_text} (after checking it: "
            f"rig quarantine --clear {slot}): {entry.reason}",
        )
        notify(Event(slot, "skipped", {"error": results[slot].error}))
    pending = plan.to_flash
    for slot in pending:
        notify(Event(slot, "queued"))
    meta = {"station": plan.station.name, "board_type": plan.board, "run": str(run_dir)}
    with _signals_to(control) if handle_signals else contextlib.nullcontext():
        if pending:
            _run_workers(plan, pending, run_dir, meta, results, notify, control)
    if control.stop_requested:
        report.interrupted = control.reason
        for board in results.values():
            if board.result == STOPPED and control.reason not in board.error:
                board.error = f"{control.reason}: {board.error}"
    report.boards = [results[s] for s in plan.slots]
    report.seconds = round(time.monotonic() - t0, 3)
    entries = [
        QuarantineEntry(
            slot=b.slot,
            reason=b.error,
            since=b.ended or utc_now().isoformat(),
            mac=b.mac,
            attempts=b.attempts,
            run_dir=str(run_dir),
        )
        for b in report.boards
        if b.result == QUARANTINED
    ]
    try:
        plan.state.quarantine(entries)
    except StateError as err:
        report.notes.append(f"could not record the quarantine of {len(entries)} slot(s): {err}")
    (run_dir / "report.json").write_text(report.to_json() + "\n")
    return report


def _safe(on_event: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """The display must never break a run (a closed terminal after SIGHUP, a display bug):
    after its first failure it is no longer called."""
    broken: list[BaseException] = []

    def notify(event: Event) -> None:
        if on_event is None or broken:
            return
        try:
            on_event(event)
        except Exception as err:
            broken.append(err)
            logging.getLogger(__name__).warning("progress display failed: %s", err)

    return notify


def _run_workers(plan, pending, run_dir, meta, results, notify, control) -> None:
    ctx = _mp_context()
    events = ctx.Queue()
    stop = ctx.Event()
    pending = list(pending)
    running: dict[str, Any] = {}
    killed: set[str] = set()
    stop_at = hard_at = None

    def handle(event: Event) -> None:
        if event.kind == "result":
            results[event.slot] = BoardResult.from_dict(event.data["result"])
        notify(event)

    def drain(timeout: float) -> bool:
        try:
            handle(events.get(timeout=timeout))
        except queue_module.Empty:
            return False
        return True

    try:
        while pending or running:
            now = time.monotonic()
            if control.stop_requested and stop_at is None:
                stop_at = now
                stop.set()
                notify(Event("", "stopping", {"reason": control.reason}))
                for slot in pending:
                    results[slot] = BoardResult(
                        slot, result=NOT_STARTED, error=f"{control.reason}: not started"
                    )
                    notify(Event(slot, "result", {"result": results[slot].as_dict()}))
                pending.clear()
            if stop_at is not None and not control.hard and now - stop_at > GRACE:
                control.hard = True
            if control.hard and hard_at is None:
                hard_at = now
                for process in running.values():
                    process.terminate()  # SIGTERM: the worker unwinds, relays released
            if hard_at is not None and now - hard_at > KILL_AFTER:
                for slot, process in running.items():
                    process.kill()  # its relays are released below, once it is gone
                    killed.add(slot)
            while pending and len(running) < plan.jobs:
                slot = pending.pop(0)
                job = Job(
                    station=plan.station,
                    slot_id=slot,
                    firmware=plan.firmware.name,
                    images=plan.images,
                    console=plan.firmware.console,
                    retries=plan.retries,
                    backoff=plan.backoff,
                    run_dir=str(run_dir),
                    meta=meta,
                )
                process = ctx.Process(
                    target=_worker_main,
                    args=(job, events, stop),
                    name=f"rig-flash-{slot}",
                    daemon=False,
                )
                process.start()
                running[slot] = process
            if drain(0.1):
                while drain(0.0):
                    pass
            for slot, process in list(running.items()):
                if process.exitcode is None:
                    continue
                deadline = time.monotonic() + 2.0
                while slot not in results and time.monotonic() < deadline:
                    drain(0.2)
                process.join()
                del running[slot]
                if slot not in results:
                    results[slot] = _dead_worker_result(
                        plan.station, slot, process, run_dir / f"{slot}.log", killed=slot in killed
                    )
                    notify(Event(slot, "result", {"result": results[slot].as_dict()}))
        while drain(0.0):
            pass
    finally:
        if running:  # only if the loop itself failed: unwind the workers, relays released
            for process in running.values():
                process.terminate()
            for slot, process in running.items():
                process.join(KILL_AFTER)
                if process.exitcode is None:
                    process.kill()
                    process.join()
                    _release_quietly(plan.station, slot, process, run_dir / f"{slot}.log")
        events.close()
        events.join_thread()
