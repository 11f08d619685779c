"""``rig relay``: switch one relay by hand, or release every relay of the station."""

from __future__ import annotations

import threading

import click
from rich.console import Console

from rig.cli.common import command, load_station, station_option
from rig.cli.render.tables import station_line
from rig.errors import BadInput, OperationError

__all__ = ["COMMANDS", "relay_command"]


@command("relay")
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
    from rig.board.station import LiveStation
    from rig.hardware.locks import SlotBusy
    from rig.hardware.safety import install_safety_net
    from rig.operations.selection import one_slot

    cfg = load_station(station_path)
    if release_all:
        if role or action or slot_id:
            raise BadInput("--release-all takes no slot, role or action")
    else:
        if not role or not action:
            raise BadInput("give ROLE and ACTION (on, off or pulse), or --release-all")
        slot_id = one_slot(cfg, slot=slot_id, board_option=False).slot.id
        wired = cfg.slot(slot_id).relays
        if role not in wired:
            raise BadInput(f"slot {slot_id} has no {role!r} relay (wired: {', '.join(wired)})")
    install_safety_net()
    console = Console(stderr=True)
    console.print(station_line(cfg), markup=False, highlight=False, soft_wrap=True)
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
                raise OperationError("; ".join(busy))
            return
        relay = station.open_slot(slot_id).relays[role]  # SlotBusy: an operation error
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


COMMANDS = [relay_command]
