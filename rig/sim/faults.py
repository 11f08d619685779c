"""Fault injection for simulated boards: what benches do to a rig, seeded and reproducible.

A fault is a small frozen dataclass; a board gets a list of them (``SimBoard(inject=[...])``, or
a station's ``simulated: {faults: [...]}``) and a :class:`FaultInjector` wires them into the
board's parts: the UART's line tap (noise, drops, stalls, unplug), the flash's program hook (bad
sector, brown-out), the chip's reset hook (console garbage) and the flash timing (slow flash).
Wiring faults (a relay stuck on or off, IO0 not connected) are the relays' business: the station
reads them with :func:`wiring` and builds the pins accordingly.

Every random choice comes from a ``random.Random`` seeded with the injector's seed, the fault's
index and its kind, so the same faults on the same byte stream do the same thing.

Byte counters (the ``on`` of a fault, where ``after`` and ``length`` count):

* ``to_chip`` - bytes the host sends, as they reach the chip;
* ``to_host`` - bytes the chip sends, as they leave the bridge;
* ``both`` - the two added up;
* ``flash`` - bytes programmed into the flash (events only: "power lost after N bytes of a
  write").

Every fault that fires is recorded in :attr:`FaultInjector.fired` (and in the board's event log).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .flash import REALISTIC, SECTOR_SIZE

if TYPE_CHECKING:
    from .board import SimBoard

__all__ = [
    "COUNTERS",
    "DIRECTIONS",
    "KINDS",
    "BadSector",
    "BrownOut",
    "ConsoleGarbage",
    "Drop",
    "Fault",
    "FaultInjector",
    "Fired",
    "Hang",
    "Io0Open",
    "Noise",
    "RelayStuck",
    "SlowFlash",
    "Stall",
    "Unplug",
    "coerce",
    "fault_from_dict",
    "wiring",
]

DIRECTIONS = ("to_chip", "to_host", "both")
COUNTERS = (*DIRECTIONS, "flash")
ROLES = ("io0", "power", "reset")


class Fault:
    """Base of every fault. ``kind`` is its name in a station file."""

    kind: ClassVar[str] = ""

    def validate(self) -> None:
        """Raise ValueError naming the bad field (``field: problem``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{field}: {message}")


def _check_on(on: str, allowed: Sequence[str]) -> None:
    _check(on in allowed, "on", f"must be one of {', '.join(allowed)} (got {on!r})")


def _check_after(after: int) -> None:
    _check(isinstance(after, int) and after >= 0, "after", "must be a byte count >= 0")


@dataclass(frozen=True)
class Noise(Fault):
    """Bit flips on the line: each byte in the window has one random bit flipped with
    probability ``rate``. The window starts after ``after`` bytes of ``on`` and ends after
    ``length`` bytes or ``duration`` seconds, whichever comes first (neither: it never ends, a
    marginal cable; ``duration``: a burst of interference, which retrying outlasts).

    ``above_baud``: the window only hits bytes that cross the line faster than this rate - a
    marginal cable or USB bridge, clean at 921600 and garbled at 2 Mbaud (a bit cell of 0.5 us
    leaves less margin for slow edges, ringing and the bridge's sampling error than one of
    1.1 us). ``after`` and ``length`` still count every byte of the stream."""

    kind: ClassVar[str] = "noise"
    rate: float
    on: str = "both"
    after: int = 0
    length: int | None = None
    duration: float | None = None
    above_baud: int | None = None

    def validate(self) -> None:
        _check(0 < self.rate <= 1, "rate", f"must be above 0 and at most 1 (got {self.rate})")
        _check_on(self.on, DIRECTIONS)
        _check_after(self.after)
        _check(self.length is None or self.length > 0, "length", "must be a byte count > 0")
        _check(
            self.duration is None or 0 < self.duration <= 3600,
            "duration",
            f"must be in (0, 3600] seconds (got {self.duration})",
        )
        _check(
            self.above_baud is None or (isinstance(self.above_baud, int) and self.above_baud > 0),
            "above_baud",
            f"must be a baud rate > 0 (got {self.above_baud!r})",
        )


@dataclass(frozen=True)
class Drop(Noise):
    """Lost bytes: each byte in the window vanishes with probability ``rate`` (an overrun
    FIFO, a marginal cable)."""

    kind: ClassVar[str] = "drop"


@dataclass(frozen=True)
class Stall(Fault):
    """Silence: after ``after`` bytes of ``on`` nothing moves in either direction for
    ``seconds`` (the bytes are held back, then delivered, as a USB bridge that stops being
    polled does)."""

    kind: ClassVar[str] = "stall"
    seconds: float
    after: int = 0
    on: str = "to_chip"

    def validate(self) -> None:
        _check(0 < self.seconds <= 600, "seconds", f"must be in (0, 600] (got {self.seconds})")
        _check_after(self.after)
        _check_on(self.on, COUNTERS)


@dataclass(frozen=True)
class Unplug(Fault):
    """The USB cable is bumped: after ``after`` bytes of ``on`` the port vanishes (an open
    handle gets I/O errors, bytes in flight are lost) and after ``gone`` seconds it comes back
    under a *new* device path (the stable alias follows it). A USB-powered board (devkit) is
    power-cycled by it; a board with its own supply (l7x) keeps running. ``gone=None``: it stays
    out until :meth:`SimBoard.replug`."""

    kind: ClassVar[str] = "unplug"
    after: int = 0
    on: str = "to_chip"
    gone: float | None = 1.0

    def validate(self) -> None:
        _check_after(self.after)
        _check_on(self.on, COUNTERS)
        _check(
            self.gone is None or 0 <= self.gone <= 60,
            "gone",
            f"must be in [0, 60] seconds (got {self.gone})",
        )


@dataclass(frozen=True)
class BrownOut(Fault):
    """The supply sags: after ``after`` bytes of ``on`` (default: bytes programmed into flash)
    the chip loses power mid-operation; the supply is back ``off`` seconds later and the chip
    boots again from whatever its straps say (IO0 released: from the half-written flash)."""

    kind: ClassVar[str] = "brownout"
    after: int = 0
    on: str = "flash"
    off: float = 0.05

    def validate(self) -> None:
        _check_after(self.after)
        _check_on(self.on, COUNTERS)
        _check(0 <= self.off <= 60, "off", f"must be in [0, 60] seconds (got {self.off})")


@dataclass(frozen=True)
class BadSector(Fault):
    """A worn-out flash: programming ``count`` sectors from ``address`` silently does nothing
    (the chip says OK; the bits stay as they were). Erase and read work."""

    kind: ClassVar[str] = "bad_sector"
    address: int
    count: int = 1

    def validate(self) -> None:
        _check(
            isinstance(self.address, int) and self.address >= 0 and self.address % SECTOR_SIZE == 0,
            "address",
            f"must be a 4 KB aligned flash address (got {self.address!r})",
        )
        _check(1 <= self.count <= 1024, "count", f"must be 1..1024 sectors (got {self.count})")

    @property
    def end(self) -> int:
        return self.address + self.count * SECTOR_SIZE


@dataclass(frozen=True)
class Hang(Fault):
    """The chip stops answering after ``after`` bytes of ``on`` (ESD, a marginal supply, a
    crystal that lost lock): powered, silent, deaf until the next reset or power cycle."""

    kind: ClassVar[str] = "hang"
    after: int = 0
    on: str = "to_chip"

    def validate(self) -> None:
        _check_after(self.after)
        _check_on(self.on, COUNTERS)


@dataclass(frozen=True)
class RelayStuck(Fault):
    """The relay of ``role`` has its contact welded closed (``state: on``) or never closes
    (``state: off``), whatever its coil is driven with. The pin still reads as driven."""

    kind: ClassVar[str] = "relay_stuck"
    role: str = "power"
    state: str = "on"

    def validate(self) -> None:
        _check(self.role in ROLES, "role", f"must be one of {', '.join(ROLES)}")
        _check(self.state in ("on", "off"), "state", f"must be on or off (got {self.state!r})")


@dataclass(frozen=True)
class Io0Open(Fault):
    """The IO0 relay's wire does not reach the module: the board never enters download mode
    (the same as ``io0_connected: false``)."""

    kind: ClassVar[str] = "io0_open"


@dataclass(frozen=True)
class SlowFlash(Fault):
    """A slow (old, hot or worn) flash chip: erases take ``factor`` times the datasheet's
    typical time (4 KB sector 45 ms, 64 KB block 150 ms, chip 10 s), even on an otherwise
    instant simulated board."""

    kind: ClassVar[str] = "slow_flash"
    factor: float = 10.0

    def validate(self) -> None:
        _check(1 <= self.factor <= 100, "factor", f"must be in [1, 100] (got {self.factor})")


@dataclass(frozen=True)
class ConsoleGarbage(Fault):
    """``bytes`` random bytes on the console at every power-on / EN reset, before the ROM's
    banner (a bridge powering up, a glitching TX line); ``resets`` limits it to the first N
    resets (None: all)."""

    kind: ClassVar[str] = "console_garbage"
    bytes: int = 64
    resets: int | None = None

    def validate(self) -> None:
        _check(1 <= self.bytes <= 65536, "bytes", f"must be 1..65536 (got {self.bytes})")
        _check(self.resets is None or self.resets >= 1, "resets", "must be >= 1")


KINDS: dict[str, type[Fault]] = {
    cls.kind: cls
    for cls in (
        Noise,
        Drop,
        Stall,
        Unplug,
        BrownOut,
        BadSector,
        Hang,
        RelayStuck,
        Io0Open,
        SlowFlash,
        ConsoleGarbage,
    )
}
LINE_EVENTS = (Stall, Unplug, BrownOut, Hang)


def fault_from_dict(spec: dict[str, Any]) -> Fault:
    """``{"kind": "stall", "seconds": 2, "after": 1000}`` -> ``Stall(2, after=1000)``."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    cls = KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"kind: unknown fault kind {kind!r} (kinds: {', '.join(KINDS)})")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a setting of a {kind} fault")
    try:
        fault = cls(**spec)
    except TypeError as err:  # a required setting missing
        raise ValueError(f"kind: a {kind} fault is incomplete: {err}") from None
    fault.validate()
    return fault


def coerce(spec: Any) -> Fault:
    """A fault from a :class:`Fault`, a dict, or a config ``FaultSpec`` (``.settings()``)."""
    if isinstance(spec, Fault):
        spec.validate()
        return spec
    if isinstance(spec, dict):
        return fault_from_dict(spec)
    settings = getattr(spec, "settings", None)
    if callable(settings):
        return fault_from_dict(settings())
    raise TypeError(f"not a fault: {spec!r}")


def wiring(faults: Iterable[Fault]) -> tuple[dict[str, bool], bool]:
    """Relay faults for the station: ``({role: contact closed}, io0 connected)``."""
    stuck: dict[str, bool] = {}
    io0_connected = True
    for fault in faults:
        if isinstance(fault, RelayStuck):
            stuck[fault.role] = fault.state == "on"
        elif isinstance(fault, Io0Open):
            io0_connected = False
    return stuck, io0_connected


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
    """Applies a list of faults to one :class:`~rig.sim.board.SimBoard`."""

    def __init__(self, board: SimBoard, faults: Iterable[Fault] = (), seed: str | int = 0) -> None:
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
        fault.validate()
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
            fault = dataclasses.replace(fault, after=fault.after + self._count(on))  # type: ignore[type-var]
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
        self.board._log(f"fault {fault.kind}: {what}")

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
        from .board import PowerLost

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
