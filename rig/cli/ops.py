"""``rig identify | dump | erase | write | verify | restore | backups``.

Every command validates its input (images, backup policy, the backups directory, the slot)
before a relay moves, shows rich progress while it works, ends with a summary table (or the same
report as JSON with ``--json``) and exits 0 ok, 1 failed, 2 bad input.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import click

from rig.cli.common import (
    Context,
    backup_options,
    checked_backup_store,
    command,
    json_option,
    load_station,
    options,
    print_rows,
    slot_options,
    station_option,
)
from rig.cli.render import finish, progress_display
from rig.errors import BadInput, OperationError

__all__ = ["COMMANDS", "run_live", "run_op"]


def run_live(ctx: Context, report, as_json: bool, work) -> None:
    """Run ``work(slot, progress)`` on the open slot (progress bars unless ``as_json``).

    Ctrl-C or SIGTERM still end in ``report``, printed once the relays and the lock are released:
    ``report.error`` says what was interrupted and what state the flash is in (the work fills it
    in; else the step the signal came in). Then the signal goes on: click's exit for Ctrl-C,
    128 + signal for SIGTERM/SIGHUP (``Terminated``).
    """
    from rig.operations.safeguards import explain_interruption
    from rig.signals import Terminated

    try:
        with progress_display(as_json) as progress, ctx.live_slot() as slot:
            work(slot, progress)
    except (KeyboardInterrupt, Terminated) as stop:
        report.ok = False
        report.error = report.error or explain_interruption(stop, report, None, ctx.slot.id, None)
        with contextlib.suppress(SystemExit):
            finish(report, as_json)
        raise


def run_op(ctx: Context, name: str, as_json: bool, body, *, force_erase: bool = False) -> None:
    """Open the slot and a flasher session, run ``body(report, session, progress)``, report
    (an interrupted one too: :func:`run_live`)."""
    from rig.operations.report import Report
    from rig.operations.safeguards import explain_failure, explain_interruption
    from rig.operations.session import FlasherSession
    from rig.signals import Terminated

    report = Report(name, ctx.slot.id)

    def work(slot, progress) -> None:
        session = FlasherSession(
            slot.board, expected_mac=ctx.slot.expected_mac, force_erase=force_erase
        )
        try:
            with session:
                report.mac = session.identity.mac
                with report.step("identify") as step:
                    step.data = session.identity.as_dict()
                    step.detail = describe(session.identity)
                body(report, session, progress, slot)
            report.ok = True
        except (KeyboardInterrupt, Terminated) as stop:
            backup_id = report.data.get("backup_id")
            report.error = explain_interruption(
                stop, report, session.writing, ctx.slot.id, backup_id
            )
            raise
        except Exception as err:  # the report carries it; exit code 1
            backup_id = report.data.get("backup_id")
            report.error = explain_failure(err, ctx.slot.id, backup_id)

    run_live(ctx, report, as_json, work)
    finish(report, as_json)


def describe(ident) -> str:
    return (
        f"{ident.chip}, MAC {ident.mac}, flash {ident.manufacturer}/{ident.device} "
        f"{ident.size_text}, {ident.crystal_mhz} MHz crystal, {ident.baud} baud"
        + "".join(f", {feature} enabled" for feature in ident.security)
    )


def phase(progress, name):
    return (lambda done, total: progress(name, done, total)) if progress else None


def backup_step(report, session, store, mode, meta, progress):
    from rig.operations.safeguards import ensure_backup

    with report.step("backup") as step:
        check = ensure_backup(session, store, mode, meta, phase(progress, "backup"))
        report.data["backup_id"] = check.backup.id if check.backup else None
        step.data, step.detail = check.data, check.detail


def resolve(specs, ctx: Context):
    from rig.operations.images import resolve_images

    return resolve_images(list(specs), ctx.board_type)


# -- commands -------------------------------------------------------------------------------------
@command("identify")
@options(slot_options)
def identify_command(station_path, board_name, slot_id, as_json):
    """Enter download mode and report chip, revision, MAC, flash id and size, crystal; fails
    when the flash size is unknown or not the board type's (nothing could be dumped safely)."""
    ctx = Context(station_path, board_name, slot_id)

    def body(report, session, _progress, _slot):
        with report.step("flash size") as step:
            step.detail = f"{session.require_flash_size() >> 20} MB, as the board type says"

    run_op(ctx, "identify", as_json, body)


@command("dump")
@options(slot_options)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the dump to this file.",
)
def dump_command(station_path, board_name, slot_id, as_json, out):
    """Dump the whole flash into the backup store as a verified backup (never overwritten)."""
    from rig.operations.safeguards import take_backup

    ctx = Context(station_path, board_name, slot_id)
    store = checked_backup_store(ctx.station, "auto", False)
    if out is not None and not out.parent.is_dir():
        raise BadInput(f"--out: directory {out.parent} does not exist")

    def body(report, session, progress, _slot):
        with report.step("dump") as step:
            backup = take_backup(session, store, ctx.meta(), phase(progress, "dump"))
            step.data = {
                "id": backup.id,
                "path": str(backup.path),
                "sha256": backup.sha256,
                "seconds": backup.meta["seconds"],
            }
            rate = backup.size / max(backup.meta["seconds"], 1e-9) / 1024
            step.detail = f"{backup.id} ({backup.size} B, {rate:.0f} KiB/s, chip MD5 verified)"
            if out is not None:
                shutil.copyfile(backup.path, out)

    run_op(ctx, "dump", as_json, body)


@command("erase")
@options(slot_options, backup_options)
@click.option(
    "--region",
    nargs=2,
    type=str,
    metavar="OFFSET SIZE",
    help="Erase only this region (4 KB aligned).",
)
def erase_command(station_path, board_name, slot_id, as_json, backup_mode, force, region):
    """Erase the whole flash (or a region), after making sure a verified backup exists."""
    from rig.esp32 import SECTOR
    from rig.operations.images import parse_offset

    ctx = Context(station_path, board_name, slot_id)
    if region:
        offset, size = (parse_offset(v) for v in region)
        if offset % SECTOR or size % SECTOR or size <= 0:
            raise BadInput("--region offset and size must be positive multiples of 0x1000")
        if offset + size > ctx.board_type.flash_size:
            raise BadInput(f"--region ends past the {ctx.board_type.flash_size >> 20} MB flash")
    store = checked_backup_store(ctx.station, backup_mode, force)

    def body(report, session, progress, _slot):
        backup_step(report, session, store, backup_mode, ctx.meta(), progress)
        with report.step("erase") as step:
            if region:
                session.erase_region(offset, size)
                step.detail = f"{offset:#x}+{size:#x}"
            else:
                session.erase_chip()
                step.detail = "whole chip"

    run_op(ctx, "erase", as_json, body, force_erase=force)


@command("write")
@options(slot_options, backup_options)
@click.argument("images", nargs=-1, required=True)
def write_command(station_path, board_name, slot_id, as_json, backup_mode, force, images):
    """Write IMAGES (catalog names or FILE@OFFSET): verified fast write of changed blocks."""
    ctx = Context(station_path, board_name, slot_id)
    resolved = resolve(images, ctx)
    store = checked_backup_store(ctx.station, backup_mode, force)

    def body(report, session, progress, _slot):
        backup_step(report, session, store, backup_mode, ctx.meta(), progress)
        for image in resolved:
            with report.step(f"write {image.name}") as step:
                stats = session.write(image.offset, image.data, phase(progress, "write"))
                step.data = {
                    "offset": image.offset,
                    "sha256": image.sha256,
                    "bytes_written": stats.written,
                    "bytes_skipped": stats.skipped,
                }
                step.detail = (
                    f"at {image.offset:#x}: wrote {stats.written} B, skipped "
                    f"{stats.skipped} B unchanged, chip MD5 verified"
                )

    run_op(ctx, "write", as_json, body)


@command("verify")
@options(slot_options)
@click.argument("images", nargs=-1, required=True)
def verify_command(station_path, board_name, slot_id, as_json, images):
    """Compare the chip's MD5 of each image's region with the image."""

    ctx = Context(station_path, board_name, slot_id)
    resolved = resolve(images, ctx)

    def body(report, session, progress, _slot):
        for image in resolved:
            with report.step(f"verify {image.name}") as step:
                if not session.verify(image.offset, image.data):
                    raise OperationError(f"{image.name} at {image.offset:#x}: chip MD5 differs")
                step.detail = f"at {image.offset:#x}: chip MD5 matches"

    run_op(ctx, "verify", as_json, body)


@command("restore")
@options(slot_options)
@click.argument("backup_id", required=False)
def restore_command(station_path, board_name, slot_id, as_json, backup_id):
    """Write a backup of this board back (latest, or BACKUP_ID) with the fast path, verified."""
    from rig.operations.backups import BackupError

    ctx = Context(station_path, board_name, slot_id)
    store = ctx.store()
    chosen = None
    if backup_id is not None:
        try:
            chosen = store.get(backup_id)
        except BackupError as err:
            raise BadInput(str(err)) from err

    def body(report, session, progress, _slot):
        mac = session.identity.mac
        backup = chosen or store.latest(mac)
        if backup is None:
            raise OperationError(f"no verified backup of {mac} in {store.root}")
        if backup.mac != mac:
            raise OperationError(f"backup {backup.id} is of {backup.mac}, this board is {mac}")
        data = backup.read()
        size = session.require_flash_size()
        if len(data) != size:  # a store written by an older rig may hold a partial "backup"
            raise OperationError(
                f"backup {backup.id} holds {len(data)} bytes, the flash has {size}: it is not the "
                "whole flash, so restoring it would leave the rest as it is now - refusing"
            )
        with report.step("restore") as step:
            stats = session.write(0, data, phase(progress, "restore"))
            step.data = {
                "backup": backup.id,
                "bytes_written": stats.written,
                "bytes_skipped": stats.skipped,
            }
            step.detail = (
                f"{backup.id}: wrote {stats.written} B, skipped {stats.skipped} B "
                "unchanged, chip MD5 verified"
            )

    run_op(ctx, "restore", as_json, body)


@command("backups")
@station_option
@json_option
@click.option("--mac", help="Only this board's backups.")
def backups_command(station_path, as_json, mac):
    """List verified backups (newest last)."""
    from rig.operations.backups import BackupStore

    station = load_station(station_path)
    store = BackupStore(station.backups)
    rows = [
        {
            "id": b.id,
            "mac": b.mac,
            "created": b.created,
            "size": b.size,
            "sha256": b.sha256[:16],
            "slot": b.meta.get("slot", ""),
            "intact": "yes" if b.intact() else "NO",
        }
        for b in store.list(mac)
    ]
    if not rows and not as_json:
        click.echo(f"no backups in {store.root}" + (f" for {mac}" if mac else ""))
        return
    print_rows(f"backups in {store.root}", rows, as_json)


COMMANDS = [
    identify_command,
    dump_command,
    erase_command,
    write_command,
    verify_command,
    restore_command,
    backups_command,
]
