"""Stations (``configs/stations/<name>.yaml``): one physical rig and its slots.

Pin backend, backups, firmware and lock directories, and slots (board type, serial port, relay
channel per role, or a simulated board) -> :class:`Station`. The cross-checks catch what would
hurt a board: two slots sharing a port, a USB serial number, an expected MAC or a relay pin; a
slot without a relay its board type's sequences drive; a simulated slot wired to an input its
variant lacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from .board import BoardType
from .catalog import CatalogFirmware
from .errors import fail, raise_problems
from .faults import RelayStuck
from .simulated import SIM_VARIANTS, SimSlot
from .types import FilePath, FrozenModel, Mac, Name, Role, StrictBool
from .yamlpos import DataPath

__all__ = ["PinsConfig", "RelayChannel", "Slot", "Station"]


def _pin(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fail(f"pin is a BCM number or a gpiod line name (got {value!r})")
    if isinstance(value, int) and not 0 <= value <= 53:
        raise fail(f"BCM pin numbers run from 0 to 53 (got {value})")
    if isinstance(value, str) and (not value or value != value.strip()):
        raise fail(f"pin line name {value!r} is empty or has surrounding spaces")
    return value


class RelayChannel(FrozenModel):
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


class PinsConfig(FrozenModel):
    """How the station drives its relay pins."""

    backend: Literal["gpiod", "rpigpio", "sim"] = "gpiod"
    chip: str | None = None  # gpiod: chip label or path (pinctrl-rp1, /dev/gpiochip0); optional

    @model_validator(mode="after")
    def _chip(self) -> PinsConfig:
        if self.chip is not None and self.backend != "gpiod":
            raise fail(f"chip is a gpiod setting; the {self.backend} backend has none", "chip")
        if self.chip is not None and not self.chip.strip():
            raise fail("chip must not be empty (leave it out to find lines by name)", "chip")
        return self


def _port(value: Any) -> Any:
    if isinstance(value, str) and not (
        value.startswith("/") or "://" in value or re.fullmatch(r"COM\d+", value)
    ):
        raise fail(
            f"port is a device path (/dev/serial/by-id/...) or a pyserial URL "
            f"(rfc2217://host:port, socket://host:port) (got {value!r})"
        )
    return value


def _remote(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("rfc2217://"):
        raise fail(
            "remote is the rfc2217://host:port URL of a slot served by `rig serve` on another "
            f"host (got {value!r})"
        )
    return value


class Slot(FrozenModel):
    """One board position of a station."""

    id: Name
    board: Name  # a board type name
    port: Annotated[str | None, BeforeValidator(_port)] = None
    usb_serial: Annotated[str, Field(min_length=1)] | None = None  # match by USB serial number
    relays: dict[Role, RelayChannel] = Field(default_factory=dict)
    expected_mac: Mac | None = None  # the MAC of the board that belongs in this slot
    simulated: SimSlot | None = None
    # A slot served by `rig serve` on another host (a lab's Pi): its relays are there, and the
    # resets are DTR/RTS patterns on this RFC 2217 connection (rig.board.remote).
    remote: Annotated[str | None, BeforeValidator(_remote)] = None

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
        if self.remote is not None:
            for key in ("port", "usb_serial", "simulated"):
                if getattr(self, key) is not None:
                    raise fail(f"a remote slot is reached through its URL: remove {key}", key)
            if self.relays:
                raise fail("a remote slot's relays are on the host that serves it", "relays")
        elif self.simulated is not None:
            for key in ("port", "usb_serial"):
                if getattr(self, key) is not None:
                    raise fail(
                        f"a simulated slot gets its port from the simulator: remove {key}", key
                    )
        elif self.port is not None and self.usb_serial is not None:
            raise fail("give either port or usb_serial, not both", "usb_serial")
        elif self.port is None and self.usb_serial is None:
            raise fail(
                "a slot needs a serial port: port: /dev/serial/by-id/... or usb_serial: SERIAL"
            )
        return self


# What identifies the board of a slot, so two slots must not share it: one serial port (or USB
# serial number) behind two slots' relays would let the rig dump one board and erase another, and
# one expected MAC in two slots means one of them can never hold the right board.
_IDENTITY_KEYS = (
    ("port", "port"),
    ("usb_serial", "USB serial"),
    ("remote", "remote URL"),
    ("expected_mac", "MAC"),
)


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


def _simulated_wiring(slot: Slot, index: int) -> list[tuple[DataPath, str]]:
    """Problems of a simulated slot's relays: a role its variant has no input for, a stuck
    relay the slot does not have."""
    problems: list[tuple[DataPath, str]] = []
    for j, fault in enumerate(slot.simulated.faults):
        if isinstance(fault, RelayStuck) and fault.role not in slot.relays:
            problems.append(
                (
                    ("slots", index, "simulated", "faults", j, "role"),
                    f"slot {slot.id} has no {fault.role} relay to get stuck "
                    f"(its relays: {', '.join(slot.relays) or 'none'})",
                )
            )
    variant = SIM_VARIANTS[slot.simulated.variant]
    for role in slot.relays:
        if role not in variant.contacts:
            problems.append(
                (
                    ("slots", index, "simulated", "variant"),
                    f"a simulated {variant.name} has no {role} input "
                    f"(relays it takes: {', '.join(variant.roles)})",
                )
            )
    return problems


def _dirs(value: Any) -> Any:
    return (value,) if isinstance(value, str | Path) else value


FirmwareDirs = Annotated[
    tuple[FilePath, ...],
    BeforeValidator(_dirs),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "firmware directories, each with an optional catalog.yaml; "
            "`rig firmware add` imports into the last one",
        }
    ),
]


class Station(FrozenModel):
    """One physical rig (``configs/stations/<name>.yaml``)."""

    name: Name
    backups: FilePath
    locks: FilePath
    # Where the station's firmware files and catalogs live (default: <backups>/../firmware).
    firmware: FirmwareDirs = ()
    pins: PinsConfig = Field(default_factory=PinsConfig)
    slots: Annotated[tuple[Slot, ...], Field(min_length=1)]
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True, repr=False)
    # The board types the slots use, with the station's catalog entries (filled in by the
    # loader), and every entry of the station's catalogs.
    boards: SkipJsonSchema[dict[str, BoardType]] = Field(
        default_factory=dict, exclude=True, repr=False
    )
    catalog: SkipJsonSchema[tuple[CatalogFirmware, ...]] = Field(
        default=(), exclude=True, repr=False
    )

    @property
    def firmware_dirs(self) -> tuple[Path, ...]:
        """The firmware directories: as configured, else ``<backups>/../firmware``. ``rig
        firmware add`` imports into the last one."""
        if self.firmware:
            return tuple(Path(d).expanduser() for d in self.firmware)
        return (Path(self.backups).expanduser().parent / "firmware",)

    @property
    def simulated_slots(self) -> tuple[str, ...]:
        """The slots whose boards are simulated: a command on them touches no real hardware,
        and says so (its first line, ``"simulated": true`` in its JSON)."""
        return tuple(s.id for s in self.slots if s.simulated is not None)

    @property
    def simulated(self) -> bool:
        return bool(self.simulated_slots)

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
        for i, directory in enumerate(self.firmware):
            if directory in self.firmware[:i]:
                message = f"firmware directory {directory} is listed twice"
                problems.append((("firmware", i), message))
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
            if backend == "sim" and slot.simulated is None and slot.remote is None:
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
                problems += _simulated_wiring(slot, i)
            if boards is None or slot.board in broken:
                continue
            board = boards.get(slot.board)
            if board is None:
                known = ", ".join(sorted(boards)) or "none"
                problems.append(
                    (("slots", i, "board"), f"unknown board type {slot.board!r} (known: {known})")
                )
                continue
            if slot.remote is not None:
                continue  # wired on the host that serves it
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
        raise_problems(problems)
        return self
