"""``rig check | schema | boards | stations``: the configs, checked and listed."""

from __future__ import annotations

import json

import click

from rig.cli.common import command, json_option, load_station, print_rows, station_option

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
def schema_command():
    """Print the JSON Schema of board and station files (for editor completion)."""
    from rig import config

    click.echo(json.dumps(config.json_schema(), indent=2))


@command("boards")
@station_option
@json_option
def boards_command(station_path, as_json):
    """List the board types."""
    station = load_station(station_path)
    rows = [
        {
            "name": board.name,
            "chip": board.chip,
            "flash": f"{board.flash_size // 0x100000}MB",
            "modem_lines": board.serial.modem_lines,
            "relays": list(board.relays),
            "firmware": [fw.name for fw in board.firmware],
            "description": board.description,
        }
        for board in sorted(station.boards.values(), key=lambda b: b.name)
    ]
    print_rows("board types", rows, as_json)


@command("stations")
@station_option
@json_option
def stations_command(station_path, as_json):
    """List the slots of the current station."""
    station = load_station(station_path)
    rows = []
    for slot in station.slots:
        if slot.simulated is not None:
            port = f"simulated {slot.simulated.variant}"
        else:
            port = slot.port or f"usb-serial {slot.usb_serial}"
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
            }
        )
    print_rows(f"station {station.name} ({station.source or 'embedded'})", rows, as_json)


COMMANDS = [check_command, schema_command, boards_command, stations_command]
