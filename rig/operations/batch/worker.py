"""One board's worker: the process entry point, its stop flag, its event emitter, its log, and
:func:`flash_board`, which locks the slot, runs the attempts and always closes the slot.

Importable at the top level and named in the forkserver's preload list by the runner: a
:class:`Job` is pickled to the worker, which finds this module already imported.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rig import signals
from rig.board.station import LiveStation
from rig.hardware.locks import SlotBusy
from rig.hardware.safety import install_safety_net
from rig.operations.batch.attempt import BoardAttempts, Stopped
from rig.operations.batch.plan import Job
from rig.operations.batch.quarantine import utc_now
from rig.operations.batch.results import FAILED, STEPS, STOPPED, BoardResult, Event, describe_relays
from rig.signals import Terminated

__all__ = [
    "BoardLog",
    "Emitter",
    "EventLike",
    "EventSink",
    "StopFlag",
    "flash_board",
    "worker_main",
]

PROGRESS_INTERVAL = 0.1  # seconds between progress events of one worker


class EventLike(Protocol):
    """The parent's stop event (``multiprocessing`` or ``threading``)."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class EventSink(Protocol):
    """Where a worker's events go (the parent's queue)."""

    def put(self, obj: Event) -> None: ...


class StopFlag:
    """A worker's view of "stop": the parent's stop event, or the parent gone."""

    def __init__(self, event: EventLike | None = None) -> None:
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


class Emitter:
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


class BoardLog:
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


def flash_board(
    job: Job, emit: Callable[..., None], stop: StopFlag | EventLike | None = None
) -> BoardResult:
    """Flash one board in the calling process: lock, attempts, release; emit and return the
    result. Never raises for a board problem. ``emit(kind, **data)`` receives the events (the
    last one is ``result``); ``stop`` is an event-like object whose ``is_set()`` asks for a stop
    at the next safe point. A SIGINT/SIGTERM that ends the attempts (main thread) is re-raised
    once the slot is closed and the result emitted."""
    stop = stop if isinstance(stop, StopFlag) else StopFlag(stop)
    emitter = emit if isinstance(emit, Emitter) else Emitter(lambda e: emit(e.kind, **e.data), "")
    run_dir = Path(job.run_dir)
    t0, cpu0 = time.monotonic(), time.process_time()
    result = BoardResult(
        job.slot_id,
        result=FAILED,
        pid=os.getpid(),
        log=str(run_dir / f"{job.slot_id}.log"),
        started=utc_now().isoformat(),
    )
    log = BoardLog(Path(result.log))
    log(f"rig flash {job.firmware} on slot {job.slot_id} of station {job.station.name}")
    log(f"pid {os.getpid()}, retries {job.retries}, backoff {job.backoff} s")
    station = LiveStation(job.station)
    slot = None
    run: BoardAttempts | None = None
    outcome: BaseException | None = None
    try:
        emitter("phase", phase="lock")
        slot = station.open_slot(job.slot_id)
        log(f"slot locked ({slot.lock.path})")
        run = BoardAttempts(job, slot, emitter, stop, log, result)
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
                + describe_relays(result.relays_before_release)
                + "; after release: "
                + describe_relays(result.relays_after_release)
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


def _judge(
    outcome: BaseException | None,
    result: BoardResult,
    run: BoardAttempts | None,
    log: Callable[[str], None],
) -> None:
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


def worker_main(job: Job, events: EventSink, stop_event: EventLike) -> None:
    """Entry point of a worker process."""
    signals.ignore(signal.SIGINT)  # Ctrl-C hits the process group; the parent decides
    install_safety_net(signals.TERMINATING)  # SIGTERM/SIGHUP -> Terminated (unwind); atexit
    handler = logging.FileHandler(Path(job.run_dir) / f"{job.slot_id}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.getLogger("rig").addHandler(handler)
    emit = Emitter(events.put, job.slot_id)
    emit("started", pid=os.getpid())
    flash_board(job, emit, StopFlag(stop_event))  # emits the result, re-raises Terminated
