"""``rig check | schema | boards | stations``: the configs, checked and listed."""

from __future__ import annotations

import json

import click

from rig.cli.common import command, listing_options, load_station, options, output_format
from rig.cli.render.tables import Col, emit_rows
from rig.cli.schemas import OUTPUTS, output_schema

__all__ = ["COMMANDS"]


@command("check")
@click.argument("files", nargs=-1, type=click.Path(exists=True))
def check_command(files):
    """Validate board and station files (default: every shipped config)."""
    from rig import config

    errors = config.check_files(files or None)
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        raise SystemExit(2)
    click.echo(f"ok: {', '.join(files) if files else 'all shipped configs'}")


@command("schema")
@click.option(
    "--output",
    "output_name",
    type=click.Choice(sorted(OUTPUTS)),
    help="The schema of a command's --json output instead (report: identify, dump, erase, "
    "write, verify, restore, cycle, demo).",
)
def schema_command(output_name):
    """Print the JSON Schema of board and station files (for editor completion), or of a
    command's --json output."""
    from rig import config

    schema = output_schema(output_name) if output_name else config.json_schema()
    click.echo(json.dumps(schema, indent=2))


BOARD_COLS = (
    Col("name", "board", kind="id"),
    Col("chip", kind="id", drop=3),
    Col("flash_size", "flash", kind="num", show=lambda n: f"{n >> 20} MB"),
    Col("modem_lines", "DTR/RTS", drop=4),
    Col("relays"),
    Col("firmware"),
    Col("description", drop=5),
)


@command("boards")
@options(listing_options)
def boards_command(station_path, as_json, fmt):
    """List the board types."""
    station = load_station(station_path)
    rows = [
        {
            "name": board.name,
            "chip": board.chip,
            "flash_size": board.flash_size,
            "modem_lines": board.serial.modem_lines,
            "relays": list(board.relays),
            "firmware": [fw.name for fw in board.firmware],
            "description": board.description,
        }
        for board in sorted(station.boards.values(), key=lambda b: b.name)
    ]
    emit_rows(station, "boards", "board types", BOARD_COLS, rows, output_format(as_json, fmt))


SLOT_COLS = (
    Col("slot", kind="id"),
    Col("board", kind="id"),
    Col("expected_mac", "expected MAC", kind="id"),
    Col("port"),
    Col("relays", drop=1),
)


@command("stations")
@options(listing_options)
def stations_command(station_path, as_json, fmt):
    """List the slots of the current station."""
    station = load_station(station_path)
    rows = []
    for slot in station.slots:
        if slot.simulated is not None:
            port = f"simulated {slot.simulated.variant}"
        else:
            port = slot.port or slot.remote or f"usb-serial {slot.usb_serial}"
        relays = [
            f"{role}={ch.pin}{' low' if ch.active_low else ' high'}"
            for role, ch in slot.relays.items()
        ]
        rows.append(
            {
                "slot": slot.id,
                "board": slot.board,
                "port": port,
                "relays": relays,
                "expected_mac": slot.expected_mac or "",
                "simulated": slot.simulated is not None,
            }
        )
    title = f"slots of station {station.name}"
    emit_rows(station, "slots", title, SLOT_COLS, rows, output_format(as_json, fmt))


COMMANDS = [check_command, schema_command, boards_command, stations_command]
