"""The ``rig`` command line (click). Exit codes: 0 ok, 1 operation failed, 2 bad input."""

from __future__ import annotations

import json
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path

import click
from rich.console import Console

from . import __version__


class BadInput(click.ClickException):
    """Bad input or config: one clear message, exit 2, nothing touched."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class OperationFailed(click.ClickException):
    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"failed: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """Hardware-in-the-loop flashing rig for ESP32 boards without auto-reset."""


station_option = click.option(
    "--station",
    "station_path",
    type=click.Path(dir_okay=False),
    envvar="RIG_STATION",
    help="Station file (env RIG_STATION; default: the embedded simulated station).",
)


def _load_station(station_path: str | None):
    from . import config

    try:
        return config.station_from_env(station_path)
    except config.ConfigError as err:
        raise BadInput(err.report() if hasattr(err, "report") else str(err)) from err


@main.command("check")
@click.argument("files", nargs=-1, type=click.Path(exists=True))
def check_command(files):
    """Validate board and station files (default: every shipped config)."""
    from . import config

    errors = config.check_files(files or None)
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        raise SystemExit(2)
    click.echo(f"ok: {', '.join(files) if files else 'all shipped configs'}")


@main.command("schema")
def schema_command():
    """Print the JSON Schema of board and station files (for editor completion)."""
    from . import config

    click.echo(json.dumps(config.json_schema(), indent=2))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _print_rows(title: str, rows: list[dict], as_json: bool) -> None:
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


@main.command("boards")
@station_option
@json_option
def boards_command(station_path, as_json):
    """List the board types."""
    station = _load_station(station_path)
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
    _print_rows("board types", rows, as_json)


@main.command("stations")
@station_option
@json_option
def stations_command(station_path, as_json):
    """List the slots of the current station."""
    station = _load_station(station_path)
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
    _print_rows(f"station {station.name} ({station.source or 'embedded'})", rows, as_json)


@main.command("relay")
@station_option
@click.option("--slot", "slot_id", help="Slot (default: the station's only slot).")
@click.option("--release-all", is_flag=True, help="De-energise every relay of the station.")
@click.option(
    "--ms", type=click.IntRange(1, 60000), default=200, show_default=True, help="Pulse length."
)
@click.argument("role", required=False)
@click.argument("action", required=False, type=click.Choice(["on", "off", "pulse"]))
def relay_command(station_path, slot_id, release_all, ms, role, action):
    """Switch one relay: ROLE on|off|pulse. `on` holds until Ctrl-C (relays never stay on
    after the rig exits); `--release-all` de-energises everything (CI post-steps, boot)."""
    from .locks import SlotBusy
    from .relays import install_safety_net
    from .station import LiveStation

    cfg = _load_station(station_path)
    if release_all:
        if role or action or slot_id:
            raise BadInput("--release-all takes no slot, role or action")
    else:
        if not role or not action:
            raise BadInput("give ROLE and ACTION (on, off or pulse), or --release-all")
        slot_id = _pick_slot(cfg, slot_id)
        wired = cfg.slot(slot_id).relays
        if role not in wired:
            raise BadInput(f"slot {slot_id} has no {role!r} relay (wired: {', '.join(wired)})")
    install_safety_net()
    console = Console(stderr=True)
    busy: list[str] = []
    with LiveStation(cfg) as station:
        if release_all:
            for slot in cfg.slots:
                try:
                    station.open_slot(slot.id).relays.release_all()
                    console.print(f"{slot.id}: released {', '.join(slot.relays)}")
                except SlotBusy as err:
                    busy.append(str(err))
            if busy:
                raise OperationFailed("; ".join(busy))
            return
        try:
            relay = station.open_slot(slot_id).relays[role]
        except SlotBusy as err:
            raise OperationFailed(str(err)) from err
        if action == "off":
            relay.open()
            console.print(f"{slot_id}: {role} off")
        elif action == "pulse":
            relay.pulse(ms / 1000)
            console.print(f"{slot_id}: {role} pulsed for {ms} ms")
        else:
            relay.close()
            console.print(f"{slot_id}: {role} on - Ctrl-C to release")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                console.print(f"{slot_id}: {role} released")


def _pick_slot(cfg, slot_id: str | None) -> str:
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


def _mac_option(ctx, param, value):
    if value is None:
        return None
    from .sim.efuse import parse_mac

    try:
        return parse_mac(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


@main.command("sim")
@click.option(
    "--board",
    "variant",
    type=click.Choice(["l7x", "devkit"]),
    default="l7x",
    show_default=True,
    help="Board variant to simulate.",
)
@click.option(
    "--boot",
    type=click.Choice(["download", "flash"]),
    default="download",
    show_default=True,
    help="Boot mode after power-on and after every reset.",
)
@click.option(
    "--flash-image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Initial flash content (default: the synthetic vendor firmware on l7x, "
    "erased flash on devkit).",
)
@click.option("--blank", is_flag=True, help="Start with erased flash.")
@click.option("--mac", callback=_mac_option, help="Factory MAC (default: derived from --seed).")
@click.option("--seed", default="0", show_default=True, help="Seed for the default MAC.")
@click.option(
    "--realtime",
    is_flag=True,
    help="Pace the UART at baud/10 bytes/s and use datasheet NOR erase/program times.",
)
@click.option(
    "--save-flash",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the flash content to this file on exit.",
)
@click.option(
    "--on-close",
    type=click.Choice(["reset", "keep"]),
    default="reset",
    show_default=True,
    help="reset: a host closing the port resets the board into --boot mode (so stock "
    "esptool can be run again and again); keep: leave the chip as it is.",
)
def sim_command(variant, boot, flash_image, blank, mac, seed, realtime, save_flash, on_close):
    """Run one simulated ESP32 board on a pseudo-terminal until SIGINT/SIGTERM.

    The first line on stdout is PORT=<path>; point stock esptool at it with
    --before no-reset --after no-reset.
    """
    from .images.synthetic import vendor_l7x_flash
    from .sim.board import SimBoard

    if flash_image is not None and blank:
        raise click.UsageError("--flash-image and --blank exclude each other")
    if save_flash is not None and not save_flash.parent.is_dir():
        raise click.BadParameter(
            f"directory {save_flash.parent} does not exist", param_hint="--save-flash"
        )
    image = flash_image
    if image is None and not blank and variant == "l7x":
        image = vendor_l7x_flash()
    try:
        board = SimBoard(
            variant,
            mac=mac,
            seed=seed,
            flash_image=image,
            realtime=realtime,
            on_close=on_close,
            boot=boot,
            name=f"sim-{variant}",
        )
    except ValueError as err:  # e.g. an image larger than the flash
        raise click.BadParameter(str(err), param_hint="--flash-image") from err
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        click.echo(f"PORT={board.port}")
        sys.stdout.flush()
        err = Console(stderr=True)
        err.print(
            f"[bold]{board.variant.description}[/] MAC {board.mac_str}, "
            f"{board.flash.size // 0x100000} MB flash, boot={boot}, on-close={on_close}"
            f"{', realtime' if realtime else ''}"
        )
        err.print(f"try: esptool --port {board.port} --before no-reset --after no-reset chip-id")
        while not stop.wait(0.2):
            pass
    finally:
        if save_flash is not None:
            board.flash.save(save_flash)
        board.close()


@main.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to keep the dump (default: a temporary directory).",
)
def demo_command(out):
    """Run a real esptool session on a simulated VG-L7X: identify, dump 4 MB, write, verify."""
    from .demo import run_session, summary_table
    from .images.synthetic import (
        APP_OFFSET,
        CUSTOM_GRBL,
        VENDOR_L7X,
        custom_grbl_app,
        vendor_l7x_flash,
    )
    from .sim.board import SimBoard

    console = Console()
    out = out or Path(tempfile.mkdtemp(prefix="rig-demo-"))
    vendor = vendor_l7x_flash()
    with SimBoard("l7x", flash_image=vendor, boot="download", seed="demo") as board:
        board.wait_for_console("waiting for download")
        console.print(
            f"[bold]Simulated Vigotech VG-L7X[/] on {board.port}: IO0 shorted to GND, power "
            "button held; the ROM prints:"
        )
        for line in board.console_lines():
            console.print(f"  [dim]|[/] {line}")
        console.print(
            f"flash holds the vendor firmware: {VENDOR_L7X.project_name} {VENDOR_L7X.version}"
        )
        report = run_session(board.port, out, custom_grbl_app(), APP_OFFSET, console)
        console.print(summary_table(report))
        same = report.dump_path.read_bytes() == vendor
        console.print(
            f"dump {report.dump_path} ({report.dump_sha256[:12]}) equals the simulated "
            f"flash byte for byte: {'yes' if same else 'NO'}"
        )
        console.print(
            f"release power, IO0 open, press power -> the board boots {CUSTOM_GRBL.project_name}:"
        )
        board.boot_into("flash")
        match = board.wait_for_console(re.escape(CUSTOM_GRBL.banner), timeout=5)
        for line in board.console_lines()[-6:]:
            console.print(f"  [dim]|[/] {line}")
        ok = same and report.verified and report.dump_md5_verified and match is not None
    console.print("[green]demo passed[/]" if ok else "[red]demo FAILED[/]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
