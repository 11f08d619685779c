"""A YAML reader for config files that remembers where every value came from.

Built on PyYAML's safe composer (no object construction, no custom tags), with three changes
from ``yaml.safe_load``:

* **YAML 1.2 core scalars.** Only ``true``/``false`` are booleans, so a bare ``off:`` key or
  ``active_low: no`` stays the string it looks like (YAML 1.1's bool table turned ``off`` into
  ``False``). Integers are decimal, ``0x..`` hex or ``0o..`` octal; no sexagesimal ``1:30``, no
  timestamps, no ``<<`` merge keys.
* **Duplicate keys are errors**, reported at the second key.
* **Positions.** :attr:`Document.positions` maps every data path (a tuple of mapping keys and
  sequence indices, ``("slots", 0, "relays", "io0")``) to the 1-based ``(line, col)`` of the
  mapping key, or of the sequence item, so a validation error on any value can point at it.

Errors are :class:`YamlError` with a 1-based line and column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rig.errors import BadInput

__all__ = ["Document", "DataPath", "YamlError", "format_path", "load_yaml"]

DataPath = tuple[Any, ...]  # a data path: mapping keys and sequence indices

_TAG = "tag:yaml.org,2002:"


class YamlError(BadInput):
    """A YAML problem at a 1-based ``line``/``col``; ``where`` is the data path (may be empty)."""

    def __init__(self, line: int, col: int, message: str, where: DataPath = ()) -> None:
        super().__init__(f"{line}:{col}: {message}")
        self.line = line
        self.col = col
        self.message = message
        self.where = where


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit resolvers instead of YAML 1.1's."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(_regexp), list(_first))


@dataclass(frozen=True)
class Document:
    """Plain data (dict / list / str / int / float / bool / None) and where each part sits."""

    data: Any
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: DataPath) -> tuple[int, int]:
        """The position of ``path``, or of its longest prefix present in the file."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def existing(self, path: DataPath) -> DataPath:
        """The longest prefix of ``path`` that exists in the data."""
        node, out = self.data, []
        for part in path:
            in_map = isinstance(node, dict) and _hashable(part) and part in node
            in_list = isinstance(node, list) and type(part) is int and 0 <= part < len(node)
            if not (in_map or in_list):
                break
            node = node[part]
            out.append(part)
        return tuple(out)


def format_path(path: DataPath) -> str:
    """``("slots", 0, "relays", "io0", "pin")`` -> ``slots[0].relays.io0.pin``."""
    out = ""
    for part in path:
        if type(part) is int:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _where_in(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def load_yaml(text: str) -> Document:
    """Parse one YAML document; raise :class:`YamlError` on syntax errors and duplicate keys."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if err.context and err.problem and err.context_mark is not None:
            problem += f" ({err.context} at line {err.context_mark.line + 1})"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlError(line, col, f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as err:  # a control character or a bad code point
        line, col = _where_in(text, err.position)
        raise YamlError(
            line, col, f"YAML syntax error: unacceptable character {err.character!r}"
        ) from None
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error above carries a mark
        raise YamlError(1, 1, f"YAML syntax error: {err}") from None
    doc = Document(None)
    if root is None:
        return doc
    doc.positions[()] = _pos(root)
    object.__setattr__(doc, "data", _convert(root, (), doc.positions, set()))
    return doc


def _convert(node: Node, path: DataPath, positions: dict, active: set[int]) -> Any:
    if isinstance(node, ScalarNode):
        return _scalar(node, path)
    if id(node) in active:
        raise YamlError(*_pos(node), "recursive alias", path)
    active.add(id(node))
    try:
        if isinstance(node, SequenceNode):
            _check_tag(node, "seq", path)
            items = []
            for index, item in enumerate(node.value):
                positions[(*path, index)] = _pos(item)
                items.append(_convert(item, (*path, index), positions, active))
            return items
        if isinstance(node, MappingNode):
            _check_tag(node, "map", path)
            mapping: dict[Any, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise YamlError(*_pos(key_node), "a key must be a plain value", path)
                if key_node.tag == _TAG + "merge" or (
                    key_node.value == "<<" and key_node.style is None
                ):
                    raise YamlError(
                        *_pos(key_node), "YAML merge keys (<<) are not supported; repeat the keys"
                    )
                key = _scalar(key_node, path)
                line, col = _pos(key_node)
                if key in mapping:
                    raise YamlError(
                        line,
                        col,
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                        (*path, key),
                    )
                first_line[key] = line
                positions[(*path, key)] = (line, col)
                mapping[key] = _convert(value_node, (*path, key), positions, active)
            return mapping
        raise YamlError(*_pos(node), f"unsupported YAML node {node.id}", path)  # pragma: no cover
    finally:
        active.discard(id(node))


def _check_tag(node: Node, kind: str, path: DataPath) -> None:
    if node.tag != _TAG + kind:
        raise YamlError(*_pos(node), f"unsupported YAML tag {node.tag}", path)


def _scalar(node: ScalarNode, path: DataPath) -> Any:
    tag, text = node.tag, node.value
    try:
        if tag == _TAG + "str":
            return text
        if tag == _TAG + "null":
            if text not in ("", "~", "null", "Null", "NULL"):
                raise ValueError
            return None
        if tag == _TAG + "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if tag == _TAG + "int":
            if text.startswith("0x"):
                return int(text[2:], 16)
            if text.startswith("0o"):
                return int(text[2:], 8)
            if not re.fullmatch(r"[-+]?[0-9]+", text):
                raise ValueError
            return int(text)
        if tag == _TAG + "float":
            lowered = text.lower().lstrip("+")
            if lowered in (".inf", "-.inf"):
                return -math.inf if lowered.startswith("-") else math.inf
            if lowered == ".nan":
                return math.nan
            return float(text)
    except ValueError:
        raise YamlError(*_pos(node), f"{text!r} is not a valid {tag[len(_TAG) :]}", path) from None
    raise YamlError(*_pos(node), f"unsupported YAML tag {tag}", path)
