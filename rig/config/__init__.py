"""Board types and stations: YAML files -> frozen, typed, cross-checked models.

The bottom of the dependency stack: imports nothing else from ``rig``.

* A **board type** (``configs/boards/<name>.yaml``) says what a kind of board is: chip, flash size,
  serial facts, the relay roles it needs, its boot sequences as data, a firmware catalog and its
  known flash layout -> :class:`BoardType`.
* A **station** (``configs/stations/<name>.yaml``) is one physical rig: pin backend, backups and
  lock directories, and slots (board type, serial port, relay channel per role) -> :class:`Station`.

Files are read with :mod:`rig.yamlpos` (YAML 1.2 booleans: a bare ``off`` is a string; duplicate
keys rejected; positions kept), validated by pydantic, then cross-checked. Every problem becomes
a :class:`ConfigError` that reads ``file:line:col: where: message``, e.g.
``configs/stations/pi.yaml:14:7: slots[1].relays.io0.pin: pin 27 is already used by power of slot
l7x-1``. Loaders raise the first error with all of them in ``.errors``; :func:`check_files`
returns every problem of every file.

Paths in files (firmware files, backups, locks, simulated flash images) expand ``~``, ``$VAR``,
``${VAR}`` and ``${VAR:-default}`` and are resolved against the directory of the file.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from .yamlpos import DataPath, Document, YamlError, format_path, load_yaml

__all__ = [
    "ACTIONS",
    "MAX_WAIT",
    "ROLES",
    "BoardType",
    "ConfigError",
    "Firmware",
    "FlashRegion",
    "FaultSpec",
    "FlashSpec",
    "PinsConfig",
    "RelayChannel",
    "Rfc2217Mapping",
    "Sequences",
    "SerialFacts",
    "SimSlot",
    "Slot",
    "Station",
    "Step",
    "board_dirs_for",
    "builtin_configs_dir",
    "check_files",
    "default_station",
    "json_schema",
    "load_board",
    "load_boards",
    "load_station",
    "station_from_env",
]

Role = Literal["io0", "power", "reset"]
ROLES: tuple[str, ...] = get_args(Role)
Action = Literal["close", "open", "press", "release", "pulse", "wait"]
ACTIONS: tuple[str, ...] = get_args(Action)
MAX_WAIT = 60.0  # seconds: the longest wait or pulse a sequence step may ask for
MB = 1024 * 1024
FLASH_SIZES = tuple(n * MB for n in (1, 2, 4, 8, 16))
SECTOR = 0x1000
# Which relay roles a simulated board variant has inputs for (reset drives EN).
SIM_VARIANT_ROLES = {"l7x": ("io0", "power", "reset"), "devkit": ("io0", "reset")}
STATION_ENV = "RIG_STATION"


# -- errors ----------------------------------------------------------------------------------------
class ConfigError(Exception):
    """A problem in a config file, at a 1-based ``line``/``col`` (None when the file is unreadable).

    ``where`` is the dotted data path (``slots[0].relays.io0.pin``, may be empty). A loader raises
    the first problem; ``errors`` holds all of them (the first included).
    """

    def __init__(
        self,
        file: str | os.PathLike[str],
        line: int | None,
        col: int | None,
        where: str,
        message: str,
    ) -> None:
        self.file = Path(file)
        self.line = line
        self.col = col
        self.where = where
        self.message = message
        self.errors: tuple[ConfigError, ...] = (self,)
        super().__init__(str(self))

    def __str__(self) -> str:
        head = str(self.file) if self.line is None else f"{self.file}:{self.line}:{self.col}"
        return f"{head}: {self.where}: {self.message}" if self.where else f"{head}: {self.message}"

    def __reduce__(self):
        return (type(self), (self.file, self.line, self.col, self.where, self.message))

    def report(self) -> str:
        """Every problem, one per line."""
        return "\n".join(str(error) for error in self.errors)


def _bundle(errors: list[ConfigError]) -> ConfigError:
    first = errors[0]
    first.errors = tuple(errors)
    return first


def _fail(message: str, *at: Any) -> PydanticCustomError:
    """A validation error ``message`` at ``at`` (a path below the model or field raising it)."""
    return PydanticCustomError("rig", "{message}", {"message": message, "at": tuple(at)})


def _raise_problems(problems: list[tuple[DataPath, str]]) -> None:
    """Raise every cross-check problem of a model at once (expanded again by the loader)."""
    if problems:
        summary = "; ".join(f"{format_path(at)}: {msg}" if at else msg for at, msg in problems)
        raise PydanticCustomError(
            "rig_problems", "{summary}", {"summary": summary, "problems": tuple(problems)}
        )


# -- scalar types ----------------------------------------------------------------------------------
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME_RE.fullmatch(value):
        raise _fail(f"names use letters, digits, '.', '_' and '-' (got {value!r})")
    return value


def _int_like(value: Any, what: str) -> int:
    """An int, or a string holding one (``"0x10000"``, ``"65536"``); bools rejected."""
    if isinstance(value, str):
        try:
            value = int(value.replace("_", ""), 0)
        except ValueError:
            raise _fail(f"{what} must be an integer such as 0x10000 (got {value!r})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{what} must be an integer such as 0x10000 (got {value!r})")
    return value


def _offset(value: Any) -> int:
    value = _int_like(value, "offset")
    if value < 0:
        raise _fail(f"offset must not be negative (got {value})")
    if value % SECTOR:
        raise _fail(f"offset {value:#x} is not aligned to a 4 KB flash sector (0x1000)")
    return value


def _region_size(value: Any) -> int:
    value = _int_like(value, "size")
    if value <= 0 or value % SECTOR:
        raise _fail(f"size {value:#x} must be a positive multiple of 4 KB (0x1000)")
    return value


def _flash_size(value: Any) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(MB|M|MiB)\s*", value, re.IGNORECASE)
        if not match:
            raise _fail(f"flash size is written like 4MB (got {value!r})")
        value = int(match.group(1)) * MB
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"flash size is written like 4MB (got {value!r})")
    if value not in FLASH_SIZES:
        raise _fail(f"flash size must be one of 1MB, 2MB, 4MB, 8MB, 16MB (got {_size(value)})")
    return value


_INT_OR_HEX = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^(0[xX][0-9a-fA-F_]+|[0-9_]+)$"},
    ]
}
Name = Annotated[
    str,
    BeforeValidator(_name),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}),
]
Offset = Annotated[int, BeforeValidator(_offset), WithJsonSchema(_INT_OR_HEX)]
RegionSize = Annotated[int, BeforeValidator(_region_size), WithJsonSchema(_INT_OR_HEX)]
FlashSize = Annotated[
    int,
    BeforeValidator(_flash_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^(1|2|4|8|16) ?(MB|M|MiB)$"},
                {"type": "integer", "enum": list(FLASH_SIZES)},
            ]
        }
    ),
]
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]
Seconds = Annotated[float, Strict()]

_ENV_RE = re.compile(r"\$(?:\$|\{(\w+)(?::-([^}]*))?\}|(\w+))")


def _expand(text: str) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}`` (``$$`` is a dollar); an unset VAR is an error."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        value = os.environ.get(name)
        if value:
            return value
        if match.group(2) is not None:
            return match.group(2)
        raise _fail(f"environment variable {name} is not set (write ${{{name}:-default}})")

    return os.path.expanduser(_ENV_RE.sub(sub, text))


def _path(value: Any, info: ValidationInfo) -> Any:
    """Expand and resolve a path against the config file's directory (``context['base_dir']``)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        return value  # let pydantic report the type
    if not value.strip():
        raise _fail("a path must not be empty")
    path = Path(_expand(value))
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute():
        path = (Path(base) if base is not None else Path.cwd()) / path
    return Path(os.path.normpath(path))


FilePath = Annotated[Path, BeforeValidator(_path), WithJsonSchema({"type": "string"})]


def _mac(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}", text):
        raise _fail(f"not a MAC address: {value!r} (expected six hex pairs: 24:0a:c4:12:34:56)")
    raw = bytes.fromhex(re.sub(r"[:-]", "", text))
    if raw[0] & 1:
        raise _fail(f"{value} is a multicast address, not a chip's factory MAC")
    return ":".join(f"{b:02x}" for b in raw)


Mac = Annotated[
    str,
    BeforeValidator(_mac),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$"}),
]


def _size(n: int) -> str:
    return f"{n // MB} MB" if n and n % MB == 0 else f"{n:#x} bytes"


# -- models ----------------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _step_schema() -> dict[str, Any]:
    role = {"enum": list(ROLES)}

    def shape(key: str, value: dict, extra: dict | None = None) -> dict[str, Any]:
        props = {key: value, **(extra or {})}
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    return {
        "title": "Step",
        "description": "One sequence step: close/open/press/release a relay role, "
        "pulse it for ms milliseconds, or wait seconds.",
        "oneOf": [shape(action, role) for action in ("close", "open", "press", "release")]
        + [
            shape(
                "pulse",
                role,
                {"ms": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT * 1000}},
            ),
            shape("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT}),
        ],
    }


def _number(value: Any, what: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{what} takes a number (got {value!r})", key)
    return float(value)


class Step(_Model):
    """One step of a sequence. In YAML: ``{close: io0}``, ``{open: io0}``, ``{press: power}``,
    ``{release: power}``, ``{pulse: reset, ms: 100}``, ``{wait: 0.3}``.

    ``close``/``press`` energise the relay of ``role`` (contact closed, button pressed),
    ``open``/``release`` de-energise it; ``pulse`` closes it for ``seconds`` then opens it;
    ``wait`` sleeps ``seconds``.
    """

    action: Action
    role: Role | None = None
    seconds: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Step):
            return data
        if not isinstance(data, dict):
            raise _fail(
                f"a step is a mapping such as {{close: io0}} or {{wait: 0.3}} (got {data!r})"
            )
        if "action" in data and info.context is None:
            return data  # programmatic: Step(action="wait", seconds=0.3)
        actions = [key for key in data if key in ACTIONS]
        if len(actions) != 1:
            found = ", ".join(map(str, data)) or "nothing"
            raise _fail(f"a step has exactly one of {', '.join(ACTIONS)} (found {found})")
        action = actions[0]
        allowed = {action, "ms"} if action == "pulse" else {action}
        for key in data:
            if key not in allowed:
                raise _fail(f"unknown key {key!r} in a {action} step", key)
        value = data[action]
        if action == "wait":
            seconds = _number(value, "wait", action)
            if not 0 <= seconds <= MAX_WAIT:
                raise _fail(
                    f"wait must be between 0 and {MAX_WAIT:g} seconds (got {value})", action
                )
            return {"action": action, "seconds": seconds}
        if value not in ROLES:
            raise _fail(f"unknown relay role {value!r} (roles: {', '.join(ROLES)})", action)
        if action != "pulse":
            return {"action": action, "role": value}
        if "ms" not in data:
            raise _fail("a pulse needs its length: {pulse: ROLE, ms: 100}")
        ms = _number(data["ms"], "ms", "ms")
        if not 0 < ms <= MAX_WAIT * 1000:
            raise _fail(
                f"ms must be above 0 and at most {MAX_WAIT * 1000:g} (got {data['ms']})", "ms"
            )
        return {"action": action, "role": value, "seconds": ms / 1000}

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        timed = self.action in ("wait", "pulse")
        if (self.role is None) != (self.action == "wait") or (self.seconds is None) == timed:
            raise _fail(f"a {self.action} step needs " + ("seconds" if timed else "a role"))
        if self.seconds is not None and not 0 <= self.seconds <= MAX_WAIT:
            raise _fail(f"seconds must be between 0 and {MAX_WAIT:g}", "seconds")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler) -> dict[str, Any]:
        return _step_schema()

    def as_yaml(self) -> dict[str, Any]:
        """The YAML form: ``{"pulse": "reset", "ms": 100}``."""
        if self.action == "wait":
            return {"wait": self.seconds}
        if self.action == "pulse":
            return {"pulse": self.role, "ms": round(self.seconds * 1000, 3)}
        return {self.action: self.role}

    def __str__(self) -> str:
        if self.action == "wait":
            return f"wait {self.seconds:g} s"
        if self.action == "pulse":
            return f"pulse {self.role} {self.seconds * 1000:g} ms"
        return f"{self.action} {self.role}"


SequenceSteps = Annotated[tuple[Step, ...], Field(min_length=1)]


class Sequences(_Model):
    """The board's boot sequences, played by the relay layer."""

    download: SequenceSteps  # into ROM download mode (serial bootloader)
    run: SequenceSteps  # boot the firmware in flash
    off: SequenceSteps  # leave the board off / held, relays at rest where possible

    def __getitem__(self, name: str) -> tuple[Step, ...]:
        if name not in type(self).model_fields:
            raise KeyError(f"unknown sequence {name!r} (sequences: download, run, off)")
        return getattr(self, name)

    def items(self) -> Iterable[tuple[str, tuple[Step, ...]]]:
        return ((name, getattr(self, name)) for name in type(self).model_fields)


SequenceName = Literal["download", "run", "off"]


class Rfc2217Mapping(_Model):
    """How ``rig serve`` turns a remote client's DTR/RTS into this board's sequences.

    The client's lines are decoded with the classic two-transistor auto-reset truth table (EN is
    low while RTS is asserted and DTR is not; IO0 is low while DTR is asserted and RTS is not).
    Each entry names the sequence to play, or null to ignore that event.
    """

    reset_hold: SequenceName | None = "off"  # EN pulled low (RTS without DTR)
    bootloader: SequenceName | None = "download"  # EN let go while IO0 is low (esptool's reset)
    hard_reset: SequenceName | None = "run"  # EN let go with IO0 high (RTS pulse, DTR inactive)
    # After EN is let go with both lines asserted (ClassicReset passes through DTR=RTS=1), how
    # long to wait for IO0 to go low before deciding it was a hard reset (covers network delay).
    strap_window: Annotated[Seconds, Field(gt=0, le=10)] = 1.0


class SerialFacts(_Model):
    modem_lines: StrictBool  # does the USB bridge carry DTR/RTS (classic auto-reset)?
    console_baud: Annotated[int, Strict(), Field(gt=0)]
    bauds: Annotated[tuple[Annotated[int, Strict(), Field(gt=0)], ...], Field(min_length=1)]

    @field_validator("bauds")
    @classmethod
    def _descending(cls, bauds: tuple[int, ...]) -> tuple[int, ...]:
        for i in range(1, len(bauds)):
            if bauds[i] >= bauds[i - 1]:
                raise _fail(
                    f"bauds go from the fastest down: {bauds[i]} cannot follow {bauds[i - 1]}", i
                )
        return bauds


class FlashSpec(_Model):
    size: FlashSize


class Firmware(_Model):
    """A catalog entry: an app (or any image) file to write at ``offset``."""

    name: Name
    file: FilePath  # resolved against the board file's directory
    offset: Offset
    sha256: str  # 64 lowercase hex digits; the file must hash to it
    console: str  # regex the firmware's console shows once booted

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _fail(f"sha256 must be a string of 64 hex digits: quote it (read as {value!r})")
        if isinstance(value, str):
            if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
                raise _fail(
                    f"sha256 must be 64 hex digits (got {len(value)} characters: {value!r})"
                )
            return value.lower()
        return value

    @field_validator("console")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise _fail(f"console is not a valid regular expression: {err}") from None
        return value

    @field_validator("file")
    @classmethod
    def _exists(cls, file: Path) -> Path:
        if not file.is_file():
            what = "is not a file" if file.exists() else "does not exist"
            raise _fail(f"firmware file {file} {what}")
        return file

    @model_validator(mode="after")
    def _hash(self) -> Firmware:
        actual = _sha256_of(self.file)
        if actual != self.sha256:
            raise _fail(f"sha256 mismatch: {self.file.name} hashes to {actual}", "sha256")
        return self

    @property
    def size(self) -> int:
        return self.file.stat().st_size

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.console)

    def read(self) -> bytes:
        return self.file.read_bytes()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SHA_CACHE[key]


class FlashRegion(_Model):
    name: Name
    offset: Offset
    size: RegionSize

    @property
    def end(self) -> int:
        return self.offset + self.size


class BoardType(_Model):
    """What a kind of board is (``configs/boards/<name>.yaml``)."""

    name: Name
    description: str
    chip: Literal["esp32"]
    flash: FlashSpec
    serial: SerialFacts
    relays: Annotated[tuple[Role, ...], Field(min_length=1)]
    sequences: Sequences
    download_retries: Annotated[int, Strict(), Field(ge=1, le=10)] = 3  # download sequence attempts
    boot_timeout: Annotated[Seconds, Field(gt=0, le=300)] = 5.0  # seconds until console matches
    rfc2217: Rfc2217Mapping = Field(default_factory=Rfc2217Mapping)  # `rig serve` DTR/RTS mapping
    firmware: tuple[Firmware, ...] = ()
    layout: tuple[FlashRegion, ...] = ()
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True, repr=False)

    @property
    def flash_size(self) -> int:
        return self.flash.size

    def roles_used(self) -> frozenset[str]:
        """Relay roles the sequences drive."""
        return frozenset(
            step.role for _, steps in self.sequences.items() for step in steps if step.role
        )

    def firmware_named(self, name: str) -> Firmware:
        for fw in self.firmware:
            if fw.name == name:
                return fw
        known = ", ".join(fw.name for fw in self.firmware) or "none"
        raise KeyError(f"board {self.name} has no firmware {name!r} (catalog: {known})")

    @model_validator(mode="after")
    def _cross_check(self) -> BoardType:
        problems: list[tuple[DataPath, str]] = []
        size = self.flash.size
        for i, role in enumerate(self.relays):
            if role in self.relays[:i]:
                problems.append((("relays", i), f"relay {role} is listed twice"))
        for seq, steps in self.sequences.items():
            for i, step in enumerate(steps):
                if step.role and step.role not in self.relays:
                    problems.append(
                        (
                            ("sequences", seq, i, step.action),
                            f"relay {step.role} is not one of this board's relays "
                            f"({', '.join(self.relays)}); add it to relays",
                        )
                    )
        for what, items in (("firmware", self.firmware), ("layout", self.layout)):
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.name in seen:
                    problems.append(((what, i, "name"), f"{item.name} is listed twice in {what}"))
                seen.add(item.name)
        for i, region in enumerate(self.layout):
            if region.end > size:
                problems.append(
                    (
                        ("layout", i, "size"),
                        f"region {region.name} ends at {region.end:#x}, "
                        f"past the end of the {_size(size)} flash",
                    )
                )
            for other in self.layout[:i]:
                if region.offset < other.end and other.offset < region.end:
                    problems.append(
                        (("layout", i, "offset"), f"region {region.name} overlaps {other.name}")
                    )
        for i, fw in enumerate(self.firmware):
            end = fw.offset + fw.size
            if fw.offset >= size:
                problems.append(
                    (
                        ("firmware", i, "offset"),
                        f"offset {fw.offset:#x} is outside the {_size(size)} flash "
                        f"(0x0..{size - 1:#x})",
                    )
                )
            elif end > size:
                problems.append(
                    (
                        ("firmware", i, "offset"),
                        f"{fw.file.name} ({fw.size} bytes at {fw.offset:#x}) ends at {end:#x}, "
                        f"past the end of the {_size(size)} flash",
                    )
                )
            # A firmware may span layout regions: merged images (bootloader + partition table +
            # app, as `esptool merge-bin` makes) are how boards like the L7X are re-flashed.
        _raise_problems(problems)
        return self


def _pin(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(f"pin is a BCM number or a gpiod line name (got {value!r})")
    if isinstance(value, int) and not 0 <= value <= 53:
        raise _fail(f"BCM pin numbers run from 0 to 53 (got {value})")
    if isinstance(value, str) and (not value or value != value.strip()):
        raise _fail(f"pin line name {value!r} is empty or has surrounding spaces")
    return value


class RelayChannel(_Model):
    """One relay: the output pin driving it and its polarity."""

    pin: Annotated[
        int | str,
        BeforeValidator(_pin),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 53},
                    {"type": "string", "minLength": 1},
                ],
                "description": "BCM GPIO number, or a gpiod line name such as GPIO17",
            }
        ),
    ]
    active_low: StrictBool = True  # most Pi relay boards energise on a low input

    @property
    def bcm(self) -> int | None:
        """The BCM number (``17`` for ``17`` or ``"GPIO17"``), None for other line names."""
        if isinstance(self.pin, int):
            return self.pin
        match = re.fullmatch(r"GPIO(\d+)", self.pin)
        return int(match.group(1)) if match else None


class PinsConfig(_Model):
    """How the station drives its relay pins."""

    backend: Literal["gpiod", "rpigpio", "sim"] = "gpiod"
    chip: str | None = None  # gpiod: chip label or path (pinctrl-rp1, /dev/gpiochip0); optional

    @model_validator(mode="after")
    def _chip(self) -> PinsConfig:
        if self.chip is not None and self.backend != "gpiod":
            raise _fail(f"chip is a gpiod setting; the {self.backend} backend has none", "chip")
        if self.chip is not None and not self.chip.strip():
            raise _fail("chip must not be empty (leave it out to find lines by name)", "chip")
        return self


# -- simulated faults ------------------------------------------------------------------------------
# What each fault kind takes (docs/faults.md; rig/sim/faults.py implements them). The key sets
# are kept here because this module imports nothing from the simulator.
FAULT_KEYS: dict[str, tuple[str, ...]] = {
    "noise": ("rate", "on", "after", "length", "duration", "above_baud"),
    "drop": ("rate", "on", "after", "length", "duration", "above_baud"),
    "stall": ("seconds", "after", "on"),
    "unplug": ("after", "on", "gone"),
    "brownout": ("after", "on", "off"),
    "bad_sector": ("address", "count"),
    "hang": ("after", "on"),
    "relay_stuck": ("role", "state"),
    "io0_open": (),
    "slow_flash": ("factor",),
    "console_garbage": ("bytes", "resets"),
}
FAULT_REQUIRED = {
    "noise": ("rate",),
    "drop": ("rate",),
    "stall": ("seconds",),
    "bad_sector": ("address",),
}
LINE_DIRECTIONS = ("to_chip", "to_host", "both")
FaultKind = Literal[
    "noise",
    "drop",
    "stall",
    "unplug",
    "brownout",
    "bad_sector",
    "hang",
    "relay_stuck",
    "io0_open",
    "slow_flash",
    "console_garbage",
]
ByteCount = Annotated[
    int,
    BeforeValidator(lambda v: _int_like(v, "a byte count")),
    Field(ge=0),
    WithJsonSchema(_INT_OR_HEX),
]


def _non_bool_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise _fail(f"expected a number, not a boolean (got {value!r})")
    return value


Number = Annotated[float, BeforeValidator(_non_bool_number)]


class FaultSpec(_Model):
    """One injected fault of a simulated board (``simulated: {faults: [...]}``).

    ``kind`` picks the fault; the other keys are the settings that kind takes (``FAULT_KEYS``).
    Byte counts (``after``, ``length``) count on the stream named by ``on``: ``to_chip``,
    ``to_host``, ``both``, or ``flash`` (bytes programmed, for events).
    """

    kind: FaultKind
    rate: Annotated[Number, Field(gt=0, le=1)] | None = None  # per byte (noise, drop)
    on: Literal["to_chip", "to_host", "both", "flash"] | None = None
    after: ByteCount | None = None  # bytes on `on` before it strikes
    length: Annotated[ByteCount, Field(gt=0)] | None = None  # bytes a noise/drop window lasts
    duration: Annotated[Number, Field(gt=0, le=3600)] | None = None  # seconds it lasts at most
    above_baud: Annotated[int, Strict(), Field(gt=0)] | None = None  # noise/drop: faster only
    seconds: Annotated[Number, Field(gt=0, le=600)] | None = None  # stall
    gone: Annotated[Number, Field(ge=0, le=60)] | None = None  # unplug: until re-enumerated
    off: Annotated[Number, Field(ge=0, le=60)] | None = None  # brown-out: without supply
    address: Offset | None = None  # bad_sector
    count: Annotated[int, Strict(), Field(ge=1, le=1024)] | None = None  # bad sectors
    role: Role | None = None  # relay_stuck (default power)
    state: Literal["on", "off"] | None = None  # relay_stuck: contact welded on / dead off
    factor: Annotated[Number, Field(ge=1, le=100)] | None = None  # slow_flash (default 10)
    bytes: Annotated[int, Strict(), Field(ge=1, le=65536)] | None = None  # console_garbage
    resets: Annotated[int, Strict(), Field(ge=1)] | None = None  # console_garbage

    @model_validator(mode="before")
    @classmethod
    def _keys_of_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise _fail(f"a fault is a mapping such as {{kind: stall, seconds: 2}} (got {data!r})")
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in FAULT_KEYS:
            return data  # the kind field reports it
        allowed = FAULT_KEYS[kind]
        for key in data:
            if key != "kind" and key not in allowed:
                takes = f"takes {', '.join(allowed)}" if allowed else "takes no settings"
                raise _fail(f"{key!r} is not a setting of a {kind} fault (it {takes})", key)
        for key in FAULT_REQUIRED.get(kind, ()):
            if data.get(key) is None:
                raise _fail(f"a {kind} fault needs {key}", *([key] if key in data else []))
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.kind in ("noise", "drop") and self.on == "flash":
            raise _fail(
                f"a {self.kind} fault is on the line: on is one of {', '.join(LINE_DIRECTIONS)}",
                "on",
            )
        return self

    def settings(self) -> dict[str, Any]:
        """``{"kind": ..., <the settings given>}`` (what rig.sim.faults.fault_from_dict takes)."""
        return {"kind": self.kind, **self.model_dump(exclude_none=True, exclude={"kind"})}


def _flash_id(value: Any) -> int:
    value = _int_like(value, "flash_id")
    if not 0 <= value <= 0xFFFFFF:
        raise _fail(f"flash_id is the 3-byte RDID answer, 0..0xFFFFFF (got {value:#x})")
    return value


FlashId = Annotated[int, BeforeValidator(_flash_id), WithJsonSchema(_INT_OR_HEX)]


class SimEfuses(_Model):
    """The security eFuses of a simulated ESP32 (names as espefuse shows them)."""

    flash_crypt_cnt: Annotated[int, Strict(), Field(ge=0, le=0x7F)] = 0  # odd bit count: on
    abs_done_0: StrictBool = False  # secure boot v1
    abs_done_1: StrictBool = False  # secure boot v2


class SimSlot(_Model):
    """Options for a simulated board in a slot (used with ``pins: {backend: sim}``)."""

    variant: Literal["l7x", "devkit"]
    seed: str | None = None  # derives the factory MAC (in a station: defaults to the slot id)
    mac: Mac | None = None
    flash_image: FilePath | None = None  # initial flash content (a whole-flash image file)
    vendor_flash: StrictBool = True  # without flash_image: the synthetic vendor flash, else erased
    io0_connected: StrictBool = True  # fault: the IO0 relay does not reach the board
    fail_connects: Annotated[int, Strict(), Field(ge=0, le=100)] = 0  # fault: ignore N syncs
    # The USB bridge's fastest rate; above it the line runs off-rate (a bridge without 2 Mbaud).
    max_baud: Annotated[int, Strict(), Field(gt=0)] | None = None
    # Realistic timing: the UART paced at baud/10 bytes/s, datasheet NOR erase/program times.
    realtime: StrictBool = False
    # Injected faults (docs/faults.md), seeded by fault_seed (default: the board's seed).
    faults: tuple[FaultSpec, ...] = ()
    fault_seed: Annotated[str, Strict()] | Annotated[int, Strict()] | None = None
    # The flash chip's RDID answer (manufacturer | type << 8 | capacity << 16), e.g. 0x1540EF
    # for a chip reporting 2 MB; default: the Winbond part of the array's size (0x1640EF).
    flash_id: FlashId | None = None
    efuses: SimEfuses = Field(default_factory=SimEfuses)  # flash encryption, secure boot

    @model_validator(mode="after")
    def _image(self) -> SimSlot:
        if self.flash_image is not None and not self.flash_image.is_file():
            raise _fail(f"flash image {self.flash_image} does not exist", "flash_image")
        return self


def _port(value: Any) -> Any:
    if isinstance(value, str) and not (
        value.startswith("/") or "://" in value or re.fullmatch(r"COM\d+", value)
    ):
        raise _fail(
            f"port is a device path (/dev/serial/by-id/...) or a pyserial URL "
            f"(rfc2217://host:port, socket://host:port) (got {value!r})"
        )
    return value


class Slot(_Model):
    """One board position of a station."""

    id: Name
    board: Name  # a board type name
    port: Annotated[str | None, BeforeValidator(_port)] = None
    usb_serial: Annotated[str, Field(min_length=1)] | None = None  # match by USB serial number
    relays: dict[Role, RelayChannel] = Field(default_factory=dict)
    expected_mac: Mac | None = None  # the MAC of the board that belongs in this slot
    simulated: SimSlot | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_seed(cls, data: Any) -> Any:
        """A simulated board's seed (hence its MAC) defaults to the slot id: stable per slot."""
        if isinstance(data, dict) and isinstance(data.get("simulated"), dict):
            sim = data["simulated"]
            if sim.get("seed") is None and isinstance(data.get("id"), str):
                data = {**data, "simulated": {**sim, "seed": data["id"]}}
        return data

    @model_validator(mode="after")
    def _port_given(self) -> Slot:
        if self.simulated is not None:
            for key in ("port", "usb_serial"):
                if getattr(self, key) is not None:
                    raise _fail(
                        f"a simulated slot gets its port from the simulator: remove {key}", key
                    )
        elif self.port is not None and self.usb_serial is not None:
            raise _fail("give either port or usb_serial, not both", "usb_serial")
        elif self.port is None and self.usb_serial is None:
            raise _fail(
                "a slot needs a serial port: port: /dev/serial/by-id/... or usb_serial: SERIAL"
            )
        return self


# What identifies the board of a slot, so two slots must not share it: one serial port (or USB
# serial number) behind two slots' relays would let the rig dump one board and erase another, and
# one expected MAC in two slots means one of them can never hold the right board.
_IDENTITY_KEYS = (("port", "port"), ("usb_serial", "USB serial"), ("expected_mac", "MAC"))


def _shared_identity(
    slot: Slot, index: int, owners: dict[tuple[str, str], str]
) -> list[tuple[DataPath, str]]:
    """Problems for ``slot``'s port, USB serial and expected MAC already claimed by an earlier
    slot (``owners``: (key, value) -> slot id, filled here). Simulated slots have no port and no
    USB serial (None), and None is never a clash."""
    problems: list[tuple[DataPath, str]] = []
    for key, label in _IDENTITY_KEYS:
        value = getattr(slot, key)
        if value is None:
            continue
        if (key, value) not in owners:
            owners[(key, value)] = slot.id
            continue
        claim = "the expected_mac of" if key == "expected_mac" else "used by"
        problems.append(
            (("slots", index, key), f"{label} {value} is already {claim} slot {owners[key, value]}")
        )
    return problems


class Station(_Model):
    """One physical rig (``configs/stations/<name>.yaml``)."""

    name: Name
    backups: FilePath
    locks: FilePath
    pins: PinsConfig = Field(default_factory=PinsConfig)
    slots: Annotated[tuple[Slot, ...], Field(min_length=1)]
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True, repr=False)
    # The board types the slots use, filled in by the loader.
    boards: SkipJsonSchema[dict[str, BoardType]] = Field(
        default_factory=dict, exclude=True, repr=False
    )

    def slot(self, slot_id: str) -> Slot:
        for slot in self.slots:
            if slot.id == slot_id:
                return slot
        known = ", ".join(s.id for s in self.slots)
        raise KeyError(f"station {self.name} has no slot {slot_id!r} (slots: {known})")

    @property
    def state_dir(self) -> Path:
        """``<backups>/../state/<name>``: what must survive a reboot (quarantine, run logs, the
        flash of simulated boards) - next to the backups, not in the locks dir (often tmpfs)."""
        return Path(self.backups).expanduser().parent / "state" / self.name

    def board_of(self, slot: Slot | str) -> BoardType:
        """The board type of a slot (needs a station made by :func:`load_station`)."""
        slot = self.slot(slot) if isinstance(slot, str) else slot
        try:
            return self.boards[slot.board]
        except KeyError:
            raise KeyError(f"board type {slot.board!r} of slot {slot.id} is not loaded") from None

    @model_validator(mode="after")
    def _cross_check(self, info: ValidationInfo) -> Station:
        context = info.context or {}
        boards: Mapping[str, BoardType] | None = context.get("boards")
        broken: set[str] = context.get("broken", set())
        backend = self.pins.backend
        problems: list[tuple[DataPath, str]] = []
        ids: dict[str, int] = {}
        pins: dict[Any, tuple[str, str]] = {}
        owners: dict[tuple[str, str], str] = {}
        for i, slot in enumerate(self.slots):
            if slot.id in ids:
                problems.append(
                    (
                        ("slots", i, "id"),
                        f"slot id {slot.id} is already used by slots[{ids[slot.id]}]",
                    )
                )
            ids.setdefault(slot.id, i)
            problems += _shared_identity(slot, i, owners)
            if backend == "sim" and slot.simulated is None:
                problems.append(
                    (
                        ("slots", i),
                        "the sim pin backend drives simulated boards only: "
                        "add simulated: {variant: l7x|devkit}",
                    )
                )
            if backend != "sim" and slot.simulated is not None:
                problems.append(
                    (
                        ("slots", i, "simulated"),
                        f"a simulated slot needs pins: {{backend: sim}} (this station: {backend})",
                    )
                )
            for role, channel in slot.relays.items():
                at = ("slots", i, "relays", role, "pin")
                if backend == "rpigpio" and not isinstance(channel.pin, int):
                    problems.append(
                        (at, f"RPi.GPIO takes BCM numbers; line name {channel.pin!r} needs gpiod")
                    )
                key = ("bcm", channel.bcm) if channel.bcm is not None else ("line", channel.pin)
                if key in pins:
                    other_slot, other_role = pins[key]
                    problems.append(
                        (
                            at,
                            f"pin {channel.pin} is already used by {other_role} "
                            f"of slot {other_slot}",
                        )
                    )
                else:
                    pins[key] = (slot.id, role)
            if slot.simulated is not None:
                for j, fault in enumerate(slot.simulated.faults):
                    stuck = fault.role or "power"
                    if fault.kind == "relay_stuck" and stuck not in slot.relays:
                        problems.append(
                            (
                                ("slots", i, "simulated", "faults", j, "role"),
                                f"slot {slot.id} has no {stuck} relay to get stuck "
                                f"(its relays: {', '.join(slot.relays) or 'none'})",
                            )
                        )
                variant = slot.simulated.variant
                for role in slot.relays:
                    if role not in SIM_VARIANT_ROLES[variant]:
                        problems.append(
                            (
                                ("slots", i, "simulated", "variant"),
                                f"a simulated {variant} has no {role} input "
                                f"(relays it takes: {', '.join(SIM_VARIANT_ROLES[variant])})",
                            )
                        )
            if boards is None or slot.board in broken:
                continue
            board = boards.get(slot.board)
            if board is None:
                known = ", ".join(sorted(boards)) or "none"
                problems.append(
                    (("slots", i, "board"), f"unknown board type {slot.board!r} (known: {known})")
                )
                continue
            for role in sorted(board.roles_used() - set(slot.relays)):
                problems.append(
                    (
                        ("slots", i, "relays"),
                        f"board {board.name} uses relay {role} in its sequences; "
                        f"wire it here: {role}: {{pin: N}}",
                    )
                )
            for role in slot.relays:
                if role not in board.relays:
                    problems.append(
                        (
                            ("slots", i, "relays", role),
                            f"board {board.name} has no {role} relay "
                            f"(its relays: {', '.join(board.relays)})",
                        )
                    )
        _raise_problems(problems)
        return self


# -- reading files ---------------------------------------------------------------------------------
def _read(path: Path) -> Document:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(path, None, None, "", f"cannot read: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigError(path, line, col, "", "not UTF-8 text") from None
    try:
        doc = load_yaml(text)
    except YamlError as err:
        raise ConfigError(path, err.line, err.col, format_path(err.where), err.message) from None
    if doc.data is None:
        raise ConfigError(path, 1, 1, "", "empty file: expected a mapping of settings")
    if not isinstance(doc.data, dict):
        kind = "list" if isinstance(doc.data, list) else type(doc.data).__name__
        raise ConfigError(path, 1, 1, "", f"expected a mapping of settings, got a {kind}")
    return doc


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _keys_at(model: type[BaseModel], loc: DataPath) -> list[str] | None:
    """The keys a mapping at ``loc`` (below ``model``) may have, if it is a model."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif origin in (tuple, list) and isinstance(part, int):
            tp = get_args(tp)[0]
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and tp is not Step:
        return [name for name in tp.model_fields if name not in ("source", "boards")]
    return None


def _message(err: dict[str, Any], model: type[BaseModel], loc: DataPath) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind == "extra_forbidden":
        known = _keys_at(model, loc[:-1]) or []
        message = f"unknown key {loc[-1]!r}"
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        return message + (f" (keys: {', '.join(known)})" if known else "")
    if kind == "too_short":
        return f"needs at least {err['ctx']['min_length']} item(s)"
    message = err["msg"].splitlines()[0]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {value!r})"
        if kind == "bool_type" and isinstance(value, str):
            message += "; booleans are written true or false, without quotes"
    return message


def _translate(exc: ValidationError, doc: Document, file: Path, model: type[BaseModel]):
    out: list[ConfigError] = []
    raw = exc.errors(include_url=False)
    unknown: dict[DataPath, list[str]] = {}
    for err in raw:
        if err["type"] == "extra_forbidden":
            unknown.setdefault(tuple(err["loc"][:-1]), []).append(str(err["loc"][-1]))
    for err in raw:
        loc, ctx = tuple(err["loc"]), err.get("ctx") or {}
        if err["type"] == "missing" and difflib.get_close_matches(
            str(loc[-1]), unknown.get(loc[:-1], []), n=1
        ):
            continue  # a misspelt key: reported once, as unknown with a suggestion
        if err["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in raw
        ):
            continue  # a list whose items failed is "too short" only as a consequence
        if err["type"] == "rig_problems":
            items = [((*loc, *at), msg, True) for at, msg in ctx["problems"]]
        elif err["type"] == "rig":
            items = [((*loc, *ctx["at"]), ctx["message"], True)]
        else:
            items = [(loc, _message(err, model, loc), err["type"] == "missing")]
        for path, message, keep_missing in items:
            found = doc.existing(path)
            # Our own errors and "missing" name keys that may be absent; other absent parts of
            # a pydantic location are its internals (union members, validator names).
            where = path if keep_missing else found
            line, col = doc.position(found)
            out.append(ConfigError(file, line, col, format_path(where), message))
    return out


def _validate(model: type[BaseModel], path: Path, doc: Document, context: dict, extra=()):
    errors = list(extra)
    data = dict(doc.data)
    for reserved in ("source", "boards"):
        if reserved in data and reserved in model.model_fields:
            line, col = doc.position((reserved,))
            errors.append(ConfigError(path, line, col, reserved, f"unknown key {reserved!r}"))
            del data[reserved]
    obj = None
    try:
        obj = model.model_validate(data, context=context)
    except ValidationError as exc:
        errors += _translate(exc, doc, path, model)
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.col or 0))
        raise _bundle(errors)
    return obj


def _context(path: Path, **extra: Any) -> dict[str, Any]:
    return {"base_dir": path.resolve().parent, **extra}


def load_board(path: str | os.PathLike[str]) -> BoardType:
    """Load one board type file; raise :class:`ConfigError` (all problems in ``.errors``)."""
    path = Path(path)
    doc = _read(path)
    extra = []
    name = doc.data.get("name")
    if isinstance(name, str) and name != path.stem:
        line, col = doc.position(("name",))
        extra.append(
            ConfigError(
                path,
                line,
                col,
                "name",
                f"board {name!r} must be in {name}.yaml (the file is {path.name})",
            )
        )
    board = _validate(BoardType, path, doc, _context(path), extra)
    return board.model_copy(update={"source": path.absolute()})


def _yaml_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_boards(dirs: Iterable[str | os.PathLike[str]]) -> dict[str, BoardType]:
    """Every board type in ``dirs`` (``*.yaml``), by name; a later directory's board of the same
    name replaces an earlier one."""
    boards: dict[str, BoardType] = {}
    errors: list[ConfigError] = []
    for directory in map(Path, dirs):
        if not directory.is_dir():
            errors.append(ConfigError(directory, None, None, "", "no such directory"))
            continue
        for file in _yaml_files(directory):
            try:
                board = load_board(file)
            except ConfigError as err:
                errors += err.errors
            else:
                boards[board.name] = board
    if errors:
        raise _bundle(errors)
    return boards


def builtin_configs_dir() -> Path:
    """The shipped configs: the package data ``rig/configs`` (the checkout's top-level
    ``configs`` links to it). Found through :mod:`importlib.resources`, not ``__file__``, so the
    answer does not depend on which module of the package asks, in a checkout or installed."""
    return Path(str(resources.files("rig") / "configs"))


def board_dirs_for(station_path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where a station's board types come from: the shipped ones, then a ``boards`` directory
    beside the station's directory (``<dir>/stations/x.yaml`` -> ``<dir>/boards``), if any."""
    dirs = [builtin_configs_dir() / "boards"]
    if station_path is not None:
        local = Path(station_path).resolve().parent.parent / "boards"
        if local.is_dir() and local.resolve() != dirs[0].resolve():
            dirs.append(local)
    return dirs


def load_station(
    path: str | os.PathLike[str], boards: Mapping[str, BoardType] | None = None
) -> Station:
    """Load a station file, checking its slots against ``boards`` (default: the board types of
    :func:`board_dirs_for`)."""
    path = Path(path)
    if boards is None:
        boards = load_boards(board_dirs_for(path))
    return _load_station(path, boards, set())


def _load_station(path: Path, boards: Mapping[str, BoardType], broken: set[str]) -> Station:
    doc = _read(path)
    context = _context(path, boards=boards, broken=broken)
    station = _validate(Station, path, doc, context)
    used = {slot.board: boards[slot.board] for slot in station.slots if slot.board in boards}
    return station.model_copy(update={"source": path.absolute(), "boards": used})


def default_station() -> Station:
    """The embedded simulated station (``configs/stations/sim.yaml``)."""
    return load_station(builtin_configs_dir() / "stations" / "sim.yaml")


def station_from_env(path: str | os.PathLike[str] | None = None) -> Station:
    """``--station FILE`` if given, else ``$RIG_STATION``, else the simulated station."""
    path = path or os.environ.get(STATION_ENV) or None
    return load_station(path) if path else default_station()


# -- checking --------------------------------------------------------------------------------------
def _kind(path: Path, doc: Document) -> str:
    if path.parent.name in ("boards", "stations"):
        return "board" if path.parent.name == "boards" else "station"
    return "station" if "slots" in doc.data else "board"


def check_files(paths: Iterable[str | os.PathLike[str]] | None = None) -> list[ConfigError]:
    """Every problem in every file (directories: their ``*.yaml``, recursively). With no paths:
    every shipped config. Station files are checked against the shipped board types, a ``boards``
    directory beside theirs, and the board files being checked."""
    if paths is None or not (paths := list(paths)):
        root = builtin_configs_dir()
        paths = [*_yaml_files(root / "boards"), *_yaml_files(root / "stations")]
    files: list[Path] = []
    errors: list[ConfigError] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")])
        elif path.exists():
            files.append(path)
        else:
            errors.append(ConfigError(path, None, None, "", "no such file"))
    seen: set[Path] = set()
    docs: list[tuple[Path, Document, str]] = []
    for file in files:
        if file.resolve() in seen:
            continue
        seen.add(file.resolve())
        try:
            doc = _read(file)
        except ConfigError as err:
            errors.append(err)
            continue
        docs.append((file, doc, _kind(file, doc)))
    checked: dict[str, BoardType] = {}
    broken: set[str] = set()
    for file, _doc, kind in docs:
        if kind == "board":
            try:
                board = load_board(file)
            except ConfigError as err:
                errors += err.errors
                broken.add(file.stem)
            else:
                checked[board.name] = board
    for file, _doc, kind in docs:
        if kind != "station":
            continue
        boards: dict[str, BoardType] = {}
        others_broken = set(broken)
        for directory in board_dirs_for(file):
            for board_file in _yaml_files(directory):
                if board_file.resolve() in seen:
                    continue  # checked above, its problems reported there
                try:
                    board = load_board(board_file)
                except ConfigError:
                    others_broken.add(board_file.stem)
                else:
                    boards[board.name] = board
        boards.update(checked)
        try:
            _load_station(file, boards, others_broken - set(boards))
        except ConfigError as err:
            errors += err.errors
    return errors


def json_schema() -> dict[str, Any]:
    """JSON Schemas of board type and station files (for editor completion)."""
    out = {}
    for key, model, title in (
        ("board", BoardType, "rig board type (configs/boards/<name>.yaml)"),
        ("station", Station, "rig station (configs/stations/<name>.yaml)"),
    ):
        schema = model.model_json_schema()
        out[key] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        out[key]["title"] = title
    return out
