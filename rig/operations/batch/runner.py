"""Running a batch: every planned board at once, one worker process per board.

``rig flash --board l7x --firmware custom-grbl`` is :func:`~rig.operations.batch.plan.plan_batch`
(all input checked before any relay moves) then :func:`run_batch`. Per board, in its own process
(:mod:`~rig.operations.batch.worker`): lock the slot, connect (download mode by relays, esptool,
stub, baud ladder), make sure a verified backup of the MAC exists (dump one if not), verified fast
write, verify, boot check (the firmware's console pattern). One failing board never stops the
others.

Why processes: esptool's logger (where its progress goes) is one per process, and a slot's lock
and relays belong to one process anyway. Workers are started with the ``forkserver`` method
(``spawn`` where there is none): a clean, single-threaded server process with the rig already
imported (the worker module is preloaded) forks each worker, so a worker starts in milliseconds
without inheriting the parent's threads or file descriptors. Each worker builds its own
:class:`~rig.board.LiveStation`, opens only its own slot, reports events to the parent over a
queue and writes ``<slot>.log`` in the run directory (``<state dir>/runs/<UTC time>/``, see
:mod:`~rig.operations.batch.quarantine`).

Retries: a transient failure (:func:`rig.errors.is_transient`: no download mode, no sync,
timeouts, a lost port) re-runs the whole board attempt - download sequence, connect, backup
check, fast write (which skips what an earlier attempt already wrote), verify, boot check - after
``backoff * 2**(n-1)`` seconds (:mod:`~rig.operations.batch.attempt`). Below that, each attempt's
download sequence is retried ``download_retries`` times by the board (its board type says how
many), and the flasher session resumes a transfer that fails midway by itself (a read per 256 KB
chunk, a write from the last verified block; ``recoveries`` in the result). A board that exhausts
its retries is *quarantined* in the station's state file; later runs skip it until
``rig quarantine --clear ID``. Other failures (the wrong board in the slot, the firmware not
booting, a backup that cannot be stored, a flash sector that does not keep what is written:
:class:`~rig.operations.fastwrite.FlashDefect`) fail the board without retry and without
quarantine.

Stopping: the first SIGINT/SIGTERM/SIGHUP asks every worker to stop at its next safe point -
before a download sequence, before the backup, before the write, before the boot check; a dump
in progress is abandoned at once (it only reads); a write in progress finishes and is verified
(the reconnects it needs included), so no board is left half-written. Boards not started yet are
not started. A second signal (or :data:`GRACE` seconds without the workers finishing) sends
SIGTERM to the workers, which unwind at once through
:func:`~rig.hardware.safety.install_safety_net`. Either way every worker releases its relays (its
slot closes in a ``finally``), records the relay states before and after the release in its
result and its log, and the report says per board what was done and what not. A worker still
running :data:`KILL_AFTER` seconds after the SIGTERM is killed; a killed worker (by the parent,
the OOM killer, a ``kill -9``) releases nothing, so the parent re-opens its slot and releases the
relays itself (:func:`_dead_worker_result`). Workers ignore SIGINT (a Ctrl-C reaches the whole
process group; the parent decides) and watch their parent: if it dies, they stop as if told to.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue as queue_module
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

from rig import config, signals
from rig.board.station import release_abandoned_slot
from rig.hardware.locks import SlotBusy
from rig.operations.batch import worker
from rig.operations.batch.plan import BatchPlan, Job
from rig.operations.batch.quarantine import QuarantineEntry, StateError, utc_now
from rig.operations.batch.results import (
    FAILED,
    NOT_STARTED,
    QUARANTINED,
    SKIPPED,
    STOPPED,
    BatchReport,
    BoardResult,
    Event,
    describe_relays,
)
from rig.operations.batch.worker import BoardLog

__all__ = ["GRACE", "KILL_AFTER", "BatchControl", "run_batch"]

GRACE = 30.0  # seconds after a stop request before the workers are sent SIGTERM
KILL_AFTER = 10.0  # seconds after that before a worker that still runs is killed


def _dead_worker_result(
    station: config.Station,
    slot_id: str,
    process: BaseProcess,
    log_path: Path,
    *,
    killed: bool = False,
) -> BoardResult:
    """The result of a worker that ended without one - killed by the parent after it ignored
    SIGTERM (``killed``), or by anything else (the OOM killer, a kill -9, a crash) - after the
    parent released the slot's relays itself
    (:func:`~rig.board.station.release_abandoned_slot`: a SIGKILLed worker releases nothing, and a
    Raspberry Pi kernel keeps its GPIO outputs driven after it dies).
    """
    how = "killed by the rig after it ignored SIGTERM" if killed else "died"
    result = BoardResult(
        slot_id, result=FAILED, pid=process.pid, log=str(log_path), ended=utc_now().isoformat()
    )
    released = _release_for_dead_worker(station, slot_id, result)
    result.error = (
        f"worker process {how} (exit code {process.exitcode}) without a result; {released}"
    )
    log = BoardLog(log_path)
    try:
        log(f"parent: {result.error}")
        if result.relays_released_by:
            log(f"relays released by the parent: {describe_relays(result.relays_after_release)}")
    finally:
        log.close()
    return result


def _release_quietly(
    station: config.Station, slot_id: str, process: BaseProcess, log_path: Path
) -> None:
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
    try:
        states = release_abandoned_slot(station, slot_id)
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
        return f"releasing its relays failed ({describe_relays(states)}): rig relay --release-all"
    result.relays_released_by = "parent"
    return f"the rig released its relays ({describe_relays(states)})"


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
        ctx.set_forkserver_preload([worker.__name__])  # where the pickled Job's code lives
        return ctx
    return multiprocessing.get_context("spawn")


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
        simulated=plan.station.simulated,
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
    running: dict[str, BaseProcess] = {}
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
                    target=worker.worker_main,
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
