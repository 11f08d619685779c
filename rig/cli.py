"""The ``rig`` command line (click). Exit codes: 0 ok, 1 operation failed, 2 bad input."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__
from .cli_batch import COMMANDS as BATCH_COMMANDS
from .cli_common import (
    BadInput,
    OperationFailed,
    json_option,
    load_station,
    pick_slot,
    print_rows,
    station_option,
)
from .cli_ops import COMMANDS
from .cli_serve import serve_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """Hardware-in-the-loop flashing rig for ESP32 boards without auto-reset."""


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


@main.command("boards")
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


@main.command("stations")
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

    cfg = load_station(station_path)
    if release_all:
        if role or action or slot_id:
            raise BadInput("--release-all takes no slot, role or action")
    else:
        if not role or not action:
            raise BadInput("give ROLE and ACTION (on, off or pulse), or --release-all")
        slot_id = pick_slot(cfg, slot_id)
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


def _mac_option(ctx, param, value):
    if value is None:
        return None
    from .esp32 import parse_mac

    try:
        return parse_mac(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


# -- rig sim: the one interface that runs a simulated board by itself ----------------------
transport_option = click.option(
    "--transport",
    type=click.Choice(["pty", "rfc2217"]),
    default="pty",
    show_default=True,
    help="pty: a pseudo-terminal (no DTR/RTS); rfc2217: a loopback RFC 2217 port that carries "
    "DTR/RTS (a devkit resets through its auto-reset circuit, an l7x ignores them).",
)


def run_sim_transport(
    board: Any,
    transport: str = "pty",
    *,
    save_flash: Path | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve a simulated board on ``transport`` until SIGINT/SIGTERM (or ``stop`` is set).

    The first stdout line is ``PORT=<port>``: the pty path, or ``rfc2217://127.0.0.1:N``.
    On exit the flash is saved to ``save_flash`` (if given) and the board is closed.
    """
    endpoint = None
    try:
        if transport == "rfc2217":
            from .sim.rfc2217 import Rfc2217Endpoint

            endpoint = Rfc2217Endpoint(board)
            port = endpoint.url
        elif transport == "pty":
            port = board.port
        else:
            raise BadInput(f"unknown transport {transport!r} (pty or rfc2217)")
        if stop is None:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        click.echo(f"PORT={port}")
        sys.stdout.flush()
        err = Console(stderr=True)
        err.print(
            f"[bold]{board.variant.description}[/] MAC {board.mac_str}, "
            f"{board.flash.size // 0x100000} MB flash, boot={board.default_boot}, "
            f"on-close={board.on_close}{', realtime' if board.uart.pacing else ''}"
            f"{', rfc2217' if endpoint else ''}"
        )
        if endpoint is not None and board.variant.modem_lines:
            err.print(f"try: esptool --port {port} chip-id   (DTR/RTS reset it, as on a devkit)")
        else:
            err.print(f"try: esptool --port {port} --before no-reset --after no-reset chip-id")
        while not stop.wait(0.2):
            pass
    finally:
        if endpoint is not None:
            endpoint.close()
        if save_flash is not None:
            board.flash.save(save_flash)
        board.close()


@main.command("sim")
@transport_option
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
def sim_command(
    variant, boot, flash_image, blank, mac, seed, realtime, save_flash, on_close, transport
):
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
    run_sim_transport(board, transport, save_flash=save_flash)


@main.command("demo")
@json_option
def demo_command(as_json):
    """The whole cycle on a simulated VG-L7X: back up the vendor flash, write the custom
    firmware, verify, boot it, restore the original, verify, boot it."""
    from . import config
    from .cli_ops import Context, cycle_live, finish, resolve

    ctx = Context(None, "l7x", None)
    ctx.station = config.default_station()  # always the simulated station
    name = ctx.board_type.firmware[-1].name
    images = resolve([name], ctx)
    store = ctx.store()
    store.check_writable()
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


for _command in [*COMMANDS, *BATCH_COMMANDS, serve_command]:
    main.add_command(_command)


if __name__ == "__main__":
    main()
