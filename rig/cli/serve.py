"""``rig serve``: slots as RFC 2217 ports whose DTR/RTS drive the relays (docs/remote.md).

``serve_command`` is registered on the ``rig`` group by :mod:`rig.cli`;
``python -m rig.cli.serve`` runs ``rig serve`` on its own. (``rig sim --transport rfc2217``, the
simulator's RFC 2217 front end, is :mod:`rig.cli.sim`.)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

import click

from rig.cli.common import (
    backup_options,
    checked_backup_store,
    command,
    load_station,
    station_option,
)
from rig.cli.render.tables import station_line
from rig.errors import BadInput

__all__ = ["COMMANDS", "serve_command"]

REMOTE_WARNING = (
    "warning: RFC 2217 has no authentication - anyone who can reach {bind}:{port} can reset "
    "and flash these boards and read their flash. Prefer the default loopback bind with "
    "`ssh -L` (docs/remote.md)."
)


def _log(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


def _stop_at_eof(stop: threading.Event) -> None:
    """Read stdin until its end of file (the writer closed it or died), then set ``stop``."""
    try:
        while sys.stdin.buffer.read1(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()
    with contextlib.suppress(OSError):  # stderr may have gone with the supervisor
        _log("stdin closed (the supervisor is gone): stopping")


@command("serve")
@station_option
@click.option(
    "--slot",
    "slot_ids",
    multiple=True,
    help="Slot to serve (repeatable; default: the station's only slot).",
)
@click.option("--all", "all_slots", is_flag=True, help="Serve every slot of the station.")
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; a non-loopback address needs --allow-remote.",
)
@click.option(
    "--port",
    "first_port",
    type=click.IntRange(0, 65535),
    default=4000,
    show_default=True,
    help="TCP port of the first slot; the next slots take the following ports (0: any free).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow binding to a non-loopback address (RFC 2217 has no authentication).",
)
@click.option(
    "--until-stdin-closes",
    "until_eof",
    is_flag=True,
    help="Stop serving when stdin reaches end of file: a supervisor that holds the other end "
    "of a pipe takes rig serve with it when it dies, however it dies (labgrid's exporter).",
)
@click.option(
    "--defer-backup",
    is_flag=True,
    help="At start-up, identify and check each board but leave a dump its flash needs "
    "(--backup auto) to the first client's connect: labgrid's coordinator waits only 10 s for "
    "an exporter to answer an acquire (rig labgrid exporter passes it).",
)
@backup_options[0]
@backup_options[1]
def serve_command(
    station_path,
    slot_ids,
    all_slots,
    bind,
    first_port,
    allow_remote,
    until_eof,
    defer_backup,
    backup_mode,
    force,
):
    """Serve slots as RFC 2217 ports whose DTR/RTS drive the relays.

    Stock esptool, idf.py, PlatformIO or the Arduino IDE point at rfc2217://HOST:PORT and use
    their default resets: the bootloader reset plays the board's `download` sequence, a hard
    reset its `run` sequence (per board type: `rfc2217` in its YAML). One client per slot; the
    slot is locked only while a client is connected, and its relays are released when it
    leaves. At start-up and again when a client connects, the rig identifies the board, applies
    the slot's expected_mac and makes sure a verified backup holds its current flash (--backup)
    before the client gets the port. Prints `SERVE <slot> <url>` per slot on stdout once every
    slot passed, then serves until SIGINT/SIGTERM.
    """
    from rig.board.station import LiveStation
    from rig.hardware.safety import install_safety_net
    from rig.operations.selection import listed_slots
    from rig.operations.serve import ServeError, SlotServer, is_loopback
    from rig.signals import Terminated

    cfg = load_station(station_path)
    ids = listed_slots(cfg, slot_ids, all_slots=all_slots).slot_ids
    if first_port and first_port + len(ids) - 1 > 65535:
        raise BadInput(f"{len(ids)} slots from port {first_port} run past port 65535")
    remote = not is_loopback(bind)
    if remote and not allow_remote:
        raise BadInput(
            f"--bind {bind} is not a loopback address and RFC 2217 has no authentication; "
            "forward the port with `ssh -L` instead (docs/remote.md), or pass --allow-remote"
        )
    store = checked_backup_store(cfg, backup_mode, force)
    _log(station_line(cfg))  # stderr: stdout's SERVE lines are for the supervisor

    install_safety_net()  # relays released on SIGINT/SIGTERM/SIGHUP and at exit
    station = LiveStation(cfg)
    servers: list[Any] = []
    station_lock = threading.Lock()
    try:
        for index, slot_id in enumerate(ids):
            port = first_port + index if first_port else 0
            try:
                server = SlotServer(
                    station,
                    slot_id,
                    bind=bind,
                    port=port,
                    station_lock=station_lock,
                    log=_log,
                    backup_mode=backup_mode,
                    store=store,
                    defer_backup=defer_backup,
                )
            except ServeError as err:  # nothing touched yet (e.g. the address is in use)
                raise BadInput(str(err)) from err
            servers.append(server)
        for server in servers:  # every port is listening: only now may a relay move
            server.check()  # ServeError: an operation error, exit 1
        for server in servers:
            server.start()
            click.echo(f"SERVE {server.slot_id} {server.url}")
        sys.stdout.flush()
        if remote:
            click.echo(REMOTE_WARNING.format(bind=bind, port=servers[0].port), err=True)
        _log(f"try: esptool --port {servers[0].url} chip-id    (Ctrl-C stops serving)")
        stop = threading.Event()
        if until_eof:
            threading.Thread(target=_stop_at_eof, args=(stop,), daemon=True).start()
        while not stop.wait(0.5):
            pass
    except (KeyboardInterrupt, Terminated):
        _log("stopping")
    finally:
        for server in servers:
            server.close()
        station.close()


COMMANDS = [serve_command]

if __name__ == "__main__":
    serve_command(prog_name="rig serve")
