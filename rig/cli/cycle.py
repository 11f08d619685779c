"""``rig cycle`` and ``rig demo``: the scripted cycle on a slot (:mod:`rig.operations.cycle`),
and the same on the embedded simulated station's L7X."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from rig.cli.common import (
    backup_options,
    checked_backup_store,
    command,
    json_option,
    load_station,
    options,
    slot_options,
)
from rig.cli.ops import resolve, run_live
from rig.cli.render import boot_consoles, finish
from rig.cli.render.tables import station_fields, station_line
from rig.errors import BadInput

if TYPE_CHECKING:
    from rig import config
    from rig.board.station import LiveSlot
    from rig.operations.backups import BackupStore
    from rig.operations.images import FlashImage
    from rig.operations.report import Report
    from rig.operations.selection import Selection
    from rig.operations.steps import PhaseProgress

__all__ = ["COMMANDS", "cycle_live"]


@command("cycle")
@options(slot_options, backup_options)
@click.option(
    "--firmware",
    "firmware_name",
    help="Catalog firmware (`rig firmware list`) or FILE@OFFSET to write (default: the last "
    "catalog entry of the board type, i.e. the replacement firmware).",
)
@click.option("--keep", is_flag=True, help="Keep the new firmware (skip the restore).")
def cycle_command(
    station_path, board_name, slot_id, as_json, backup_mode, force, firmware_name, keep
):
    """identify -> backup -> boot plan -> erase -> write -> verify -> boot check -> restore ->
    verify -> boot check, each step timed and reported."""
    from rig.operations.images import check_placement, layout_table

    sel = _cycle_slot(load_station(station_path), board_name, slot_id, firmware_name)
    board_type = sel.board_type()
    name = firmware_name or _default_firmware(board_type)
    images = resolve([name], sel)
    check_placement(images, layout_table(board_type) or None, force=force)
    entry = next((fw for fw in board_type.firmware if fw.name == name), None)
    store = checked_backup_store(sel.station, backup_mode, force)
    if keep is False and backup_mode == "skip":
        raise BadInput("a cycle without a backup has nothing to restore: use --keep")
    report = cycle_live(
        sel,
        as_json,
        store,
        images,
        console_pattern=entry.console if entry is not None else None,
        keep=keep,
        backup_mode=backup_mode,
        force=force,
    )
    finish(report, as_json)


def _cycle_slot(
    station: config.Station, board: str | None, slot: str | None, firmware: str | None
) -> Selection:
    """The cycle's slot: ``--slot`` / ``--board``, else the first slot of the board type a
    catalog ``--firmware`` is for."""
    from rig.operations.selection import one_slot

    entry = next((fw for fw in station.catalog if fw.name == firmware), None)
    if board is None and slot is None and entry is not None:
        board = entry.board
    return one_slot(station, board=board, slot=slot)


def _default_firmware(board_type: config.BoardType) -> str:
    if not board_type.firmware:
        raise BadInput(
            f"the station's catalog has no firmware for board type {board_type.name}: name one "
            "with --firmware NAME or FILE@OFFSET (`rig firmware add FILE` imports a file)"
        )
    return board_type.firmware[-1].name


def cycle_live(
    sel: Selection,
    as_json: bool,
    store: BackupStore,
    images: Sequence[FlashImage],
    *,
    announce: bool = True,
    **options: Any,
) -> Report:
    """:func:`rig.operations.cycle.run_cycle` on the slot (``options``: its keywords); its
    report, which a stop signal prints before going on (:func:`run_live`)."""
    from rig.operations.cycle import run_cycle
    from rig.operations.report import Report

    report = Report("cycle", sel.slot.id, **station_fields(sel.station))
    meta = sel.backup_meta()

    def work(slot: LiveSlot, progress: PhaseProgress | None) -> None:
        run_cycle(slot, store, images, meta=meta, progress=progress, report=report, **options)

    run_live(sel, report, as_json, work, announce=announce)
    return report


@command("demo")
@json_option
def demo_command(as_json):
    """The whole cycle on a simulated VG-L7X: back up the vendor flash, write the custom
    firmware, verify, boot it, restore the original, verify, boot it."""
    from rig import config
    from rig.operations.selection import one_slot

    sel = one_slot(config.default_station(), board="l7x")  # always the simulated station
    board_type = sel.board_type()
    name = board_type.firmware[-1].name
    images = resolve([name], sel)
    store = sel.store()
    store.check_writable()  # BackupError: an operation error
    console = Console(stderr=as_json)
    if not as_json:
        click.echo(station_line(sel.station))
    console.print(
        f"[bold]rig demo[/]: simulated Vigotech VG-L7X in slot {sel.slot.id} (no DTR/RTS: the "
        f"relays strap IO0 and hold the power button); writing {name}, then restoring the "
        f"vendor firmware. Backups: {store.root}"
    )
    pattern = board_type.firmware_named(name).console
    report = cycle_live(sel, as_json, store, images, console_pattern=pattern, announce=False)
    if not as_json:
        boot_consoles(report, console)
    finish(report, as_json)


COMMANDS = [cycle_command, demo_command]
