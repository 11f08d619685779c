"""``rig identify | dump | erase | write | verify | restore | backups | cycle``.

Every command validates its input (images, backup policy, the backups directory, the slot)
before a relay moves, shows rich progress while it works, ends with a summary table (or the same
report as JSON with ``--json``) and exits 0 ok, 1 failed, 2 bad input.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .cli_common import (
    BadInput,
    OperationFailed,
    backup_options,
    checked_backup_store,
    json_option,
    load_station,
    station_option,
)

slot_options = [
    station_option,
    click.option("--board", "board_name", help="Board type (picks its first slot)."),
    click.option("--slot", "slot_id", help="Slot id (see `rig stations`)."),
    json_option,
]


def options(*groups):
    def decorate(fn):
        for group in reversed(groups):
            for option in reversed(group):
                fn = option(fn)
        return fn

    return decorate


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
        from .operations.backups import BackupStore

        return BackupStore(self.station.backups)

    def meta(self) -> dict:
        return {"station": self.station.name, "slot": self.slot.id, "board_type": self.slot.board}

    @contextlib.contextmanager
    def live_slot(self) -> Iterator:
        from .board.station import LiveStation
        from .hardware.locks import SlotBusy
        from .hardware.safety import install_safety_net

        install_safety_net()
        with LiveStation(self.station) as station:
            try:
                yield station.open_slot(self.slot.id)
            except SlotBusy as err:
                raise OperationFailed(str(err)) from err


@contextlib.contextmanager
def progress_display(as_json: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar per phase (phase, bytes, rate, ETA) on stderr."""
    if as_json:
        yield None
        return
    bars = Progress(
        TextColumn("[bold]{task.description:<8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def finish(report, as_json: bool) -> None:
    if as_json:
        click.echo(report.to_json())
    else:
        console = Console()
        console.print(report.table())
        if report.error:
            console.print(f"[red]{report.operation} failed:[/] {report.error}")
    if not report.ok:
        raise SystemExit(1)


def run_live(ctx: Context, report, as_json: bool, work) -> None:
    """Run ``work(slot, progress)`` on the open slot (progress bars unless ``as_json``).

    Ctrl-C or SIGTERM still end in ``report``, printed once the relays and the lock are released:
    ``report.error`` says what was interrupted and what state the flash is in (the work fills it
    in; else the step the signal came in). Then the signal goes on: click's exit for Ctrl-C,
    128 + signal for SIGTERM/SIGHUP (``Terminated``).
    """
    from .operations.safeguards import explain_interruption
    from .signals import Terminated

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
    from .operations.report import Report
    from .operations.safeguards import explain_failure, explain_interruption
    from .operations.session import FlasherSession
    from .signals import Terminated

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
    from .operations.safeguards import ensure_backup

    with report.step("backup") as step:
        check = ensure_backup(session, store, mode, meta, phase(progress, "backup"))
        report.data["backup_id"] = check.backup.id if check.backup else None
        step.data, step.detail = check.data, check.detail


def resolve(specs, ctx: Context):
    from .errors import BadInput as OpBadInput
    from .operations.images import resolve_images

    try:
        return resolve_images(list(specs), ctx.board_type)
    except OpBadInput as err:
        raise BadInput(str(err)) from err


# -- commands -------------------------------------------------------------------------------------
@click.command("identify")
@options(slot_options)
def identify_command(station_path, board_name, slot_id, as_json):
    """Enter download mode and report chip, revision, MAC, flash id and size, crystal; fails
    when the flash size is unknown or not the board type's (nothing could be dumped safely)."""
    ctx = Context(station_path, board_name, slot_id)

    def body(report, session, _progress, _slot):
        with report.step("flash size") as step:
            step.detail = f"{session.require_flash_size() >> 20} MB, as the board type says"

    run_op(ctx, "identify", as_json, body)


@click.command("dump")
@options(slot_options)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the dump to this file.",
)
def dump_command(station_path, board_name, slot_id, as_json, out):
    """Dump the whole flash into the backup store as a verified backup (never overwritten)."""
    from .operations.safeguards import take_backup

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


@click.command("erase")
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
    from .esp32 import SECTOR
    from .operations.images import parse_offset

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


@click.command("write")
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


@click.command("verify")
@options(slot_options)
@click.argument("images", nargs=-1, required=True)
def verify_command(station_path, board_name, slot_id, as_json, images):
    """Compare the chip's MD5 of each image's region with the image."""
    from .errors import OperationError

    ctx = Context(station_path, board_name, slot_id)
    resolved = resolve(images, ctx)

    def body(report, session, progress, _slot):
        for image in resolved:
            with report.step(f"verify {image.name}") as step:
                if not session.verify(image.offset, image.data):
                    raise OperationError(f"{image.name} at {image.offset:#x}: chip MD5 differs")
                step.detail = f"at {image.offset:#x}: chip MD5 matches"

    run_op(ctx, "verify", as_json, body)


@click.command("restore")
@options(slot_options)
@click.argument("backup_id", required=False)
def restore_command(station_path, board_name, slot_id, as_json, backup_id):
    """Write a backup of this board back (latest, or BACKUP_ID) with the fast path, verified."""
    from .errors import OperationError
    from .operations.backups import BackupError

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


@click.command("backups")
@station_option
@json_option
@click.option("--mac", help="Only this board's backups.")
def backups_command(station_path, as_json, mac):
    """List verified backups (newest last)."""
    from .cli_common import print_rows
    from .operations.backups import BackupStore

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


@click.command("cycle")
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
    """:func:`rig.cycle.run_cycle` on the slot (``options``: its keywords); its report, which
    a stop signal prints before going on (:func:`run_live`)."""
    from .operations.cycle import run_cycle
    from .operations.report import Report

    report = Report("cycle", ctx.slot.id)

    def work(slot, progress) -> None:
        run_cycle(slot, store, images, meta=ctx.meta(), progress=progress, report=report, **options)

    run_live(ctx, report, as_json, work)
    return report


COMMANDS = [
    identify_command,
    dump_command,
    erase_command,
    write_command,
    verify_command,
    restore_command,
    backups_command,
    cycle_command,
]
