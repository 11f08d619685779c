"""The attempts on one board in its open slot: connect, backup, boot plan, write, verify, boot
check, with a safe point before each, retries with backoff after a transient failure.

A transient failure (:func:`rig.errors.is_transient`: no download mode, no sync, timeouts, a lost
port) re-runs the whole attempt after ``backoff * 2**(n-1)`` seconds; anything else (the wrong
board, a firmware that does not boot, a backup that cannot be stored, a flash defect) ends the
board's run. A stop request ends it at the next safe point (:class:`Stopped`), except inside a
write, which finishes and is verified first.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, Protocol

from rig.board.board import DownloadModeError
from rig.board.protocols import BoardHandle, DownloadEvidenceLike
from rig.board.station import LiveSlot
from rig.errors import OperationError, is_transient
from rig.hardware.ports import PortSpec
from rig.operations import steps
from rig.operations.backups import BackupStore
from rig.operations.batch.plan import Job
from rig.operations.batch.results import FAILED, OK, QUARANTINED, BoardResult
from rig.operations.fastwrite import PartialWrite
from rig.operations.report import Report
from rig.operations.safeguards import BackupPolicy, explain_failure
from rig.operations.session import FlasherSession, Identity

__all__ = ["CONSOLE_TAIL", "MAX_BACKOFF", "BoardAttempts", "Stopped", "WatchedBoard"]

MAX_BACKOFF = 60.0
CONSOLE_TAIL = 400  # characters of the boot console kept in the report


class Stopped(OperationError):
    """A worker stopped at a safe point because it was asked to (or its parent died)."""


class StopFlag(Protocol):
    """A worker's view of "stop" (:class:`rig.operations.batch.worker.StopFlag`)."""

    def requested(self) -> bool: ...
    def orphaned(self) -> bool: ...
    def wait(self, seconds: float) -> bool: ...


class Emit(Protocol):
    """Events to the parent (:class:`rig.operations.batch.worker.Emitter`)."""

    def __call__(self, kind: str, **data: Any) -> None: ...
    def progress(self, done: int, total: int) -> None: ...


class WatchedBoard:
    """The slot's board as the flasher session sees it (a :class:`BoardHandle`), with a safe
    point before every download sequence and a count of the sequences run; everything else is
    the board itself."""

    def __init__(self, board: BoardHandle, before_download: Callable[[], None]) -> None:
        self._board = board
        self._before = before_download
        self.sequences = 0
        self.slot_id = board.slot_id
        self.type = board.type
        self.clock = board.clock
        self.off, self.run = board.off, board.run
        self.console, self.expect = board.console, board.expect
        self.loader_port = board.loader_port

    @property
    def port(self) -> PortSpec:
        return self._board.port  # a test may swap the board's port (a replugged bridge)

    @property
    def console_baud(self) -> int:
        return self._board.console_baud

    def download_mode(self, retries: int | None = None) -> DownloadEvidenceLike:
        self._before()
        try:
            evidence = self._board.download_mode(retries)
        except DownloadModeError:
            self.sequences += retries or self._board.type.download_retries
            raise
        self.sequences += evidence.attempt
        return evidence


class BoardAttempts:
    """The attempts on one open slot."""

    def __init__(
        self,
        job: Job,
        slot: LiveSlot,
        emit: Emit,
        stop: StopFlag,
        log: Callable[[str], None],
        result: BoardResult,
    ) -> None:
        self.job = job
        self.slot = slot
        self.emit = emit
        self.stop = stop
        self.log = log
        self.result = result
        self.report = Report("flash", job.slot_id)
        self.board = WatchedBoard(slot.board, self._before_download)
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
        """One attempt: the steps (:mod:`rig.operations.steps`) with a safe point before each."""
        job, result, report = self.job, self.result, self.report
        session = FlasherSession(self.board, expected_mac=self.slot.config.expected_mac)
        try:
            self.set_phase("connect", attempt=n)
            ident = steps.identify(report, session, name="connect", detail=self._connected(n))
            result.mac, result.baud = ident.mac, ident.baud
            result.download_sequences = self.board.sequences
            self.log(report.steps[-1].detail)
            self.emit("identified", mac=ident.mac, baud=ident.baud)
            self.checkpoint("the backup")
            self.set_phase("backup")
            policy = BackupPolicy(self.store, "auto", {**job.meta, "slot": job.slot_id})
            check = steps.backup(report, session, policy, self._progress)
            result.backup, result.backup_taken = check.backup.id, check.taken
            self.log(check.detail)
            board_type = self.slot.board_type
            plan = steps.plan(
                report,
                session,
                job.images,
                check.backup,
                board_type,
                erase=False,
                what=job.firmware,
            )
            self.log(report.steps[-1].detail)
            self.checkpoint("the write")
            self.set_phase("write")
            self.writing = True
            stats = steps.write(report, session, plan.images, self._progress)
            self.writing = False
            result.bytes_written += stats.written
            result.bytes_skipped = stats.skipped
            self.log(report.steps[-1].detail)
            self.set_phase("verify")
            steps.verify(report, session, plan.images)
        finally:
            session.close()
            if session.recoveries:
                result.recoveries += session.recoveries
                self.log("recovered inside the session:\n  " + "\n  ".join(session.recoveries))
            if session.log_lines:
                self.log("esptool:\n  " + "\n  ".join(session.log_lines))
        self.checkpoint("the boot check")
        self.set_phase("boot")
        app_offset = plan.app.offset if plan.app is not None else None
        try:
            steps.boot(
                report,
                self.board,
                job.console,
                app_offset=app_offset,
                firmware=job.firmware,
                tail=CONSOLE_TAIL,
            )
        finally:
            console = report.steps[-1].data.get("console")
            if console is not None:
                result.console = console
                self.log("console:\n  | " + "\n  | ".join(console.splitlines()[-8:]))

    def _connected(self, n: int) -> Callable[[Identity], str]:
        """The ``connect`` step's detail: the attempt, the board, the download sequences."""

        def detail(ident: Identity) -> str:
            sequences = self.board.sequences
            return f"attempt {n}: {steps.describe(ident)} ({sequences} download sequence(s) so far)"

        return detail

    def _progress(self, phase: str, done: int, total: int) -> None:
        """Progress to the parent. The ``backup`` phase only moves bytes when it has to dump
        (:func:`~rig.operations.safeguards.ensure_backup` decides): the ``dump`` phase, with its
        byte total, starts then. A dump (it only reads) stops at once when asked to, a write
        only if the parent is gone."""
        abortable = phase == "backup"
        if abortable and self.phase != "dump":
            self.set_phase("dump", total=total)
        if (abortable and self.stop.requested()) or self.stop.orphaned():
            raise Stopped(f"during the {self.phase}")
        self.emit.progress(done, total)

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


def _without_slot(message: str, slot: str) -> str:
    """``"l7x-1: cannot connect: l7x-1: no ROM..."`` -> ``"cannot connect: no ROM..."`` (the
    report names the slot already)."""
    return message.replace(f"{slot}: ", "")
