"""Firmware catalogs: what a station can flash (``<firmware dir>/catalog.yaml``).

A firmware entry is a set of *parts* - a file, the offset it goes to, its pinned sha256 - for
one board type, as esptool's ``flasher_args.json`` lists an ESP-IDF build (``"flash_files":
{"0x1000": "bootloader/bootloader.bin", "0x8000": ..., "0x10000": "app.bin"}``) or the Arduino
IDE writes a sketch (bootloader 0x1000, partitions 0x8000, boot_app0 0xe000, app 0x10000). An
app-only entry (one part at 0x10000) is fine: the rig takes bootloader and partition table from
the board's verified backup when a chip erase needs them (:mod:`rig.operations.bootplan`).
``console`` is the regex the firmware's console shows once booted; without it the default boot
check applies (the bootloader loaded the app from the expected partition, no panic, no reset
loop).

A station names its firmware directories (``firmware: DIR`` or a list; default
``<backups>/../firmware``); each may hold a ``catalog.yaml``. A part's file is resolved against
its catalog's directory, ``~`` and ``${VAR}`` expanded. The structure is checked when the
station loads (errors at ``file:line:col``); the files when an entry is used - one error that
names the entry, the file and where it was looked for, before any relay moves - and by ``rig
check`` and ``rig firmware list``, so a file moved away does not stop ``rig dump``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from .errors import ConfigError, bundle, fail
from .types import FilePath, FrozenModel, Name, Offset

__all__ = [
    "CATALOG_FILE",
    "Catalog",
    "CatalogFirmware",
    "FirmwarePart",
    "Sha256",
    "appended_catalog",
    "entry_yaml",
    "sha256_of",
]

CATALOG_FILE = "catalog.yaml"


def _sha(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise fail(f"sha256 must be a string of 64 hex digits: quote it (read as {value!r})")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise fail(f"sha256 must be 64 hex digits (got {len(value)} characters: {value!r})")
        return value.lower()
    return value


Sha256 = Annotated[
    str, BeforeValidator(_sha), WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})
]

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The file's sha256 (cached by path, size and mtime: catalogs are checked often)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SHA_CACHE[key]


def _none_is_empty(value: Any) -> Any:
    return () if value is None else value  # `firmware:` with no entries yet


class FirmwarePart(FrozenModel):
    """One file of a firmware and the flash offset it is written at."""

    file: FilePath  # resolved against the catalog's directory; ~ and ${VAR} expanded
    offset: Offset
    sha256: Sha256  # pinned: the file must hash to it
    # Where the part is written in its catalog (file:line:col), for errors about its file.
    at: SkipJsonSchema[str | None] = Field(default=None, exclude=True, repr=False)

    def problem(self) -> str | None:
        """Why the file cannot be used (missing, not a file, another sha256), or None."""
        if not self.file.exists():
            return f"{self.file} does not exist (looked in {self.file.parent})"
        if not self.file.is_file():
            return f"{self.file} is not a file"
        actual = sha256_of(self.file)
        if actual != self.sha256:
            return f"{self.file} hashes to {actual}, the catalog pins {self.sha256}"
        return None


class CatalogFirmware(FrozenModel):
    """A catalog entry: the parts of one firmware for one board type."""

    name: Name
    board: Name  # the board type it is for
    parts: Annotated[tuple[FirmwarePart, ...], Field(min_length=1)]
    console: str | None = None  # regex its console shows once booted; None: the default check
    description: str | None = None
    # The catalog file and the entry's index in it (filled in by the loader), for errors.
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True, repr=False)
    index: SkipJsonSchema[int | None] = Field(default=None, exclude=True, repr=False)

    @field_validator("console")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise fail(f"console is not a valid regular expression: {err}") from None
        return value

    @field_validator("parts")
    @classmethod
    def _distinct(cls, parts: tuple[FirmwarePart, ...]) -> tuple[FirmwarePart, ...]:
        for i, part in enumerate(parts):
            if any(other.offset == part.offset for other in parts[:i]):
                raise fail(f"two parts at offset {part.offset:#x}", i, "offset")
        return parts

    @property
    def offset(self) -> int:
        """Where the firmware starts (its lowest part)."""
        return min(part.offset for part in self.parts)

    @property
    def sha256(self) -> str:
        """The one file's sha256; for several parts, the sha256 of their ``offset sha256``
        lines (sorted by offset): one value that pins them all."""
        if len(self.parts) == 1:
            return self.parts[0].sha256
        lines = "".join(f"{p.offset:#x} {p.sha256}\n" for p in sorted(self.parts, key=_offset))
        return hashlib.sha256(lines.encode()).hexdigest()

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return None if self.console is None else re.compile(self.console)

    def describe(self) -> str:
        """``file@0x10000 + ...`` for people."""
        return " + ".join(f"{p.file.name}@{p.offset:#x}" for p in sorted(self.parts, key=_offset))

    def check_files(self) -> None:
        """Raise a :class:`ConfigError` (bad input) naming the entry, the part's file and where
        it was looked for, if a part cannot be used (all of them in ``.errors``)."""
        problems = self.file_problems()
        if problems:
            raise bundle(problems)

    def file_problems(self) -> list[ConfigError]:
        """Every unusable part, as config errors (``rig check``)."""
        out = []
        for i, part in enumerate(self.parts):
            problem = part.problem()
            if problem is not None:
                out.append(ConfigError(*_position(part, self.source), *_message(self, i, problem)))
        return out


def _offset(part: FirmwarePart) -> int:
    return part.offset


def _position(part: FirmwarePart, source: Path | None) -> tuple[Path, int | None, int | None]:
    if part.at is not None:
        file, line, col = part.at.rsplit(":", 2)
        return Path(file), int(line), int(col)
    return (source or Path("catalog")), None, None


def _message(entry: CatalogFirmware, index: int, problem: str) -> tuple[str, str]:
    where = f"parts[{index}].file"
    if entry.index is not None:
        where = f"firmware[{entry.index}].{where}"
    return where, f"firmware {entry.name}: {problem}"


class Catalog(FrozenModel):
    """A ``catalog.yaml``: firmware entries (names unique across the station's catalogs)."""

    firmware: Annotated[tuple[CatalogFirmware, ...], BeforeValidator(_none_is_empty)] = ()


CATALOG_HEADER = """\
# Firmware catalog (rig firmware add | list | show). Each entry is a firmware for one board type:
# its parts (file@offset with a pinned sha256; files relative to this directory, ~ and ${VAR}
# expanded) and an optional console regex (without one, the default boot check applies).
"""


def entry_yaml(
    name: str,
    board: str,
    parts: list[tuple[str, int, str]],
    console: str | None = None,
    description: str | None = None,
) -> str:
    """One catalog entry as YAML block text, for appending to a ``catalog.yaml`` (the file keeps
    its comments and layout). ``parts``: ``(file, offset, sha256)``. Strings are written as JSON
    strings, which YAML reads as double-quoted scalars."""
    lines = [f"  - name: {name}", f"    board: {board}", "    parts:"]
    for file, offset, sha256 in parts:
        quoted = json.dumps(sha256)
        lines.append(f"      - {{file: {json.dumps(file)}, offset: {offset:#x}, sha256: {quoted}}}")
    if console is not None:
        lines.append(f"    console: {json.dumps(console)}")
    if description is not None:
        lines.append(f"    description: {json.dumps(description)}")
    return "\n".join(lines) + "\n"


def appended_catalog(path: Path, entry: str) -> str:
    """The text of ``path`` (a new catalog if it does not exist) with ``entry`` appended to its
    ``firmware:`` list, which must be its last key and a block list (the caller validates the
    result and keeps the old text if it is not)."""
    text = path.read_text(encoding="utf-8") if path.exists() else CATALOG_HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    if not re.search(r"^firmware:[ \t]*(#.*)?$", text, re.MULTILINE):
        text += "firmware:\n"
    return text + entry
