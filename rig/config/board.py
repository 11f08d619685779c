"""Board types (``configs/boards/<name>.yaml``): what a kind of board is.

Chip, flash size, serial facts, the relay roles it needs, its boot sequences as data, how
``rig serve`` maps a client's DTR/RTS to them, a firmware catalog (files checked against their
sha256) and its known flash layout -> :class:`BoardType`, cross-checked as a whole.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from .errors import fail, raise_problems
from .sequences import SequenceName, Sequences
from .types import (
    FilePath,
    FlashSize,
    FrozenModel,
    Name,
    Offset,
    RegionSize,
    Role,
    Seconds,
    StrictBool,
    human_size,
)
from .yamlpos import DataPath

__all__ = [
    "BoardType",
    "CatalogFirmware",
    "FlashRegion",
    "FlashSpec",
    "Rfc2217Mapping",
    "SerialFacts",
]


class Rfc2217Mapping(FrozenModel):
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


class SerialFacts(FrozenModel):
    modem_lines: StrictBool  # does the USB bridge carry DTR/RTS (classic auto-reset)?
    console_baud: Annotated[int, Strict(), Field(gt=0)]
    bauds: Annotated[tuple[Annotated[int, Strict(), Field(gt=0)], ...], Field(min_length=1)]

    @field_validator("bauds")
    @classmethod
    def _descending(cls, bauds: tuple[int, ...]) -> tuple[int, ...]:
        for i in range(1, len(bauds)):
            if bauds[i] >= bauds[i - 1]:
                raise fail(
                    f"bauds go from the fastest down: {bauds[i]} cannot follow {bauds[i - 1]}", i
                )
        return bauds


class FlashSpec(FrozenModel):
    size: FlashSize


class CatalogFirmware(FrozenModel):
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
            raise fail(f"sha256 must be a string of 64 hex digits: quote it (read as {value!r})")
        if isinstance(value, str):
            if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
                raise fail(f"sha256 must be 64 hex digits (got {len(value)} characters: {value!r})")
            return value.lower()
        return value

    @field_validator("console")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise fail(f"console is not a valid regular expression: {err}") from None
        return value

    @field_validator("file")
    @classmethod
    def _exists(cls, file: Path) -> Path:
        if not file.is_file():
            what = "is not a file" if file.exists() else "does not exist"
            raise fail(f"firmware file {file} {what}")
        return file

    @model_validator(mode="after")
    def _hash(self) -> CatalogFirmware:
        actual = _sha256_of(self.file)
        if actual != self.sha256:
            raise fail(f"sha256 mismatch: {self.file.name} hashes to {actual}", "sha256")
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


class FlashRegion(FrozenModel):
    name: Name
    offset: Offset
    size: RegionSize

    @property
    def end(self) -> int:
        return self.offset + self.size


class BoardType(FrozenModel):
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
    firmware: tuple[CatalogFirmware, ...] = ()
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

    def firmware_named(self, name: str) -> CatalogFirmware:
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
                        f"past the end of the {human_size(size)} flash",
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
                        f"offset {fw.offset:#x} is outside the {human_size(size)} flash "
                        f"(0x0..{size - 1:#x})",
                    )
                )
            elif end > size:
                problems.append(
                    (
                        ("firmware", i, "offset"),
                        f"{fw.file.name} ({fw.size} bytes at {fw.offset:#x}) ends at {end:#x}, "
                        f"past the end of the {human_size(size)} flash",
                    )
                )
            # A firmware may span layout regions: merged images (bootloader + partition table +
            # app, as `esptool merge-bin` makes) are how boards like the L7X are re-flashed.
        raise_problems(problems)
        return self
