"""What every ``rig`` command shares: the exit codes, common options, station loading, the slot
of a one-slot command.

Exit codes, in one place (:class:`RigCommand`): 0 ok; 2 for :class:`rig.errors.BadInput` (bad
input or config: nothing was touched), printed as ``error: ...``; 1 for
:class:`rig.errors.OperationError` (an operation on a board failed), printed as ``failed: ...``.
Every command is made with :func:`command`, so a standalone one (``python -m rig.cli.batch``)
maps them the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from rig.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, OperationError

if TYPE_CHECKING:  # the config (pydantic) is imported when a command loads a station
    from rig import config

__all__ = [
    "Context",
    "RigCommand",
    "backup_options",
    "checked_backup_store",
    "command",
    "json_option",
    "load_station",
    "options",
    "pick_slot",
    "print_rows",
    "slot_options",
    "station_option",
]


class _Exit(click.ClickException):
    """How click shows a rig error: ``<prefix>: <message>`` on stderr, then the exit code."""

    def __init__(self, err: Exception, prefix: str, exit_code: int) -> None:
        super().__init__(str(err))
        self.prefix = prefix
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.prefix}: {self.format_message()}", err=True)


class RigCommand(click.Command):
    """A click command that maps the two branches of :mod:`rig.errors` to exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BadInput as err:
            raise _Exit(err, "error", EXIT_BAD_INPUT) from err
        except OperationError as err:
            raise _Exit(err, "failed", EXIT_FAILED) from err


command = functools.partial(click.command, cls=RigCommand)

station_option = click.option(
    "--station",
    "station_path",
    type=click.Path(dir_okay=False),
    envvar="RIG_STATION",
    help="Station file (env RIG_STATION; default: the embedded simulated station).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
slot_options = [
    station_option,
    click.option("--board", "board_name", help="Board type (picks its first slot)."),
    click.option("--slot", "slot_id", help="Slot id (see `rig stations`)."),
    json_option,
]
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


def options(*groups):
    def decorate(fn):
        for group in reversed(groups):
            for option in reversed(group):
                fn = option(fn)
        return fn

    return decorate


def load_station(station_path: str | None) -> config.Station:
    from rig import config

    try:
        return config.station_from_env(station_path)
    except config.ConfigError as err:
        raise BadInput(err.report() if hasattr(err, "report") else str(err)) from err


def checked_backup_store(station: config.Station, mode: str, force: bool):
    """The station's backup store, once the policy (``skip`` needs ``force``) and the store
    (writable) were checked: bad input, exit 2, before anything is touched."""
    from rig.operations.backups import BackupStore
    from rig.operations.safeguards import prepare_backups

    store = BackupStore(station.backups)
    prepare_backups(store, mode, force)
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


def pick_slot(cfg: config.Station, slot_id: str | None) -> str:
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


class Context:
    """The resolved station, slot and board type of one command (nothing opened yet)."""

    def __init__(self, station_path, board_name, slot_id) -> None:
        self.station = load_station(station_path)
        ids = [s.id for s in self.station.slots]
        if slot_id is not None:
            if slot_id not in ids:
                raise BadInput(
                    f"no slot {slot_id!r} in station {self.station.name} ({', '.join(ids)})"
                )
            slot = self.station.slot(slot_id)
            if board_name and slot.board != board_name:
                raise BadInput(f"slot {slot_id} holds a {slot.board}, not a {board_name}")
        elif board_name is not None:
            if board_name not in self.station.boards:
                known = ", ".join(sorted(self.station.boards))
                raise BadInput(f"unknown board type {board_name!r} (known: {known})")
            matching = [s for s in self.station.slots if s.board == board_name]
            if not matching:
                raise BadInput(f"station {self.station.name} has no {board_name} slot")
            slot = matching[0]
        elif len(ids) == 1:
            slot = self.station.slots[0]
        else:
            raise BadInput(f"name a --slot or a --board ({', '.join(ids)})")
        self.slot = slot
        self.board_type = self.station.board_of(slot)

    def store(self):
        from rig.operations.backups import BackupStore

        return BackupStore(self.station.backups)

    def meta(self) -> dict:
        return {"station": self.station.name, "slot": self.slot.id, "board_type": self.slot.board}

    @contextlib.contextmanager
    def live_slot(self) -> Iterator:
        """The slot, opened (locked) with the safety net installed; a busy slot is
        :class:`~rig.hardware.locks.SlotBusy`, an operation failure (exit 1)."""
        from rig.board.station import LiveStation
        from rig.hardware.safety import install_safety_net

        install_safety_net()
        with LiveStation(self.station) as station:
            yield station.open_slot(self.slot.id)
