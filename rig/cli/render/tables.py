"""Rows for people and for machines, readable at any width.

A command hands over rows of plain values (the same dicts its ``--json`` prints) and the
:class:`Col` of each; :func:`emit_rows` shows them as

* ``table``: a rich table sized to the terminal. Identifiers (MAC, slot, backup id, a sha256
  prefix) and numbers never wrap and are never elided; free text folds. When the identifiers do
  not fit, the columns a command marked droppable go first (a caption names them); when they
  still do not, each row becomes a block of ``header  value`` lines - never an identifier cut
  to "…".
* ``plain``: aligned text, no box drawing, nothing cut (a pipe, a file, a log);
* ``tsv``: a header of the JSON keys, then one tab-separated line per row of the JSON values
  (full hashes, bytes, ISO times: ``cut``, ``awk``);
* ``json``: ``{"station": ..., "simulated": ..., <key>: [rows]}``.

``auto`` (the default) is ``table`` on a terminal and ``plain`` anywhere else.

Every station command's first line names the station and says whether its boards are simulated
(:func:`station_line`; ``--json`` carries the same as :func:`station_fields`).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rig import config

__all__ = [
    "FORMATS",
    "Col",
    "cell",
    "emit_rows",
    "print_rows",
    "say_station",
    "station_fields",
    "station_line",
]

FORMATS = ("auto", "table", "plain", "tsv", "json")
_TEXT_MIN = 12  # the narrowest a folding text column gets before droppable columns go
# A rich table's overhead: one space of padding on each side of a cell, a rule between columns
# and at both edges.
_PAD, _RULE = 2, 1


@dataclass(frozen=True)
class Col:
    """A column: the row's ``key``, its header, its kind (``id`` and ``num`` never wrap, ``text``
    folds) and, for a droppable column, its rank (higher goes first when the terminal is too
    narrow; 0: always shown). ``show`` turns the JSON value into the cell text, ``style`` into
    its colour on a terminal."""

    key: str
    header: str = ""
    kind: str = "text"
    drop: int = 0
    show: Callable[[Any], str] | None = None
    style: Callable[[Any], str] | None = None  # a rich style for the value (tables only)

    @property
    def title(self) -> str:
        return self.header or self.key

    def text(self, value: Any) -> str:
        return self.show(value) if self.show is not None else cell(value)


def cell(value: Any) -> str:
    """A JSON value as one line of text."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value) or "-"
    return " ".join(str(value).split())


def station_fields(station: config.Station) -> dict[str, Any]:
    """What every command's ``--json`` says of the station it ran on."""
    return {"station": station.name, "simulated": station.simulated}


def station_line(station: config.Station) -> str:
    """The first line of every command on a station: its name, and whether it is simulated."""
    where = f" ({station.source})" if station.source else ""
    simulated = station.simulated_slots
    if not simulated:
        return f"station {station.name}{where}"
    if len(simulated) == len(station.slots):
        what = "SIMULATED boards, no real hardware"
    else:
        what = f"SIMULATED slots {', '.join(simulated)}"
    return f"station {station.name}: {what}{where}"


def say_station(station: config.Station, fmt: str) -> None:
    """The station line: first on stdout for people, on stderr when stdout is TSV, not at all
    for JSON (which carries :func:`station_fields`)."""
    if fmt != "json":
        click.echo(station_line(station), err=fmt == "tsv")


def emit_rows(
    station: config.Station,
    key: str,
    title: str,
    cols: Sequence[Col],
    rows: list[dict[str, Any]],
    fmt: str,
    *,
    empty: str = "",
) -> None:
    """The station line, then ``rows`` as ``fmt`` (see the module docstring). ``empty``: what
    people read instead of an empty table."""
    if fmt == "json":
        click.echo(json.dumps({**station_fields(station), key: rows}, indent=2))
        return
    say_station(station, fmt)
    if not rows and empty and fmt != "tsv":
        click.echo(empty)
        return
    print_rows(title, cols, rows, fmt)


def print_rows(title: str, cols: Sequence[Col], rows: list[dict[str, Any]], fmt: str) -> None:
    """``rows`` as a table, plain text or TSV (``fmt``: ``auto`` picks table or plain)."""
    if fmt == "tsv":
        click.echo("\t".join(c.key for c in cols))
        for row in rows:
            click.echo("\t".join(cell(row.get(c.key)).replace("\t", " ") for c in cols))
        return
    console = Console()
    if fmt == "plain" or (fmt == "auto" and not console.is_terminal):
        click.echo(plain_text(title, cols, rows))
    elif fitting(cols, rows, console.width) is None:
        click.echo(records(title, cols, rows, console.width))
    else:
        console.print(rich_table(title, cols, rows, console.width))


def records(title: str, cols: Sequence[Col], rows: list[dict[str, Any]], width: int) -> str:
    """One ``header  value`` line per column, a blank line between rows: for a terminal too
    narrow for the identifiers side by side (as ``psql``'s expanded display). Text wraps at
    ``width``; identifiers stay on one line."""
    key = max(len(c.title) for c in cols) + 2
    blocks = []
    for row in rows:
        lines = []
        for c in cols:
            text = c.text(row.get(c.key))
            if c.kind == "text":
                text = "\n".join(textwrap.wrap(text, max(width - key, 20))).replace(
                    "\n", "\n" + " " * key
                )
            lines.append(f"{c.title:<{key}}{text}")
        blocks.append("\n".join(lines))
    return "\n\n".join(([title] if title else []) + blocks)


def plain_text(title: str, cols: Sequence[Col], rows: list[dict[str, Any]]) -> str:
    """Aligned columns, two spaces apart, nothing cut; numbers right-aligned."""
    cells = [[c.title for c in cols]] + [[c.text(row.get(c.key)) for c in cols] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    lines = [title] if title else []
    for line in cells:
        padded = [
            text.rjust(w) if c.kind == "num" else text.ljust(w)
            for c, text, w in zip(cols, line, widths, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def fitting(cols: Sequence[Col], rows: list[dict[str, Any]], width: int) -> list[Col] | None:
    """The columns that fit ``width`` with every identifier and number whole: droppable ones go,
    highest rank first, until they do (the rest fold their text); None if even that is too
    wide (:func:`records` then shows one row per block)."""
    kept = list(cols)

    def need(c: Col) -> int:
        longest = max([len(c.title)] + [len(c.text(r.get(c.key))) for r in rows])
        return (longest if c.kind != "text" else min(longest, _TEXT_MIN)) + _PAD + _RULE

    while sum(map(need, kept)) + _RULE > width:
        droppable = [c for c in kept if c.drop]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda c: c.drop))
    return kept if sum(map(need, kept)) + _RULE <= width else None


def rich_table(title: str, cols: Sequence[Col], rows: list[dict[str, Any]], width: int) -> Table:
    kept = fitting(cols, rows, width) or list(cols)
    hidden = [c.title for c in cols if c not in kept]
    caption = (
        f"not shown at {width} columns: {', '.join(hidden)} (--format plain shows every column)"
        if hidden
        else None
    )
    table = Table(title=Text(title) if title else None, caption=caption)
    for c in kept:
        whole = c.kind != "text"
        table.add_column(
            c.title,
            justify="right" if c.kind == "num" else "left",
            no_wrap=whole,
            overflow="ellipsis" if whole else "fold",
        )
    for row in rows:
        table.add_row(*(_styled(c, row.get(c.key)) for c in kept))
    return table


def _styled(col: Col, value: Any) -> Text:
    """The cell as rich text, never parsed as markup (a console regex has brackets)."""
    return Text(col.text(value), style=col.style(value) if col.style is not None else "")
