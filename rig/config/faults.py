"""Injected faults of a simulated board: one frozen model per kind, one schema for everything.

A station's ``simulated: {faults: [...]}`` entries, ``SimBoard(inject=[...])`` and the fault
matrix all use these models; the simulator's injector (:mod:`rig.sim.faults`) consumes them as
they are. :data:`FaultSpec` is the union of the kinds, told apart by ``kind``; a dict becomes a
fault through :func:`parse_fault` (or as part of a station file, with ``file:line`` errors).

Byte counts (``after``, ``length``) count on the stream named by ``on``:

* ``to_chip`` - bytes the host sends, as they reach the chip;
* ``to_host`` - bytes the chip sends, as they leave the bridge;
* ``both`` - the two added up;
* ``flash`` - bytes programmed into the flash (events only: "power lost after N bytes of a
  write").

What each kind does to the board: docs/faults.md and the docstrings below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BeforeValidator,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from rig.errors import BadInput
from rig.esp32 import SECTOR

from .errors import fail, problems_of
from .types import INT_OR_HEX, FrozenModel, Offset, Role, int_like
from .yamlpos import format_path

__all__ = [
    "COUNTERS",
    "DIRECTIONS",
    "FAULT_KINDS",
    "BadSector",
    "BrownOut",
    "ConsoleGarbage",
    "Drop",
    "Fault",
    "FaultSpec",
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

Direction = Literal["to_chip", "to_host", "both"]  # the line: what noise and drops hit
Counter = Literal["to_chip", "to_host", "both", "flash"]  # what an event's `after` counts
DIRECTIONS: tuple[str, ...] = get_args(Direction)
COUNTERS: tuple[str, ...] = get_args(Counter)


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise fail(f"expected a number, not a boolean (got {value!r})")
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]
ByteCount = Annotated[
    int,
    BeforeValidator(lambda v: int_like(v, "a byte count")),
    Field(ge=0),
    WithJsonSchema(INT_OR_HEX),
]


class Fault(FrozenModel):
    """The base of every fault kind; ``kind`` is its name in a station file."""

    kind: str

    @model_validator(mode="before")
    @classmethod
    def _settings_of_kind(cls, data: Any) -> Any:
        """An unknown key names the settings this kind takes (not pydantic's generic text)."""
        if isinstance(data, Mapping):
            takes = [name for name in cls.model_fields if name != "kind"]
            for key in data:
                if key != "kind" and key not in takes:
                    it = f"takes {', '.join(takes)}" if takes else "takes no settings"
                    raise fail(
                        f"{key!r} is not a setting of a {cls.kind_name()} fault (it {it})", key
                    )
        return data

    @classmethod
    def kind_name(cls) -> str:
        return get_args(cls.model_fields["kind"].annotation)[0]


class Noise(Fault):
    """Bit flips on the line: each byte in the window has one random bit flipped with
    probability ``rate``. The window starts after ``after`` bytes of ``on`` and ends after
    ``length`` bytes or ``duration`` seconds, whichever comes first (neither: it never ends, a
    marginal cable; ``duration``: a burst of interference, which retrying outlasts).

    ``above_baud``: the window only hits bytes that cross the line faster than this rate - a
    marginal cable or USB bridge, clean at 921600 and garbled at 2 Mbaud (a bit cell of 0.5 us
    leaves less margin for slow edges, ringing and the bridge's sampling error than one of
    1.1 us). ``after`` and ``length`` still count every byte of the stream."""

    kind: Literal["noise"] = "noise"
    rate: Annotated[Number, Field(gt=0, le=1)]  # per byte
    on: Direction = "both"
    after: ByteCount = 0
    length: Annotated[ByteCount, Field(gt=0)] | None = None  # bytes the window lasts
    duration: Annotated[Number, Field(gt=0, le=3600)] | None = None  # seconds it lasts at most
    above_baud: Annotated[int, Strict(), Field(gt=0)] | None = None  # faster rates only


class Drop(Noise):
    """Lost bytes: each byte in the window vanishes with probability ``rate`` (an overrun
    FIFO, a marginal cable); the window as for :class:`Noise`."""

    kind: Literal["drop"] = "drop"  # type: ignore[assignment]


class Stall(Fault):
    """Silence: after ``after`` bytes of ``on`` nothing moves in either direction for
    ``seconds`` (the bytes are held back, then delivered, as a USB bridge that stops being
    polled does)."""

    kind: Literal["stall"] = "stall"
    seconds: Annotated[Number, Field(gt=0, le=600)]
    after: ByteCount = 0
    on: Counter = "to_chip"


class Unplug(Fault):
    """The USB cable is bumped: after ``after`` bytes of ``on`` the port vanishes (an open
    handle gets I/O errors, bytes in flight are lost) and after ``gone`` seconds it comes back
    under a *new* device path (the stable alias follows it). A USB-powered board (devkit) is
    power-cycled by it; a board with its own supply (l7x) keeps running. ``gone=None``: it stays
    out until :meth:`SimBoard.replug`."""

    kind: Literal["unplug"] = "unplug"
    after: ByteCount = 0
    on: Counter = "to_chip"
    gone: Annotated[Number, Field(ge=0, le=60)] | None = 1.0  # seconds until re-enumerated


class BrownOut(Fault):
    """The supply sags: after ``after`` bytes of ``on`` (default: bytes programmed into flash)
    the chip loses power mid-operation; the supply is back ``off`` seconds later and the chip
    boots again from whatever its straps say (IO0 released: from the half-written flash)."""

    kind: Literal["brownout"] = "brownout"
    after: ByteCount = 0
    on: Counter = "flash"
    off: Annotated[Number, Field(ge=0, le=60)] = 0.05  # seconds without supply


class BadSector(Fault):
    """A worn-out flash: programming ``count`` sectors from ``address`` silently does nothing
    (the chip says OK; the bits stay as they were). Erase and read work."""

    kind: Literal["bad_sector"] = "bad_sector"
    address: Offset  # 4 KB aligned
    count: Annotated[int, Strict(), Field(ge=1, le=1024)] = 1

    @property
    def end(self) -> int:
        return self.address + self.count * SECTOR


class Hang(Fault):
    """The chip stops answering after ``after`` bytes of ``on`` (ESD, a marginal supply, a
    crystal that lost lock): powered, silent, deaf until the next reset or power cycle."""

    kind: Literal["hang"] = "hang"
    after: ByteCount = 0
    on: Counter = "to_chip"


class RelayStuck(Fault):
    """The relay of ``role`` has its contact welded closed (``state: on``) or never closes
    (``state: off``), whatever its coil is driven with. The pin still reads as driven."""

    kind: Literal["relay_stuck"] = "relay_stuck"
    role: Role = "power"
    state: Literal["on", "off"] = "on"


class Io0Open(Fault):
    """The IO0 relay's wire does not reach the module: the board never enters download mode
    (the same as ``io0_connected: false``)."""

    kind: Literal["io0_open"] = "io0_open"


class SlowFlash(Fault):
    """A slow (old, hot or worn) flash chip: erases take ``factor`` times the datasheet's
    typical time (4 KB sector 45 ms, 64 KB block 150 ms, chip 10 s), even on an otherwise
    instant simulated board."""

    kind: Literal["slow_flash"] = "slow_flash"
    factor: Annotated[Number, Field(ge=1, le=100)] = 10.0


class ConsoleGarbage(Fault):
    """``bytes`` random bytes on the console at every power-on / EN reset, before the ROM's
    banner (a bridge powering up, a glitching TX line); ``resets`` limits it to the first N
    resets (None: all)."""

    kind: Literal["console_garbage"] = "console_garbage"
    bytes: Annotated[int, Strict(), Field(ge=1, le=65536)] = 64
    resets: Annotated[int, Strict(), Field(ge=1)] | None = None


_KINDS = (
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
FAULT_KINDS: dict[str, type[Fault]] = {cls.kind_name(): cls for cls in _KINDS}


def _known_kind(data: Any) -> Any:
    """One clear error for an entry that is not a fault of a known kind."""
    if isinstance(data, Fault):
        return data
    if not isinstance(data, Mapping):
        raise fail(f"a fault is a mapping such as {{kind: stall, seconds: 2}} (got {data!r})")
    kinds = ", ".join(FAULT_KINDS)
    if "kind" not in data:
        raise fail(f"a fault needs a kind: one of {kinds}", "kind")
    if not isinstance(data["kind"], str) or data["kind"] not in FAULT_KINDS:
        raise fail(f"unknown fault kind {data['kind']!r} (kinds: {kinds})", "kind")
    return data


FaultSpec = Annotated[
    Union[_KINDS],  # noqa: UP007 - a union of the tuple's members
    Field(discriminator="kind"),
    BeforeValidator(_known_kind),
]
_ADAPTER: TypeAdapter[Fault] = TypeAdapter(FaultSpec)


def parse_fault(spec: Mapping[str, Any] | Fault) -> Fault:
    """``{"kind": "stall", "seconds": 2, "after": 1000}`` -> ``Stall(seconds=2.0, after=1000)``.

    Bad input raises :class:`~rig.errors.BadInput` naming each bad field the way a station
    file's errors do (``rate: Input should be less than or equal to 1 (got 2)``).
    """
    try:
        return _ADAPTER.validate_python(spec)
    except ValidationError as exc:
        problems = problems_of(exc, FaultSpec)
        text = "; ".join(f"{format_path(at)}: {msg}" if at else msg for at, msg, _ in problems)
        raise BadInput(text) from None


def wiring(faults: Iterable[Fault]) -> tuple[dict[str, bool], bool]:
    """What relay faults do to a slot's wiring: ``({role: contact closed}, io0 connected)``."""
    stuck: dict[str, bool] = {}
    io0_connected = True
    for fault in faults:
        if isinstance(fault, RelayStuck):
            stuck[fault.role] = fault.state == "on"
        elif isinstance(fault, Io0Open):
            io0_connected = False
    return stuck, io0_connected
