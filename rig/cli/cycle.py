"""``rig cycle`` and ``rig demo``: the scripted cycle on a slot (:mod:`rig.operations.cycle`),
and the same on the embedded simulated station's L7X."""

from __future__ import annotations

import click
from rich.console import Console

from rig.cli.common import (
    Context,
    backup_options,
    checked_backup_store,
    command,
    json_option,
    options,
    slot_options,
)
from rig.cli.ops import resolve, run_live
from rig.cli.render import finish
from rig.errors import BadInput

__all__ = ["COMMANDS", "cycle_live"]


@command("cycle")
@options(slot_options, backup_options)
@click.option(
    "--firmware",
    "firmware_name",
    help="Catalog firmware to write (default: the "
    "last catalog entry, i.e. the replacement firmware).",
)
@click.option("--keep", is_flag=True, help="Keep the new firmware (skip the restore).")
def cycle_command(
    station_path, board_name, slot_id, as_json, backup_mode, force, firmware_name, keep
):
    """identify -> backup -> erase -> write -> verify -> boot check -> restore -> verify ->
    boot check, each step timed and reported."""
    ctx = Context(station_path, board_name, slot_id)
    catalog = ctx.board_type.firmware
    if not catalog:
        raise BadInput(f"board type {ctx.board_type.name} has no firmware catalog")
    name = firmware_name or catalog[-1].name
    images = resolve([name], ctx)
    pattern = ctx.board_type.firmware_named(name).console
    store = checked_backup_store(ctx.station, backup_mode, force)
    if keep is False and backup_mode == "skip":
        raise BadInput("a cycle without a backup has nothing to restore: use --keep")
    report = cycle_live(
        ctx,
        as_json,
        store,
        images,
        console_pattern=pattern,
        keep=keep,
        backup_mode=backup_mode,
        force=force,
    )
    finish(report, as_json)


def cycle_live(ctx: Context, as_json: bool, store, images, **options):
    """:func:`rig.operations.cycle.run_cycle` on the slot (``options``: its keywords); its
    report, which a stop signal prints before going on (:func:`run_live`)."""
    from rig.operations.cycle import run_cycle
    from rig.operations.report import Report

    report = Report("cycle", ctx.slot.id)

    def work(slot, progress) -> None:
        run_cycle(slot, store, images, meta=ctx.meta(), progress=progress, report=report, **options)

    run_live(ctx, report, as_json, work)
    return report


@command("demo")
@json_option
def demo_command(as_json):
    """The whole cycle on a simulated VG-L7X: back up the vendor flash, write the custom
    firmware, verify, boot it, restore the original, verify, boot it."""
    from rig import config

    ctx = Context(None, "l7x", None)
    ctx.station = config.default_station()  # always the simulated station
    name = ctx.board_type.firmware[-1].name
    images = resolve([name], ctx)
    store = ctx.store()
    store.check_writable()  # BackupError: an operation error
    console = Console(stderr=as_json)
    console.print(
        f"[bold]rig demo[/]: simulated Vigotech VG-L7X in slot {ctx.slot.id} (no DTR/RTS: the "
        f"relays strap IO0 and hold the power button); writing {name}, then restoring the "
        f"vendor firmware. Backups: {store.root}"
    )
    pattern = ctx.board_type.firmware_named(name).console
    report = cycle_live(ctx, as_json, store, images, console_pattern=pattern)
    if not as_json:
        for step in report.steps:
            if step.name.startswith("boot check") and step.data.get("console"):
                console.print(f"[bold]{step.name}[/]: the board's console ends with")
                for line in step.data["console"].splitlines()[-4:]:
                    console.print(f"  [dim]|[/] {line}")
    finish(report, as_json)


COMMANDS = [cycle_command, demo_command]
