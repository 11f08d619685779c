"""What every ``rig`` command shares: exit-code exceptions, common options, station loading.

Exit codes: 0 ok, 1 an operation failed, 2 bad input or config (nothing was touched).
"""

from __future__ import annotations

import json

import click
from rich.console import Console


class BadInput(click.ClickException):
    """Bad input or config: one clear message, exit 2, nothing touched."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class OperationFailed(click.ClickException):
    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"failed: {self.format_message()}", err=True)


station_option = click.option(
    "--station",
    "station_path",
    type=click.Path(dir_okay=False),
    envvar="RIG_STATION",
    help="Station file (env RIG_STATION; default: the embedded simulated station).",
)


def load_station(station_path: str | None):
    from . import config

    try:
        return config.station_from_env(station_path)
    except config.ConfigError as err:
        raise BadInput(err.report() if hasattr(err, "report") else str(err)) from err


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")

# The backup policy of every command that can destroy flash (or let a client destroy it).
backup_options = [
    click.option(
        "--backup",
        "backup_mode",
        type=click.Choice(["auto", "require", "skip"]),
        default="auto",
        show_default=True,
        help="auto: reuse a verified backup of this MAC only if it matches the chip (whole-flash "
        "MD5), else take one; require: refuse without a matching one; skip: no backup (needs "
        "--force).",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Allow destroying flash without a backup (--backup skip), and erasing a chip with "
        "flash encryption or secure boot enabled.",
    ),
]


def checked_backup_store(station, mode: str, force: bool):
    """The station's backup store, once the policy (``skip`` needs ``force``) and the store
    (writable) were checked: bad input, exit 2, before anything is touched."""
    from .errors import BadInput as OpBadInput
    from .operations.backups import BackupStore
    from .operations.safeguards import prepare_backups

    store = BackupStore(station.backups)
    try:
        prepare_backups(store, mode, force)
    except OpBadInput as err:
        raise BadInput(str(err)) from err
    return store


def print_rows(title: str, rows: list[dict], as_json: bool) -> None:
    """One table for people, the same rows as JSON for machines."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(rows[0] if rows else ()):
        table.add_column(column, no_wrap=i == 0)
    for row in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
    Console().print(table)


def pick_slot(cfg, slot_id: str | None) -> str:
    ids = [s.id for s in cfg.slots]
    if slot_id is None:
        if len(ids) != 1:
            raise BadInput(
                f"station {cfg.name} has several slots; pick one with --slot ({', '.join(ids)})"
            )
        return ids[0]
    if slot_id not in ids:
        raise BadInput(f"no slot {slot_id!r} in station {cfg.name} (slots: {', '.join(ids)})")
    return slot_id
