"""Reading config files: YAML with positions -> validated models, or every problem at file:line.

Files are read with :mod:`rig.config.yamlpos` (YAML 1.2 booleans: a bare ``off`` is a string;
duplicate keys rejected; positions kept), validated by pydantic with the file's directory as the
base of relative paths, then cross-checked. Loaders raise the first :class:`ConfigError` with all
of them in ``.errors``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .board import BoardType
from .catalog import CATALOG_FILE, Catalog, CatalogFirmware
from .errors import ConfigError, bundle, problems_of
from .station import Station
from .types import human_size
from .yamlpos import DataPath, Document, YamlError, format_path, load_yaml

__all__ = [
    "STATION_ENV",
    "board_dirs_for",
    "builtin_configs_dir",
    "default_station",
    "load_board",
    "load_boards",
    "load_catalog",
    "load_catalogs",
    "load_station",
    "station_from_env",
]

STATION_ENV = "RIG_STATION"


def read_document(path: Path) -> Document:
    """The YAML document of a config file: a mapping, with positions (else a ConfigError)."""
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


def _translate(exc: ValidationError, doc: Document, file: Path, model: type[BaseModel]):
    out: list[ConfigError] = []
    for path, message, keep_missing in problems_of(exc, model):
        found = doc.existing(path)
        # Our own errors and "missing" name keys that may be absent; other absent parts of
        # a pydantic location are its internals (union members, validator names).
        where = path if keep_missing else found
        line, col = doc.position(found)
        out.append(ConfigError(file, line, col, format_path(where), message))
    return out


# Keys that were once part of a file and now live elsewhere: what to do instead.
_MOVED = {
    ("BoardType", "firmware"): "board types have no firmware catalog any more: catalogs belong "
    "to stations - move these entries into a catalog.yaml in the station's firmware directory "
    "(each with board: <this board type>), or import each file with `rig firmware add`",
}


def _validate(model: type[BaseModel], path: Path, doc: Document, context: dict, extra=()):
    errors = list(extra)
    data = dict(doc.data)
    for reserved, field in model.model_fields.items():
        if reserved in data and field.exclude:  # filled in by the loader, never by the file
            line, col = doc.position((reserved,))
            message = _MOVED.get((model.__name__, reserved), f"unknown key {reserved!r}")
            errors.append(ConfigError(path, line, col, reserved, message))
            del data[reserved]
    obj = None
    try:
        obj = model.model_validate(data, context=context)
    except ValidationError as exc:
        errors += _translate(exc, doc, path, model)
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.col or 0))
        raise bundle(errors)
    return obj


def _context(path: Path, **extra: Any) -> dict[str, Any]:
    return {"base_dir": path.resolve().parent, **extra}


def load_board(path: str | os.PathLike[str]) -> BoardType:
    """Load one board type file; raise :class:`ConfigError` (all problems in ``.errors``)."""
    path = Path(path)
    doc = read_document(path)
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


def yaml_files(directory: Path) -> list[Path]:
    """The config files of a directory, sorted."""
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
        for file in yaml_files(directory):
            try:
                board = load_board(file)
            except ConfigError as err:
                errors += err.errors
            else:
                boards[board.name] = board
    if errors:
        raise bundle(errors)
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
    return load_station_against(path, boards, set())


def load_station_against(path: Path, boards: Mapping[str, BoardType], broken: set[str]) -> Station:
    """Load a station checked against ``boards``; slots of a board type in ``broken`` (a board
    file with errors of its own) are not checked against it. Its catalogs are loaded too: each
    board type it uses carries the station's entries for it."""
    doc = read_document(path)
    context = _context(path, boards=boards, broken=broken)
    station = _validate(Station, path, doc, context)
    catalog = load_catalogs(station.firmware_dirs, {**boards, **dict.fromkeys(broken)})
    used = {
        slot.board: boards[slot.board].model_copy(
            update={"firmware": tuple(fw for fw in catalog if fw.board == slot.board)}
        )
        for slot in station.slots
        if slot.board in boards
    }
    return station.model_copy(
        update={"source": path.absolute(), "boards": used, "catalog": catalog}
    )


def _position(doc: Document, where: DataPath) -> tuple[int | None, int | None]:
    return doc.position(doc.existing(where))


def _error_at(path: Path, doc: Document, where: DataPath, message: str) -> ConfigError:
    return ConfigError(path, *_position(doc, where), format_path(where), message)


def load_catalog(
    path: Path, boards: Mapping[str, BoardType | None] | None = None, seen: dict | None = None
) -> tuple[CatalogFirmware, ...]:
    """The entries of one ``catalog.yaml``, each knowing its file, its index and where each
    part is written in it. With ``boards``, an entry for a board type not in it, or a part
    offset outside that board's flash, is an error; ``seen`` (name -> where, filled here) makes
    a name an earlier catalog defined an error."""
    doc = read_document(path)
    catalog = _validate(Catalog, path, doc, _context(path))
    seen = {} if seen is None else seen
    entries, errors = [], []
    for i, fw in enumerate(catalog.firmware):
        errors += _entry_problems(path, doc, i, fw, boards, seen)
        parts = []
        for j, part in enumerate(fw.parts):
            line, col = _position(doc, ("firmware", i, "parts", j, "file"))
            parts.append(part.model_copy(update={"at": f"{path}:{line}:{col}"}))
        update = {"parts": tuple(parts), "source": path.absolute(), "index": i}
        entries.append(fw.model_copy(update=update))
    if errors:
        raise bundle(errors)
    return tuple(entries)


def _entry_problems(
    path: Path,
    doc: Document,
    i: int,
    fw: CatalogFirmware,
    boards: Mapping[str, BoardType | None] | None,
    seen: dict,
) -> list[ConfigError]:
    """A name already defined, an unknown board type, a part past the board's flash."""
    problems = []
    line, col = _position(doc, ("firmware", i, "name"))
    if fw.name in seen:
        message = f"firmware {fw.name} is already defined at {seen[fw.name]}"
        problems.append(_error_at(path, doc, ("firmware", i, "name"), message))
    seen.setdefault(fw.name, f"{path}:{line}:{col}")
    if boards is None:
        return problems
    if fw.board not in boards:
        message = f"unknown board type {fw.board!r} (known: {', '.join(sorted(boards))})"
        problems.append(_error_at(path, doc, ("firmware", i, "board"), message))
    board = boards.get(fw.board)
    for j, part in enumerate(fw.parts):
        if board is not None and part.offset >= board.flash_size:
            message = (
                f"offset {part.offset:#x} is outside the {human_size(board.flash_size)} flash "
                f"of board type {board.name} (0x0..{board.flash_size - 1:#x})"
            )
            problems.append(_error_at(path, doc, ("firmware", i, "parts", j, "offset"), message))
    return problems


def load_catalogs(
    dirs: Iterable[Path], boards: Mapping[str, BoardType | None] | None = None
) -> tuple[CatalogFirmware, ...]:
    """The entries of every ``catalog.yaml`` in ``dirs``, in order (a directory without one
    has none); a name may be defined once."""
    seen: dict[str, str] = {}
    entries: list[CatalogFirmware] = []
    errors: list[ConfigError] = []
    for directory in dirs:
        path = Path(directory) / CATALOG_FILE
        if not path.is_file():
            continue
        try:
            entries += load_catalog(path, boards, seen)
        except ConfigError as err:
            errors += err.errors
    if errors:
        raise bundle(errors)
    return tuple(entries)


def default_station() -> Station:
    """The embedded simulated station (``configs/stations/sim.yaml``)."""
    return load_station(builtin_configs_dir() / "stations" / "sim.yaml")


def station_from_env(path: str | os.PathLike[str] | None = None) -> Station:
    """``--station FILE`` if given, else ``$RIG_STATION``, else the simulated station."""
    path = path or os.environ.get(STATION_ENV) or None
    return load_station(path) if path else default_station()
