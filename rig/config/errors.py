"""Config errors: one :class:`ConfigError` per problem, at ``file:line:col: where: message``.

Validators raise :func:`fail` (one problem, optionally below the field raising it) or
:func:`raise_problems` (every cross-check problem of a model at once). :func:`problems_of` turns
a pydantic ``ValidationError`` into ``(data path, message)`` pairs in the rig's words (unknown
keys with a suggestion, no pydantic internals in the path); the loader adds the file positions.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from rig.errors import BadInput

from .yamlpos import DataPath, format_path

__all__ = ["ConfigError", "Problem", "bundle", "fail", "problems_of", "raise_problems"]

# A problem: where (a data path), what, and whether the path may name a key the file lacks.
Problem = tuple[DataPath, str, bool]


class ConfigError(BadInput):
    """A problem in a config file, at a 1-based ``line``/``col`` (None when the file is unreadable).

    ``where`` is the dotted data path (``slots[0].relays.io0.pin``, may be empty). A loader raises
    the first problem; ``errors`` holds all of them (the first included). Bad input: nothing was
    touched (exit code 2).
    """

    def __init__(
        self,
        file: str | os.PathLike[str],
        line: int | None,
        col: int | None,
        where: str,
        message: str,
    ) -> None:
        self.file = Path(file)
        self.line = line
        self.col = col
        self.where = where
        self.message = message
        self.errors: tuple[ConfigError, ...] = (self,)
        super().__init__(str(self))

    def __str__(self) -> str:
        head = str(self.file) if self.line is None else f"{self.file}:{self.line}:{self.col}"
        return f"{head}: {self.where}: {self.message}" if self.where else f"{head}: {self.message}"

    def __reduce__(self):
        return (type(self), (self.file, self.line, self.col, self.where, self.message))

    def report(self) -> str:
        """Every problem, one per line."""
        return "\n".join(str(error) for error in self.errors)


def bundle(errors: list[ConfigError]) -> ConfigError:
    """The first error, carrying all of them in ``.errors``."""
    first = errors[0]
    first.errors = tuple(errors)
    return first


def fail(message: str, *at: Any) -> PydanticCustomError:
    """A validation error ``message`` at ``at`` (a path below the model or field raising it)."""
    return PydanticCustomError("rig", "{message}", {"message": message, "at": tuple(at)})


def raise_problems(problems: list[tuple[DataPath, str]]) -> None:
    """Raise every cross-check problem of a model at once (expanded again by the loader)."""
    if problems:
        summary = "; ".join(f"{format_path(at)}: {msg}" if at else msg for at, msg in problems)
        raise PydanticCustomError(
            "rig_problems", "{summary}", {"summary": summary, "problems": tuple(problems)}
        )


# -- pydantic errors in the rig's words ------------------------------------------------------------
def _tags(tp: Any) -> dict[Any, Any] | None:
    """``{tag: member}`` if ``tp`` is a tagged union (``Field(discriminator=...)``), else None."""
    discriminator = None
    while get_origin(tp) is Annotated:
        for meta in get_args(tp)[1:]:
            if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                discriminator = meta.discriminator
        tp = get_args(tp)[0]
    if discriminator is None or get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    return {
        tag: member
        for member in get_args(tp)
        for tag in get_args(member.model_fields[discriminator].annotation)
    }


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _below(tp: Any, part: Any) -> Any:
    """The type at ``part`` below ``tp`` (None if unknown: a union member, a validator name)."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    if origin in (tuple, list) and isinstance(part, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    return None


def _walk(root: Any, loc: DataPath) -> tuple[DataPath, Any]:
    """A pydantic location below ``root`` as a data path (the tags pydantic inserts for a tagged
    union removed: they are values, not keys), and the type found there (None if unknown)."""
    path: list[Any] = []
    tp = root
    for part in loc:
        tags = _tags(tp) if tp is not None else None
        if tags is not None and part in tags:
            tp = tags[part]
            continue
        path.append(part)
        tp = _below(tp, part) if tp is not None else None
    return tuple(path), tp


def _keys_at(root: Any, loc: DataPath) -> list[str] | None:
    """The keys a mapping at ``loc`` (below ``root``) may have, if it is a model that reads its
    fields as keys (a model with a YAML shape of its own sets ``yaml_keys = None``)."""
    tp = _unwrap(_walk(root, loc)[1])
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return None
    if getattr(tp, "yaml_keys", ()) is None:
        return None
    return [name for name, field in tp.model_fields.items() if not field.exclude]


def _message(err: dict[str, Any], root: Any, loc: DataPath) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind == "extra_forbidden":
        known = _keys_at(root, tuple(err["loc"][:-1])) or []
        message = f"unknown key {loc[-1]!r}"
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        return message + (f" (keys: {', '.join(known)})" if known else "")
    if kind == "too_short":
        return f"needs at least {err['ctx']['min_length']} item(s)"
    message = err["msg"].splitlines()[0]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {value!r})"
        if kind == "bool_type" and isinstance(value, str):
            message += "; booleans are written true or false, without quotes"
    return message


def problems_of(exc: ValidationError, root: Any) -> list[Problem]:
    """Every problem of a failed validation of ``root`` (a model or an annotated type)."""
    raw = exc.errors(include_url=False)
    locs = [_walk(root, tuple(err["loc"]))[0] for err in raw]
    unknown: dict[DataPath, list[str]] = {}
    for err, loc in zip(raw, locs, strict=True):
        if err["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
    out: list[Problem] = []
    for err, loc in zip(raw, locs, strict=True):
        ctx = err.get("ctx") or {}
        if err["type"] == "missing" and difflib.get_close_matches(
            str(loc[-1]), unknown.get(loc[:-1], []), n=1
        ):
            continue  # a misspelt key: reported once, as unknown with a suggestion
        if err["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other in locs
        ):
            continue  # a list whose items failed is "too short" only as a consequence
        if err["type"] == "rig_problems":
            out += [((*loc, *at), msg, True) for at, msg in ctx["problems"]]
        elif err["type"] == "rig":
            out.append(((*loc, *ctx["at"]), ctx["message"], True))
        else:
            out.append((loc, _message(err, root, loc), err["type"] == "missing"))
    return out
