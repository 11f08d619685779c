"""``rig sim``: one simulated ESP32 board on a pseudo-terminal or a loopback RFC 2217 port.

With the simulated slot kind (:mod:`rig.board.simulated`), the only module above the simulator
that imports it.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from rig import signals
from rig.cli.common import command
from rig.errors import BadInput
from rig.esp32 import parse_mac

__all__ = ["COMMANDS", "run_sim_transport", "sim_command", "transport_option"]


def _mac_option(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_mac(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


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
            from rig.sim.rfc2217 import Rfc2217Endpoint

            endpoint = Rfc2217Endpoint(board)
            port = endpoint.url
        elif transport == "pty":
            port = board.port
        else:
            raise BadInput(f"unknown transport {transport!r} (pty or rfc2217)")
        if stop is None:
            stop = threading.Event()
            signals.install(lambda _signum, _frame: stop.set(), (signal.SIGINT, signal.SIGTERM))
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


@command("sim")
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
    from rig.images.flash_contents import vendor_l7x_flash
    from rig.sim.board import SimBoard

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


COMMANDS = [sim_command]
