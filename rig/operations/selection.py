"""Which station and which of its slots an operation uses, validated before anything is opened.

:func:`select` reads the station config and checks board type names, slot ids and ``NAME=FILE``
firmware overrides, and raises :class:`SelectionError` (bad input, nothing touched) with a message
naming what is known; the pytest plugin's ``--board`` / ``--slot`` / ``--firmware`` go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import config
from rig.errors import BadInput

__all__ = ["Selection", "SelectionError", "known_boards", "parse_names", "select"]


class SelectionError(BadInput):
    """Bad ``--board`` / ``--slot`` / ``--station`` / ``--firmware`` input (nothing touched)."""


@dataclass(frozen=True)
class Selection:
    """The station to use (with ``--backups`` and ``--firmware`` applied) and its chosen slots."""

    station: config.Station
    slots: tuple[config.Slot, ...]
    boards: tuple[str, ...]  # the board types selected (in --board order, else slot order)
    overrides: tuple[tuple[str, str, Path], ...] = ()  # (board type, firmware name, file)

    @property
    def backups(self) -> Path:
        return Path(self.station.backups)

    @property
    def slot_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.slots)

    def board_type(self, slot: config.Slot | str) -> config.BoardType:
        return self.station.board_of(slot)

    def describe(self) -> str:
        where = self.station.source or "embedded"
        slots = ", ".join(f"{s.id} ({s.board})" for s in self.slots)
        return f"station {self.station.name} ({where}); slots: {slots}; backups: {self.backups}"


def parse_names(values: Iterable[str] | None) -> list[str]:
    """``["l7x,esp32-devkitc", "l7x"]`` -> ``["l7x", "esp32-devkitc"]`` (order kept, no repeats)."""
    names: list[str] = []
    for value in values or ():
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def known_boards(station: config.Station) -> list[str]:
    """Every board type this station can name: its own, the shipped ones, a local boards dir."""
    names = set(station.boards)
    with contextlib.suppress(config.ConfigError):
        names |= set(config.load_boards(config.board_dirs_for(station.source)))
    return sorted(names)


def _slot_list(station: config.Station) -> str:
    return ", ".join(f"{s.id} ({s.board})" for s in station.slots)


def select(
    *,
    boards: Iterable[str] = (),
    slots: Iterable[str] = (),
    station_path: str | os.PathLike[str] | None = None,
    backups: str | os.PathLike[str] | None = None,
    firmware: Iterable[str] = (),
) -> Selection:
    """Validate a selection: board type names (``"a,b"`` allowed), slot ids, ``NAME=FILE``
    firmware overrides. No board and no slot selects every slot of the station.

    Raises :class:`SelectionError` with a message naming what is known.
    """
    try:
        station = config.station_from_env(station_path)
    except config.ConfigError as err:
        raise SelectionError(f"station config: {err.report()}") from None
    board_names = parse_names(boards)
    slot_ids = parse_names(slots)
    known = known_boards(station)
    for name in board_names:
        if name not in known:
            raise SelectionError(
                f"unknown board {name!r} (known boards: {', '.join(known) or 'none'})"
            )
        if not any(s.board == name for s in station.slots):
            raise SelectionError(
                f"station {station.name} has no {name} slot (slots: {_slot_list(station)})"
            )
    ids = [s.id for s in station.slots]
    for slot_id in slot_ids:
        if slot_id not in ids:
            raise SelectionError(
                f"no slot {slot_id!r} in station {station.name} (slots: {_slot_list(station)})"
            )
        board = station.slot(slot_id).board
        if board_names and board not in board_names:
            raise SelectionError(
                f"slot {slot_id} holds a board of type {board}, not {' or '.join(board_names)}"
            )
    chosen = [
        s
        for s in station.slots
        if (not slot_ids or s.id in slot_ids) and (not board_names or s.board in board_names)
    ]
    chosen_boards = tuple(board_names) or tuple(dict.fromkeys(s.board for s in chosen))
    update: dict[str, Any] = {}
    if backups is not None:
        update["backups"] = Path(os.path.expanduser(os.fspath(backups))).resolve()
    overrides = _firmware_overrides(station, chosen_boards, firmware)
    if overrides:
        update["boards"] = _apply_overrides(station.boards, overrides)
    if update:
        station = station.model_copy(update=update)
    return Selection(station, tuple(chosen), chosen_boards, tuple(overrides))


def _firmware_overrides(
    station: config.Station, boards: Sequence[str], specs: Iterable[str]
) -> list[tuple[str, str, Path]]:
    out: list[tuple[str, str, Path]] = []
    for spec in specs or ():
        name, sep, file = spec.partition("=")
        name, file = name.strip(), file.strip()
        if not sep or not name or not file:
            raise SelectionError(f"--firmware takes NAME=FILE (got {spec!r})")
        path = Path(os.path.expanduser(file)).resolve()
        if not path.is_file():
            raise SelectionError(f"--firmware {name}={file}: no such file")
        hits = [b for b in boards if any(fw.name == name for fw in station.boards[b].firmware)]
        if not hits:
            catalogs = "; ".join(
                f"{b}: {', '.join(fw.name for fw in station.boards[b].firmware) or 'none'}"
                for b in boards
            )
            raise SelectionError(f"--firmware: no firmware {name!r} in the catalog ({catalogs})")
        out += [(board, name, path) for board in hits]
    return out


def _apply_overrides(
    boards: dict[str, config.BoardType], overrides: Sequence[tuple[str, str, Path]]
) -> dict[str, config.BoardType]:
    """Board types whose catalog entries point at the override files (sha256 taken from them;
    offset and console pattern kept)."""
    out = dict(boards)
    for board_name, name, path in overrides:
        board = out[board_name]
        entries = []
        for fw in board.firmware:
            if fw.name == name:
                fields = fw.model_dump()
                fields["file"] = str(path)
                fields["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                fw = config.CatalogFirmware.model_validate(fields)
            entries.append(fw)
        out[board_name] = board.model_copy(update={"firmware": tuple(entries)})
    return out
