"""Board types (``configs/boards/<name>.yaml``): what a kind of board is.

Chip, flash size and mode, serial facts, the relay roles it needs, its boot sequences as data,
how ``rig serve`` maps a client's DTR/RTS to them, boot check timing and its known flash layout
(partitions with their types, as in a partition CSV) -> :class:`BoardType`, cross-checked as a
whole. Firmware catalogs belong to stations (:mod:`.catalog`): the loader gives each board type
of a station that station's entries for it (:attr:`BoardType.firmware`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, Strict, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from rig.esp32 import APP_SUBTYPES, DATA_SUBTYPES

from .catalog import CatalogFirmware
from .errors import fail, raise_problems
from .sequences import SequenceName, Sequences
from .types import (
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


FlashMode = Literal["qio", "qout", "dio", "dout"]  # esptool's --flash-mode names


class FlashSpec(FrozenModel):
    size: FlashSize
    # How the module wires its flash: a bootloader whose header asks for a quad mode cannot
    # boot on a board wired for dual I/O (the ROM configures SPI from that header). None: not
    # checked.
    mode: FlashMode | None = None


PartitionType = Literal["bootloader", "partition_table", "app", "data"]
_SUBTYPES = {"app": APP_SUBTYPES, "data": DATA_SUBTYPES}


class FlashRegion(FrozenModel):
    """A region of the board's known layout: a partition of its table, with its type and
    subtype as in a partition CSV (``app``/``ota_0``, ``data``/``ota``), or the bootloader and
    the partition table themselves."""

    name: Name
    offset: Offset
    size: RegionSize
    type: PartitionType | None = None
    subtype: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.size

    @model_validator(mode="after")
    def _subtype(self) -> FlashRegion:
        known = _SUBTYPES.get(self.type or "", {})
        if self.subtype is not None and self.subtype not in known:
            names = ", ".join(known) or f"none for type {self.type}"
            raise fail(f"unknown subtype {self.subtype!r} (known: {names})", "subtype")
        if self.type in _SUBTYPES and self.subtype is None:
            raise fail(f"a {self.type} partition needs a subtype ({', '.join(known)})", "subtype")
        return self


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
    # The default boot check (a firmware without a console pattern) watches a started app this
    # long for a panic or a reset: an app that crashes in setup does so within a second.
    boot_settle: Annotated[Seconds, Field(gt=0, le=60)] = 1.0
    rfc2217: Rfc2217Mapping = Field(default_factory=Rfc2217Mapping)  # `rig serve` DTR/RTS mapping
    layout: tuple[FlashRegion, ...] = ()
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True, repr=False)
    # The station's catalog entries for this board type (filled in by the station loader).
    firmware: SkipJsonSchema[tuple[CatalogFirmware, ...]] = Field(
        default=(), exclude=True, repr=False
    )

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
        seen: set[str] = set()
        for i, region in enumerate(self.layout):
            if region.name in seen:
                problems.append((("layout", i, "name"), f"{region.name} is listed twice in layout"))
            seen.add(region.name)
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
        raise_problems(problems)
        return self
