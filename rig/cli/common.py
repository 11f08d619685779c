"""What every ``rig`` command shares: the exit codes, common options, station loading, the slot
of a one-slot command (checked by :mod:`rig.operations.selection`).

Exit codes, in one place (:class:`RigCommand`): 0 ok; 2 for :class:`rig.errors.BadInput` (bad
input or config: nothing was touched), printed as ``error: ...``; 1 for
:class:`rig.errors.OperationError` (an operation on a board failed), printed as ``failed: ...``.
Every command is made with :func:`command`, so a standalone one (``python -m rig.cli.batch``)
maps them the same way.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from rig.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, OperationError

if TYPE_CHECKING:  # the config (pydantic) is imported when a command loads a station
    from rig import config
    from rig.board.station import LiveSlot
    from rig.operations.backups import BackupStore
    from rig.operations.selection import Selection

__all__ = [
    "RigCommand",
    "backup_options",
    "checked_backup_store",
    "command",
    "json_option",
    "live_slot",
    "load_station",
    "one_slot_of",
    "listing_options",
    "options",
    "output_format",
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
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "table", "plain", "tsv", "json"]),
    default="auto",
    show_default=True,
    help="table (rich, sized to the terminal), plain (aligned text, no box drawing), tsv, json "
    "(as --json); auto: table on a terminal, plain when piped.",
)
# The options of a command that lists rows (rig.cli.render.tables.emit_rows).
listing_options = [station_option, json_option, format_option]


def output_format(as_json: bool, fmt: str) -> str:
    """``--json`` is ``--format json``."""
    return "json" if as_json else fmt


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


def checked_backup_store(station: config.Station, mode: str, force: bool) -> BackupStore:
    """The station's backup store, once the policy (``skip`` needs ``force``) and the store
    (writable) were checked: bad input, exit 2, before anything is touched."""
    from rig.operations.backups import BackupStore
    from rig.operations.safeguards import prepare_backups

    store = BackupStore(station.backups)
    prepare_backups(store, mode, force)
    return store


def one_slot_of(station_path: str | None, board_name: str | None, slot_id: str | None) -> Selection:
    """The station and the one slot of a one-slot command (``--board`` / ``--slot``), checked
    by :func:`rig.operations.selection.one_slot`; nothing opened yet."""
    from rig.operations.selection import one_slot

    return one_slot(load_station(station_path), board=board_name, slot=slot_id)


@contextlib.contextmanager
def live_slot(selection: Selection) -> Iterator[LiveSlot]:
    """The selection's slot, opened (locked) with the safety net installed; a busy slot is
    :class:`~rig.hardware.locks.SlotBusy`, an operation failure (exit 1)."""
    from rig.board.station import LiveStation
    from rig.hardware.safety import install_safety_net

    install_safety_net()
    with LiveStation(selection.station) as station:
        yield station.open_slot(selection.slot.id)
