"""Which station and which of its slots an operation uses, validated before anything is opened.

The one place that checks ``--board`` / ``--slot`` / ``--slots`` input, with the policy each
front end needs, all raising :class:`SelectionError` (bad input, nothing touched, exit 2) with a
message that names what is known:

* :func:`one_slot` - the one slot of ``rig identify | dump | erase | write | verify | restore |
  cycle | relay`` and of each ``rig serve --slot``: ``--slot``, else the first slot of
  ``--board``, else the station's only slot;
* :func:`board_slots` - ``rig flash``: the slots of one board type, ``all`` or a list;
* :func:`listed_slots` - ``rig serve``: a list of slots or ``--all``;
* :func:`select` - the pytest plugin: board types and slots together (none: every slot), with
  ``--backups`` and ``NAME=FILE`` firmware overrides;
* :func:`check_slot_ids` - ids that must name slots (``rig quarantine --clear``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import config
from rig.errors import BadInput
from rig.images.info import APP, image_info
from rig.operations.backups import BackupStore

__all__ = [
    "Selection",
    "SelectionError",
    "board_slots",
    "check_slot_ids",
    "known_boards",
    "listed_slots",
    "one_slot",
    "parse_names",
    "select",
]


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

    @property
    def slot(self) -> config.Slot:
        """The slot of a one-slot selection (:func:`one_slot`)."""
        (only,) = self.slots
        return only

    def store(self) -> BackupStore:
        """The backup store of the station (``--backups`` applied)."""
        return BackupStore(self.backups)

    def board_type(self, slot: config.Slot | str | None = None) -> config.BoardType:
        """The board type of ``slot`` (default: the selection's only slot)."""
        return self.station.board_of(self.slot if slot is None else slot)

    def backup_meta(self, slot: config.Slot | str | None = None) -> dict[str, str]:
        """What a backup taken in ``slot`` (default: the only slot) records about where."""
        chosen = self.slot if slot is None else slot
        cfg = self.station.slot(chosen) if isinstance(chosen, str) else chosen
        return {"station": self.station.name, "slot": cfg.id, "board_type": cfg.board}

    def describe(self) -> str:
        where = self.station.source or "embedded"
        return f"station {self.station.name} ({where}); slots: {_slots(self.slots)}; " + (
            f"backups: {self.backups}"
        )


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


# -- the checks every policy shares ----------------------------------------------------------------
def _slots(slots: Iterable[config.Slot]) -> str:
    return ", ".join(f"{s.id} ({s.board})" for s in slots)


def _check_board(station: config.Station, name: str) -> None:
    """``name`` is a board type the station has a slot of; else say whether the name is unknown
    (and which are known) or only not in this station (and which slots it has)."""
    if any(s.board == name for s in station.slots):
        return
    known = known_boards(station)
    if name not in known:
        raise SelectionError(f"unknown board {name!r} (known boards: {', '.join(known) or 'none'})")
    raise SelectionError(
        f"station {station.name} has no {name} slot (slots: {_slots(station.slots)})"
    )


def _slot(station: config.Station, slot_id: str, boards: Sequence[str] = ()) -> config.Slot:
    """The slot ``slot_id``, which must hold one of ``boards`` (if any are given)."""
    for slot in station.slots:
        if slot.id == slot_id:
            if boards and slot.board not in boards:
                raise SelectionError(
                    f"slot {slot_id} holds a board of type {slot.board}, not {' or '.join(boards)}"
                )
            return slot
    raise SelectionError(
        f"no slot {slot_id!r} in station {station.name} (slots: {_slots(station.slots)})"
    )


def check_slot_ids(station: config.Station, ids: Iterable[str], also: Collection[str] = ()) -> None:
    """Every id names a slot of the station (or is one of ``also``)."""
    for slot_id in ids:
        if slot_id not in also:
            _slot(station, slot_id)


def _chosen(station: config.Station, slots: Iterable[config.Slot]) -> tuple[config.Slot, ...]:
    """``slots`` in station order, each once."""
    wanted = {s.id for s in slots}
    return tuple(s for s in station.slots if s.id in wanted)


def _of(station: config.Station, slots: Iterable[config.Slot]) -> Selection:
    chosen = _chosen(station, slots)
    return Selection(station, chosen, tuple(dict.fromkeys(s.board for s in chosen)))


# -- the policies ----------------------------------------------------------------------------------
def one_slot(
    station: config.Station,
    *,
    slot: str | None = None,
    board: str | None = None,
    board_option: bool = True,
) -> Selection:
    """One slot: ``slot`` (which must hold a ``board``, if given), else the first slot of
    ``board``, else the station's only slot. ``board_option``: the command has a ``--board``
    to name in the error when the station has several slots."""
    if board is not None:
        _check_board(station, board)
    boards = (board,) if board is not None else ()
    if slot is not None:
        return _of(station, [_slot(station, slot, boards)])
    if board is not None:
        return _of(station, [next(s for s in station.slots if s.board == board)])
    if len(station.slots) == 1:
        return _of(station, station.slots)
    options = "--slot or --board" if board_option else "--slot"
    raise SelectionError(
        f"station {station.name} has several slots; pick one with {options} "
        f"(slots: {_slots(station.slots)})"
    )


def board_slots(
    station: config.Station, board: str, slots: str | Sequence[str] = "all"
) -> Selection:
    """The slots of board type ``board``: ``"all"``, or ids (a list, or separated by commas)."""
    _check_board(station, board)
    if isinstance(slots, str) and slots.strip() == "all":
        return _of(station, (s for s in station.slots if s.board == board))
    wanted = parse_names([slots] if isinstance(slots, str) else slots)
    if not wanted:
        raise SelectionError("--slots: name slot ids separated by commas, or all")
    return _of(station, [_slot(station, slot_id, (board,)) for slot_id in wanted])


def listed_slots(
    station: config.Station, slot_ids: Sequence[str] = (), *, all_slots: bool = False
) -> Selection:
    """Every slot (``all_slots``), or the ``slot_ids`` in the order given (each a
    :func:`one_slot`: none given is the station's only slot)."""
    if all_slots and slot_ids:
        raise SelectionError("--all and --slot exclude each other")
    if all_slots:
        return _of(station, station.slots)
    ids = list(dict.fromkeys(slot_ids)) or [None]
    chosen = tuple(one_slot(station, slot=i, board_option=False).slot for i in ids)
    return Selection(station, chosen, tuple(dict.fromkeys(s.board for s in chosen)))


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
    for name in board_names:
        _check_board(station, name)
    named = [_slot(station, slot_id, board_names) for slot_id in slot_ids]
    chosen = _chosen(
        station, named or [s for s in station.slots if not board_names or s.board in board_names]
    )
    chosen_boards = tuple(board_names) or tuple(dict.fromkeys(s.board for s in chosen))
    update: dict[str, Any] = {}
    if backups is not None:
        update["backups"] = Path(os.path.expanduser(os.fspath(backups))).resolve()
    overrides = _firmware_overrides(station, chosen_boards, firmware)
    if overrides:
        update["boards"] = _apply_overrides(station.boards, overrides)
    if update:
        station = station.model_copy(update=update)
    return Selection(station, chosen, chosen_boards, tuple(overrides))


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
    """Board types whose catalog entries take the override files (sha256 taken from them;
    offsets and console pattern kept): a file replaces the entry's only part, or its app."""
    out = dict(boards)
    for board_name, name, path in overrides:
        board = out[board_name]
        entries = []
        for fw in board.firmware:
            if fw.name == name:
                fw = fw.model_copy(update={"parts": _replaced(fw, path)})
            entries.append(fw)
        out[board_name] = board.model_copy(update={"firmware": tuple(entries)})
    return out


def _replaced(fw: config.CatalogFirmware, path: Path) -> tuple[config.FirmwarePart, ...]:
    """``fw``'s parts with ``path`` in place of its only part, or of the part that is an app."""

    def is_app(part: config.FirmwarePart) -> bool:
        return part.problem() is None and image_info(part.file.read_bytes()).kind == APP

    target = fw.parts[0] if len(fw.parts) == 1 else next(filter(is_app, fw.parts), None)
    if target is None:
        raise SelectionError(
            f"--firmware {fw.name}={path}: the entry has {len(fw.parts)} parts and none is an "
            "app to replace"
        )
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    new = target.model_copy(update={"file": path, "sha256": sha256})
    return tuple(new if part is target else part for part in fw.parts)
