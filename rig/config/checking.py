"""Checking config files without using them (``rig check``) and their JSON schemas (``rig schema``).

:func:`check_files` reports every problem of every file: board files first, then stations
against the shipped board types, a ``boards`` directory beside theirs, and the board files
being checked (a broken board file is reported once, not again by every station using it),
with their firmware catalogs and the files those name (missing, another sha256); a catalog
file given on its own is checked against the shipped board types.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .board import BoardType
from .catalog import CATALOG_FILE, Catalog, CatalogFirmware
from .errors import ConfigError
from .loading import (
    board_dirs_for,
    builtin_configs_dir,
    load_board,
    load_boards,
    load_catalog,
    load_station_against,
    read_document,
    yaml_files,
)
from .station import Station
from .yamlpos import Document

__all__ = ["check_files", "json_schema"]


def _kind(path: Path, doc: Document) -> str:
    if path.name == CATALOG_FILE:
        return "catalog"
    if path.parent.name in ("boards", "stations"):
        return "board" if path.parent.name == "boards" else "station"
    return "station" if "slots" in doc.data else "board"


def check_files(paths: Iterable[str | os.PathLike[str]] | None = None) -> list[ConfigError]:
    """Every problem in every file (directories: their ``*.yaml``, recursively). With no paths:
    every shipped config. Station files are checked against the shipped board types, a ``boards``
    directory beside theirs, and the board files being checked."""
    if paths is None or not (paths := list(paths)):
        root = builtin_configs_dir()
        paths = [*yaml_files(root / "boards"), *yaml_files(root / "stations")]
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
            doc = read_document(file)
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
            for board_file in yaml_files(directory):
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
            station = load_station_against(file, boards, others_broken - set(boards))
        except ConfigError as err:
            errors += err.errors
        else:
            errors += _file_problems(station.catalog)
    for file, _doc, kind in docs:
        if kind == "catalog":
            errors += _catalog_problems(file)
    return errors


def _file_problems(entries: Iterable[CatalogFirmware]) -> list[ConfigError]:
    return [problem for entry in entries for problem in entry.file_problems()]


def _catalog_problems(file: Path) -> list[ConfigError]:
    """A catalog file on its own: its structure, its board types (the shipped ones, and a
    ``boards`` directory beside its firmware directory), its files."""
    try:
        boards = load_boards(board_dirs_for(file))
        return _file_problems(load_catalog(file, boards))
    except ConfigError as err:
        return list(err.errors)


def json_schema() -> dict[str, Any]:
    """JSON Schemas of board type and station files (for editor completion)."""
    out = {}
    for key, model, title in (
        ("board", BoardType, "rig board type (configs/boards/<name>.yaml)"),
        ("station", Station, "rig station (configs/stations/<name>.yaml)"),
        ("catalog", Catalog, "rig firmware catalog (<firmware dir>/catalog.yaml)"),
    ):
        schema = model.model_json_schema()
        out[key] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        out[key]["title"] = title
    return out
