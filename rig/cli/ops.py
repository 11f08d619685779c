"""``rig identify | dump | erase | write | verify | restore | backups``.

Every command validates its input (images, backup policy, the backups directory, the slot)
before a relay moves, shows rich progress while it works, ends with a summary table (or the same
report as JSON with ``--json``) and exits 0 ok, 1 failed, 2 bad input.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rig.cli.common import (
    backup_options,
    checked_backup_store,
    command,
    listing_options,
    live_slot,
    load_station,
    one_slot_of,
    options,
    output_format,
    slot_options,
)
from rig.cli.render import finish, progress_display
from rig.cli.render.tables import Col, emit_rows, station_fields, station_line
from rig.errors import BadInput

if TYPE_CHECKING:
    from rig.board.station import LiveSlot
    from rig.operations.images import FlashImage
    from rig.operations.report import Report
    from rig.operations.safeguards import BackupPolicy
    from rig.operations.selection import Selection
    from rig.operations.session import FlasherSession
    from rig.operations.steps import PhaseProgress

    Body = Callable[[Report, FlasherSession, PhaseProgress | None], object]

__all__ = ["COMMANDS", "resolve", "run_live", "run_op"]


def run_live(
    sel: Selection,
    report: Report,
    as_json: bool,
    work: Callable[[LiveSlot, PhaseProgress | None], object],
    *,
    announce: bool = True,
) -> None:
    """Run ``work(slot, progress)`` on the open slot (progress bars unless ``as_json``).

    Ctrl-C or SIGTERM still end in ``report``, printed once the relays and the lock are released:
    ``report.error`` says what was interrupted and what state the flash is in (the work fills it
    in: :func:`rig.operations.steps.reported`; else the step the signal came in). Then the
    signal goes on: click's exit for Ctrl-C, 128 + signal for SIGTERM/SIGHUP (``Terminated``).
    The first line (unless ``as_json`` or not ``announce``) names the station, simulated or not.
    """
    from rig.operations.safeguards import explain_interruption
    from rig.signals import Terminated

    if announce and not as_json:
        click.echo(station_line(sel.station))
    try:
        with progress_display(as_json) as progress, live_slot(sel) as slot:
            work(slot, progress)
    except (KeyboardInterrupt, Terminated) as stop:
        report.ok = False
        report.error = report.error or explain_interruption(stop, report, None, sel.slot.id, None)
        with contextlib.suppress(SystemExit):
            finish(report, as_json)
        raise


def run_op(
    sel: Selection, name: str, as_json: bool, body: Body, *, force_erase: bool = False
) -> None:
    """Open the slot, connect and identify (:func:`rig.operations.steps.on_board`), run
    ``body(report, session, progress)`` (its steps), report (an interrupted one too:
    :func:`run_live`)."""
    from rig.operations import steps
    from rig.operations.report import Report

    report = Report(name, sel.slot.id, **station_fields(sel.station))

    def work(slot: LiveSlot, progress: PhaseProgress | None) -> None:
        steps.on_board(
            report, slot, lambda session: body(report, session, progress), force_erase=force_erase
        )

    run_live(sel, report, as_json, work)
    finish(report, as_json)


def resolve(specs: Sequence[str], sel: Selection) -> list[FlashImage]:
    from rig.operations.images import resolve_images

    return resolve_images(list(specs), sel.board_type())


def backup_policy(sel: Selection, mode: str, force: bool) -> BackupPolicy:
    """The backup policy of a destructive command, checked before anything is touched."""
    from rig.operations.safeguards import BackupPolicy

    return BackupPolicy(checked_backup_store(sel.station, mode, force), mode, sel.backup_meta())


def parse_region(region: tuple[str, str], sel: Selection) -> tuple[int, int]:
    """``--region OFFSET SIZE``: sector aligned, inside the board type's flash."""
    from rig.esp32 import SECTOR
    from rig.operations.images import parse_offset

    offset, size = (parse_offset(v) for v in region)
    if offset % SECTOR or size % SECTOR or size <= 0:
        raise BadInput("--region offset and size must be positive multiples of 0x1000")
    flash_size = sel.board_type().flash_size
    if offset + size > flash_size:
        raise BadInput(f"--region ends past the {flash_size >> 20} MB flash")
    return offset, size


# -- commands -------------------------------------------------------------------------------------
@command("identify")
@options(slot_options)
def identify_command(station_path, board_name, slot_id, as_json):
    """Enter download mode and report chip, revision, MAC, flash id and size, crystal; fails
    when the flash size is unknown or not the board type's (nothing could be dumped safely)."""
    from rig.operations import steps

    sel = one_slot_of(station_path, board_name, slot_id)
    run_op(sel, "identify", as_json, lambda report, session, _: steps.flash_size(report, session))


@command("dump")
@options(slot_options)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the dump to this file.",
)
def dump_command(station_path, board_name, slot_id, as_json, out):
    """Dump the whole flash into the backup store as a verified backup (never overwritten)."""
    from rig.operations import steps

    sel = one_slot_of(station_path, board_name, slot_id)
    policy = backup_policy(sel, "auto", False)
    if out is not None and not out.parent.is_dir():
        raise BadInput(f"--out: directory {out.parent} does not exist")

    def body(report: Report, session: FlasherSession, progress: PhaseProgress | None) -> None:
        result = steps.dump(report, session, policy, progress)
        if out is not None:
            shutil.copyfile(result.backup.path, out)

    run_op(sel, "dump", as_json, body)


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
    from rig.operations import steps

    sel = one_slot_of(station_path, board_name, slot_id)
    where = parse_region(region, sel) if region else None
    policy = backup_policy(sel, backup_mode, force)

    def body(report: Report, session: FlasherSession, progress: PhaseProgress | None) -> None:
        steps.backup(report, session, policy, progress)
        steps.erase(report, session, where)

    run_op(sel, "erase", as_json, body, force_erase=force)


@command("write")
@options(slot_options, backup_options)
@click.argument("images", nargs=-1, required=True)
def write_command(station_path, board_name, slot_id, as_json, backup_mode, force, images):
    """Write IMAGES (catalog names or FILE@OFFSET): verified fast write of changed blocks.
    Each image must belong where it goes (an app in an app partition); otadata is reset when
    it would boot another app than the one written."""
    from rig.operations.cycle import install
    from rig.operations.images import check_placement, layout_table

    sel = one_slot_of(station_path, board_name, slot_id)
    board_type = sel.board_type()
    resolved = resolve(images, sel)
    check_placement(resolved, layout_table(board_type) or None, force=force)
    policy = backup_policy(sel, backup_mode, force)

    def body(report: Report, session: FlasherSession, progress: PhaseProgress | None) -> None:
        install(report, session, resolved, policy, board_type, force=force, progress=progress)

    run_op(sel, "write", as_json, body)


@command("verify")
@options(slot_options)
@click.argument("images", nargs=-1, required=True)
def verify_command(station_path, board_name, slot_id, as_json, images):
    """Compare the chip's MD5 of each image's region with the image."""
    from rig.operations import steps

    sel = one_slot_of(station_path, board_name, slot_id)
    resolved = resolve(images, sel)

    def body(report: Report, session: FlasherSession, _: PhaseProgress | None) -> None:
        for image in resolved:
            steps.verify(report, session, [image], name=f"verify {image.name}")

    run_op(sel, "verify", as_json, body)


@command("restore")
@options(slot_options)
@click.argument("backup_id", required=False)
def restore_command(station_path, board_name, slot_id, as_json, backup_id):
    """Write a backup of this board back (latest, or BACKUP_ID) with the fast path, then verify
    the whole flash against it."""
    from rig.operations import steps
    from rig.operations.backups import BackupError

    sel = one_slot_of(station_path, board_name, slot_id)
    store = sel.store()
    try:
        chosen = store.get(backup_id) if backup_id is not None else None
    except BackupError as err:
        raise BadInput(str(err)) from err

    def body(report: Report, session: FlasherSession, progress: PhaseProgress | None) -> None:
        steps.restore(report, session, steps.backup_of(session, store, chosen), progress)

    run_op(sel, "restore", as_json, body)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} B"


BACKUP_COLS = (
    Col("id", kind="id"),
    Col("mac", "MAC", kind="id"),
    Col("created", kind="id", drop=2, show=lambda t: t[:19].replace("T", " ")),
    Col("size", kind="num", drop=3, show=_size),
    Col("sha256", "sha256", kind="id", drop=1, show=lambda h: h[:16]),
    Col("slot", kind="id", drop=4),
    Col("intact", kind="id"),
)


@command("backups")
@options(listing_options)
@click.option("--mac", help="Only this board's backups.")
def backups_command(station_path, as_json, fmt, mac):
    """List verified backups (newest last). ``--json``: full sha256, size in bytes, ISO time."""
    from rig.operations.backups import BackupStore

    station = load_station(station_path)
    store = BackupStore(station.backups)
    rows = [
        {
            "id": b.id,
            "mac": b.mac,
            "created": b.created,
            "size": b.size,
            "sha256": b.sha256,
            "slot": b.meta.get("slot", ""),
            "intact": b.intact(),
            "path": str(b.path),
        }
        for b in store.list(mac)
    ]
    empty = f"no backups in {store.root}" + (f" for {mac}" if mac else "")
    title = f"backups in {store.root}"
    fmt = output_format(as_json, fmt)
    emit_rows(station, "backups", title, BACKUP_COLS, rows, fmt, empty=empty)


COMMANDS = [
    identify_command,
    dump_command,
    erase_command,
    write_command,
    verify_command,
    restore_command,
    backups_command,
]
