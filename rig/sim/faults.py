"""Fault injection for simulated boards: what benches do to a rig, seeded and reproducible.

The faults are the models of :mod:`rig.config.faults` (one schema for station files, tests and
the simulator; they are re-exported here as the vocabulary of ``SimBoard(inject=[...])``). A
:class:`FaultInjector` wires them into the parts of a :class:`FaultTarget` (a simulated board):
the UART's line tap (noise, drops, stalls, unplug), the flash's program hook (bad sector,
brown-out), the chip's reset hook (console garbage) and the flash timing (slow flash). Wiring
faults (a relay stuck on or off, IO0 not connected) are the relays' business: the station reads
them with :func:`~rig.config.faults.wiring` and builds the pins accordingly.

Every random choice comes from a ``random.Random`` seeded with the injector's seed, the fault's
index and its kind, so the same faults on the same byte stream do the same thing. Every fault
that fires is recorded in :attr:`FaultInjector.fired` (and in the board's event log).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from rig.config.faults import (
    COUNTERS,
    DIRECTIONS,
    FAULT_KINDS,
    BadSector,
    BrownOut,
    ConsoleGarbage,
    Drop,
    Fault,
    Hang,
    Io0Open,
    Noise,
    RelayStuck,
    SlowFlash,
    Stall,
    Unplug,
    parse_fault,
    wiring,
)

from .errors import PowerLost
from .parts.flash import REALISTIC, NorFlash
from .scheduler import Scheduler

__all__ = [
    "COUNTERS",
    "DIRECTIONS",
    "FAULT_KINDS",
    "BadSector",
    "BrownOut",
    "ConsoleGarbage",
    "Drop",
    "Fault",
    "FaultInjector",
    "FaultTarget",
    "Fired",
    "Hang",
    "Io0Open",
    "Noise",
    "RelayStuck",
    "SlowFlash",
    "Stall",
    "Unplug",
    "parse_fault",
    "wiring",
]

LINE_EVENTS = (Stall, Unplug, BrownOut, Hang)


class FaultTarget(Protocol):
    """What the injector needs of a board (:class:`~rig.sim.board.SimBoard` has it all)."""

    uart: TargetUart
    flash: NorFlash
    chip: TargetChip
    lock: AbstractContextManager[Any]  # the board's lock (an RLock)
    scheduler: Scheduler

    def log_event(self, what: str) -> None: ...
    def brown_out(self, off: float = 0.05) -> None: ...
    def unplug(self, gone: float | None = 1.0) -> None: ...


class TargetUart(Protocol):
    """The bridge: its line tap, rate and port, a stall, and the console output."""

    tap: Callable[[bytes, bool], list] | None
    baud: int
    path: str

    def silence(self, seconds: float) -> None: ...
    def send(self, data: bytes) -> None: ...


class TargetChip(Protocol):
    """The chip: its reset hook and a hang."""

    on_reset: Callable[[], None] | None

    def hang(self) -> None: ...


@dataclass(frozen=True)
class Fired:
    t: float  # time.monotonic()
    index: int  # position in the injector's fault list
    kind: str
    what: str


class _Window:
    """Noise / drop: which bytes of a stream get hit, with a geometric skip between hits."""

    def __init__(self, index: int, fault: Noise, rng: random.Random) -> None:
        self.index = index
        self.fault = fault
        self.rng = rng
        self.gap = self._draw()
        self.hits = 0
        self.started: float | None = None  # when the first byte of the window went by
        self.over = False

    def _draw(self) -> int:
        rate = self.fault.rate
        if rate >= 1:
            return 0
        u = self.rng.random()
        return int(math.log1p(-u) / math.log1p(-rate))

    def apply(self, data: bytes, start: int) -> bytes:
        """``data`` occupies stream positions ``start..``; corrupt or drop the hits."""
        f = self.fault
        lo = max(f.after, start)
        hi = start + len(data) if f.length is None else min(start + len(data), f.after + f.length)
        if lo >= hi or self.over:
            return data
        if f.duration is not None:
            now = time.monotonic()
            if self.started is None:
                self.started = now
            elif now - self.started > f.duration:
                self.over = True
                return data
        out = bytearray(data)
        drops: list[int] = []
        pos = lo
        while True:
            pos += self.gap
            if pos >= hi:
                self.gap = pos - hi
                break
            i = pos - start
            if isinstance(f, Drop):
                drops.append(i)
            else:
                out[i] ^= 1 << self.rng.randrange(8)
            self.hits += 1
            self.gap = self._draw()
            pos += 1
        for i in reversed(drops):
            del out[i]
        return bytes(out)


class FaultInjector:
    """Applies a list of faults to one board (a :class:`FaultTarget`)."""

    def __init__(
        self, board: FaultTarget, faults: Iterable[Fault] = (), seed: str | int = 0
    ) -> None:
        self.board = board
        self.seed = seed
        self.faults: list[Fault] = []
        self.fired: list[Fired] = []
        self.counts = {"to_chip": 0, "to_host": 0, "flash": 0}
        self._lock = threading.Lock()
        self._windows: list[_Window] = []
        self._armed: list[tuple[int, Fault]] = []  # one-shot events not fired yet
        self._bad: list[BadSector] = []
        self._garbage: list[tuple[int, ConsoleGarbage, random.Random]] = []
        self._resets = 0
        board.uart.tap = self._tap
        board.flash.program_hook = self._program
        board.chip.on_reset = self._on_reset
        for fault in faults:
            self.add(fault)

    # -- configuration ----------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        """Arm one more fault (counters keep running: ``after`` counts from the board's start,
        use :meth:`add_after_now` to count from now)."""
        with self._lock:
            index = len(self.faults)
            self.faults.append(fault)
            rng = random.Random(f"{self.seed}:{index}:{fault.kind}")
            if isinstance(fault, Noise):
                self._windows.append(_Window(index, fault, rng))
            elif isinstance(fault, LINE_EVENTS):
                self._armed.append((index, fault))
            elif isinstance(fault, BadSector):
                self._bad.append(fault)
            elif isinstance(fault, ConsoleGarbage):
                self._garbage.append((index, fault, rng))
        if isinstance(fault, (RelayStuck, Io0Open)):
            self._fire(index, fault, "relay wiring fault (applied by the station's pins)")
        if isinstance(fault, SlowFlash):
            self._fire(index, fault, f"erases {fault.factor:g}x slower than typical")
            flash = self.board.flash
            flash.timing = dataclasses.replace(
                flash.timing,
                sector_erase_s=REALISTIC.sector_erase_s * fault.factor,
                block_erase_s=REALISTIC.block_erase_s * fault.factor,
                chip_erase_s=REALISTIC.chip_erase_s * fault.factor,
            )
        return fault

    def add_after_now(self, fault: Fault) -> Fault:
        """Arm a fault whose ``after`` counts from the current position of its stream."""
        on = getattr(fault, "on", None)
        if on is not None and hasattr(fault, "after"):
            fault = fault.model_copy(update={"after": fault.after + self._count(on)})
        return self.add(fault)

    @property
    def wiring(self) -> tuple[dict[str, bool], bool]:
        return wiring(self.faults)

    def _count(self, on: str) -> int:
        if on == "both":
            return self.counts["to_chip"] + self.counts["to_host"]
        return self.counts[on]

    def _fire(self, index: int, fault: Fault, what: str) -> None:
        self.fired.append(Fired(time.monotonic(), index, fault.kind, what))
        self.board.log_event(f"fault {fault.kind}: {what}")

    # -- the line -------------------------------------------------------------------------------
    def _tap(self, data: bytes, to_chip: bool) -> list[bytes | Callable[[], None]]:
        """Bytes crossing the bridge -> what arrives, with actions between the bytes."""
        direction = "to_chip" if to_chip else "to_host"
        with self._lock:
            start = {d: self._count(d) for d in DIRECTIONS}
            self.counts[direction] += len(data)
            # Events: (position in data, index, fault), the earliest first.
            events = []
            for index, fault in self._armed:
                on = fault.on
                if on not in (direction, "both"):
                    continue
                k = fault.after - start[on]
                if k < len(data):
                    events.append((max(k, 0), index, fault))
            events.sort(key=lambda e: (e[0], e[1]))
            for _, index, fault in events:
                self._armed.remove((index, fault))
        parts: list[bytes | Callable[[], None]] = []
        pos = 0
        for n, (k, index, fault) in enumerate(events):
            parts.append(data[pos:k])
            pos = k
            parts.append(self._action(index, fault, in_rx=to_chip))
            if isinstance(fault, (Unplug, Hang, BrownOut)):
                pos = len(data)  # the rest never arrives; later events strike at the next byte
                with self._lock:
                    self._armed.extend((i, f) for _, i, f in events[n + 1 :])
                break
        parts.append(data[pos:])
        # Noise and drops, on the stream positions of each part's bytes.
        if self._windows:
            offset = 0
            for i, part in enumerate(parts):
                if isinstance(part, bytes) and part:
                    parts[i] = self._corrupt(part, start, offset, direction)
                    offset += len(part)  # stream positions of the bytes as they were sent
        return [p for p in parts if not isinstance(p, bytes) or p]

    def _corrupt(self, part: bytes, start: dict[str, int], offset: int, direction: str) -> bytes:
        baud = self.board.uart.baud  # the line's rate (the chip's UART follows the host's)
        for window in self._windows:
            on = window.fault.on
            if on not in (direction, "both"):
                continue
            if window.fault.above_baud is not None and baud <= window.fault.above_baud:
                continue
            before = window.hits
            part = window.apply(part, start[on] + offset)
            if window.hits != before:
                n = window.hits - before
                verb = "dropped" if isinstance(window.fault, Drop) else "corrupted"
                self._fire(window.index, window.fault, f"{n} byte(s) {verb} {direction}")
        return part

    def _action(self, index: int, fault: Fault, *, in_rx: bool) -> Callable[[], None]:
        """What a line event does, run by the UART thread at the event's byte."""
        board = self.board

        def act() -> None:
            if isinstance(fault, Stall):
                self._fire(index, fault, f"line silent for {fault.seconds:g} s")
                board.uart.silence(fault.seconds)
            elif isinstance(fault, Unplug):
                gone = "for good" if fault.gone is None else f"for {fault.gone:g} s"
                self._fire(index, fault, f"port {board.uart.path} unplugged {gone}")
                board.unplug(fault.gone)
            elif isinstance(fault, Hang):
                self._fire(index, fault, "chip hangs")
                self._on_board(board.chip.hang, in_rx)
            elif isinstance(fault, BrownOut):
                self._fire(index, fault, f"brown-out, supply back after {fault.off:g} s")
                self._on_board(lambda: board.brown_out(fault.off), in_rx)

        return act

    def _on_board(self, fn: Callable[[], None], in_rx: bool) -> None:
        # The receive thread may take the board's lock (it does for every byte it delivers); the
        # transmit thread must not wait for it (a lock holder may be waiting for the transmit
        # queue to drain), so it hands the work to the board's timer thread.
        if in_rx:
            with self.board.lock:
                fn()
        else:
            self.board.scheduler.call_later(0, fn)

    # -- the flash ------------------------------------------------------------------------------
    def _program(self, offset: int, data: bytes, program: Callable[[int, bytes], None]) -> None:
        """NorFlash.program through the faults (called under the board's lock)."""
        with self._lock:
            start = self.counts["flash"]
            self.counts["flash"] += len(data)
            due = [(f.after, i, f) for i, f in self._armed if f.on == "flash"]
            due = [d for d in due if d[0] - start < len(data)]
            event = min(due, key=lambda d: d[:2])[1:] if due else None
            if event is not None:
                self._armed.remove(event)
        cut = len(data) if event is None else max(0, event[1].after - start)
        self._program_good(offset, data[:cut], program)
        if event is None:
            return
        index, fault = event
        self._action(index, fault, in_rx=True)()
        if isinstance(fault, (BrownOut, Hang, Unplug)):
            raise PowerLost()  # the chip is gone (or deaf) mid-operation
        self._program_good(offset + cut, data[cut:], program)

    def _program_good(self, offset: int, data: bytes, program: Callable[[int, bytes], None]):
        """Program ``data`` except where a bad sector silently ignores it."""
        pos, end = offset, offset + len(data)
        while pos < end:
            bad = next((b for b in self._bad if b.address <= pos < b.end), None)
            if bad is not None:
                skip = min(bad.end, end)
                index = self.faults.index(bad)
                self._fire(index, bad, f"{skip - pos} byte(s) at {pos:#x} not programmed")
                pos = skip
                continue
            nxt = min([b.address for b in self._bad if b.address > pos] + [end])
            program(pos, data[pos - offset : nxt - offset])
            pos = nxt

    # -- resets ---------------------------------------------------------------------------------
    def _on_reset(self) -> None:
        """Power-on / EN reset (under the board's lock): garbage before the ROM banner."""
        self._resets += 1
        for index, fault, rng in self._garbage:
            if fault.resets is None or self._resets <= fault.resets:
                self._fire(index, fault, f"{fault.bytes} garbage byte(s) on the console")
                self.board.uart.send(rng.randbytes(fault.bytes))
