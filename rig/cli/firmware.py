"""``rig firmware add | list | show``: the station's catalog (:mod:`rig.operations.catalog`).

``add`` imports a user's file (an app for 0x10000 as the Arduino IDE exports it, a
bootloader, a partition table, a merged image, an ESP-IDF build's ``flasher_args.json``) into
the station's firmware directory, checked like esptool's ``image-info`` and against the board
type, its sha256 pinned. ``list`` shows every entry and whether its files are still there and
unchanged; ``show`` one entry, part by part, as the rig will check it before writing it.
"""

from __future__ import annotations

import json
import re

import click
from rich.console import Console
from rich.table import Table

from rig.cli.common import (
    RigCommand,
    json_option,
    listing_options,
    load_station,
    options,
    output_format,
    station_option,
)
from rig.cli.render.tables import Col, emit_rows, station_fields, station_line
from rig.errors import BadInput

__all__ = ["COMMANDS"]


@click.group("firmware")
def firmware_group():
    """The station's firmware catalog: add a file, list the entries, show one."""


@firmware_group.command("add", cls=RigCommand)
@station_option
@json_option
@click.argument("files", nargs=-1, required=True)
@click.option("--name", help="Catalog name (default: the app file's name without .bin).")
@click.option("--offset", help="Flash offset of a single FILE (default: from what it is).")
@click.option("--board", "board_name", help="Board type (default: the station's first slot's).")
@click.option("--console", help="Regex its console shows once booted (default: the default check).")
def add_command(station_path, as_json, files, name, offset, board_name, console):
    """Import FILES (FILE, FILE@OFFSET or flasher_args.json) as one catalog firmware."""
    from rig.operations.catalog import import_firmware

    _check_regex(console)
    station = load_station(station_path)
    fw = import_firmware(
        station, files, name=name, offset=offset, board=board_name, console=console
    )
    if as_json:
        click.echo(json.dumps({**station_fields(station), **_row(fw)}, indent=2))
        return
    click.echo(station_line(station))
    check = f"console {fw.console!r}" if fw.console else "the default boot check"
    click.echo(
        f"added {fw.name} for board type {fw.board}: {fw.describe()} (sha256 {fw.sha256}), "
        f"checked with {check}; catalog {fw.source}"
    )


def _check_regex(console: str | None) -> None:
    if console is not None:
        try:
            re.compile(console)
        except re.error as err:
            raise BadInput(f"--console is not a valid regular expression: {err}") from None


def _row(fw) -> dict:
    return {
        "name": fw.name,
        "board": fw.board,
        "parts": [f"{p.file.name}@{p.offset:#x}" for p in fw.parts],
        "sha256": fw.sha256,
        "console": fw.console or "default check",
        "files": "; ".join(filter(None, (p.problem() for p in fw.parts))) or "ok",
        "catalog": str(fw.source),
    }


FIRMWARE_COLS = (
    Col("name", kind="id"),
    Col("board", kind="id"),
    Col("sha256", kind="id", drop=1, show=lambda h: h[:16]),
    Col("parts"),
    Col("console", drop=2),
    Col("files"),
)


@firmware_group.command("list", cls=RigCommand)
@options(listing_options)
@click.option("--board", "board_name", help="Only this board type's entries.")
def list_command(station_path, as_json, fmt, board_name):
    """The station's catalog entries and whether their files are there and unchanged."""
    station = load_station(station_path)
    rows = [_row(fw) for fw in station.catalog if board_name in (None, fw.board)]
    dirs = ", ".join(str(d) for d in station.firmware_dirs)
    emit_rows(
        station,
        "firmware",
        f"firmware of station {station.name} ({dirs})",
        FIRMWARE_COLS,
        rows,
        output_format(as_json, fmt),
        empty=f"no firmware in the catalogs of station {station.name} ({dirs})",
    )


@firmware_group.command("show", cls=RigCommand)
@station_option
@json_option
@click.argument("name")
def show_command(station_path, as_json, name):
    """One entry, part by part: file, sha256, the ESP images it holds (as esptool's image-info
    shows them) and where they land; exit 2 if the rig would refuse to write it."""
    from rig.operations.catalog import describe_entry

    station = load_station(station_path)
    fw = next((f for f in station.catalog if f.name == name), None)
    if fw is None:
        known = ", ".join(f.name for f in station.catalog) or "none"
        raise BadInput(f"no firmware {name!r} in the catalog of station {station.name} ({known})")
    parts = describe_entry(fw, station.boards.get(fw.board) or _board_of(fw))
    problems = [p.status for p in parts if p.status != "ok"] + [
        problem for p in parts for problem in p.problems
    ]
    if as_json:
        data = {**_row(fw), "parts": [p.as_dict() for p in parts], "problems": problems}
        click.echo(json.dumps({**station_fields(station), **data}, indent=2))
    else:
        click.echo(station_line(station))
        _print_entry(fw, parts, problems)
    if problems:
        raise SystemExit(2)


def _board_of(fw):
    """The board type of an entry whose board has no slot in this station."""
    from rig import config

    return config.load_boards(config.board_dirs_for(fw.source))[fw.board]


def _print_entry(fw, parts, problems) -> None:
    console = Console()
    console.print(
        f"[bold]{fw.name}[/] for board type {fw.board} ({fw.source}); boot check: "
        + (f"console {fw.console!r}" if fw.console else "the default check")
    )
    for part in parts:
        console.print(f"{part.file} @ {part.offset:#x}: sha256 {part.sha256} ({part.status})")
        for image in part.images:
            table = Table(
                title=f"{image['kind']} at {image['address']:#x}"
                + (f" (partition {image['partition']})" if image["partition"] else "")
            )
            table.add_column("field", no_wrap=True)
            table.add_column("value")
            for key, value in image.get("header", {}).items():
                table.add_row(key, str(value))
            for key, value in image.get("app", {}).items():
                table.add_row(f"app {key}", str(value))
            for n, seg in enumerate(image.get("segments", ())):
                table.add_row(f"segment {n}", f"{seg['addr']} {seg['length']} bytes {seg['map']}")
            console.print(table)
    for problem in problems:
        console.print(f"[red]problem[/]: {problem}")
    if not problems:
        console.print("ok: the rig would write it")


COMMANDS = [firmware_group]
