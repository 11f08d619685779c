"""The ``rig`` command line (click). Exit codes: 0 ok, 1 operation failed, 2 bad input."""

from __future__ import annotations

import re
import signal
import sys
import tempfile
import threading
from pathlib import Path

import click
from rich.console import Console

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """Hardware-in-the-loop flashing rig for ESP32 boards without auto-reset."""


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
