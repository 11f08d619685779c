"""The scalar types of config files: names, flash offsets and sizes, MACs, paths, seconds.

Integers may be written in hex (``0x10000``); offsets are 4 KB sector aligned and sizes whole
sectors (:data:`rig.esp32.SECTOR`); flash sizes are the ones an ESP32 image header can say
(:data:`rig.esp32.FLASH_SIZES`). Paths expand ``~``, ``$VAR``, ``${VAR}`` and
``${VAR:-default}`` and are resolved against the directory of the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationInfo,
    WithJsonSchema,
)

from rig.esp32 import FLASH_SIZES, MB, SECTOR, format_mac, parse_mac

from .errors import fail

__all__ = [
    "ROLES",
    "FilePath",
    "FlashSize",
    "FrozenModel",
    "INT_OR_HEX",
    "Mac",
    "Name",
    "Offset",
    "RegionSize",
    "Role",
    "Seconds",
    "StrictBool",
    "human_size",
    "int_like",
]

Role = Literal["io0", "power", "reset"]  # the relay roles a board type may use
ROLES: tuple[str, ...] = get_args(Role)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME_RE.fullmatch(value):
        raise fail(f"names use letters, digits, '.', '_' and '-' (got {value!r})")
    return value


def int_like(value: Any, what: str) -> int:
    """An int, or a string holding one (``"0x10000"``, ``"65536"``); bools rejected."""
    if isinstance(value, str):
        try:
            value = int(value.replace("_", ""), 0)
        except ValueError:
            raise fail(f"{what} must be an integer such as 0x10000 (got {value!r})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{what} must be an integer such as 0x10000 (got {value!r})")
    return value


def _offset(value: Any) -> int:
    value = int_like(value, "offset")
    if value < 0:
        raise fail(f"offset must not be negative (got {value})")
    if value % SECTOR:
        raise fail(f"offset {value:#x} is not aligned to a 4 KB flash sector (0x1000)")
    return value


def _region_size(value: Any) -> int:
    value = int_like(value, "size")
    if value <= 0 or value % SECTOR:
        raise fail(f"size {value:#x} must be a positive multiple of 4 KB (0x1000)")
    return value


def _flash_size(value: Any) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(MB|M|MiB)\s*", value, re.IGNORECASE)
        if not match:
            raise fail(f"flash size is written like 4MB (got {value!r})")
        value = int(match.group(1)) * MB
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"flash size is written like 4MB (got {value!r})")
    if value not in FLASH_SIZES:
        raise fail(f"flash size must be one of 1MB, 2MB, 4MB, 8MB, 16MB (got {human_size(value)})")
    return value


INT_OR_HEX = {
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
Offset = Annotated[int, BeforeValidator(_offset), WithJsonSchema(INT_OR_HEX)]
RegionSize = Annotated[int, BeforeValidator(_region_size), WithJsonSchema(INT_OR_HEX)]
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
        raise fail(f"environment variable {name} is not set (write ${{{name}:-default}})")

    return os.path.expanduser(_ENV_RE.sub(sub, text))


def _path(value: Any, info: ValidationInfo) -> Any:
    """Expand and resolve a path against the config file's directory (``context['base_dir']``)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        return value  # let pydantic report the type
    if not value.strip():
        raise fail("a path must not be empty")
    path = Path(_expand(value))
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute():
        path = (Path(base) if base is not None else Path.cwd()) / path
    return Path(os.path.normpath(path))


FilePath = Annotated[Path, BeforeValidator(_path), WithJsonSchema({"type": "string"})]


def _mac(value: Any) -> Any:
    """The rig's one spelling of a MAC (:func:`rig.esp32.format_mac`), checked as
    :func:`rig.esp32.parse_mac` checks it (six hex pairs, not multicast)."""
    if not isinstance(value, str):
        return value
    try:
        return format_mac(parse_mac(value))
    except ValueError as err:
        raise fail(str(err)) from None


Mac = Annotated[
    str,
    BeforeValidator(_mac),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$"}),
]


def human_size(n: int) -> str:
    """``4 MB`` for whole megabytes, else the byte count in hex."""
    return f"{n // MB} MB" if n and n % MB == 0 else f"{n:#x} bytes"


class FrozenModel(BaseModel):
    """The base of every config model: immutable, and an unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
