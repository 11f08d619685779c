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
from .errors import ConfigError, bundle, problems_of
from .station import Station
from .yamlpos import Document, YamlError, format_path, load_yaml

__all__ = [
    "STATION_ENV",
    "board_dirs_for",
    "builtin_configs_dir",
    "default_station",
    "load_board",
    "load_boards",
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
    file with errors of its own) are not checked against it."""
    doc = read_document(path)
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
