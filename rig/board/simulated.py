"""The simulated slot kind: a simulated board per slot, on a pseudo-terminal, with pins wired to
its inputs.

The port is a real pty, the relays are real :class:`~rig.hardware.relays.Relay` objects on the
``sim`` pin backend, so every layer above runs the same code on the bench and in CI. The station
loads this module by name (``SLOT_KINDS`` in :mod:`rig.board.station`), never statically, so the
layers above the board never import the simulator; it is one of the two modules that do (with
``rig sim``: :mod:`rig.cli.sim`).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from rig import config
from rig.board.station import REAPPEAR_S
from rig.hardware.pins import PinFactory
from rig.hardware.ports import PortSpec

if TYPE_CHECKING:
    from rig.board.station import LiveStation

__all__ = ["simulated_parts"]


def simulated_parts(
    station: LiveStation, slot_cfg: config.Slot, stack: ExitStack
) -> tuple[PinFactory, PortSpec]:
    import os
    from pathlib import Path

    from rig.config.faults import wiring
    from rig.images.flash_contents import vendor_l7x_flash
    from rig.sim.board import SimBoard
    from rig.sim.parts.efuse import Security
    from rig.sim.pins import SimPinFactory

    sim = slot_cfg.simulated
    # A simulated board keeps its flash from one rig command to the next, as hardware
    # does: the flash lives in the station's state dir while the slot is not in use.
    kept = station.config.state_dir / "sim-flash" / f"{slot_cfg.id}.bin"
    board = station._sim_boards.get(slot_cfg.id)
    if board is None:
        image = sim.flash_image
        if kept.is_file():
            image = kept
        elif image is None and sim.vendor_flash and sim.variant == "l7x":
            image = vendor_l7x_flash()
        seed = sim.seed or slot_cfg.id
        board = SimBoard(
            sim.variant,
            mac=sim.mac,
            seed=seed,
            flash_image=image,
            flash_id=sim.flash_id,
            security=Security(**sim.efuses.model_dump()),
            on_close="keep",  # only the relays reset a board on the rig
            name=slot_cfg.id,
            fail_connects=sim.fail_connects,
            max_baud=sim.max_baud,
            realtime=sim.realtime,
            chip_costs=sim.chip_costs if sim.realtime else 0.0,
            inject=sim.faults,
            inject_seed=sim.fault_seed if sim.fault_seed is not None else seed,
            # The port the rig opens is a stable alias of the pty, resolved at every open
            # (as /dev/serial/by-id is on a bench): an unplugged board comes back under a
            # new pty path. Per process: another process's board of this slot is another
            # board.
            port_alias=Path(station.config.locks)
            / "sim-ports"
            / f"{station.name}-{slot_cfg.id}-{os.getpid()}",
        )
        station._sim_boards[slot_cfg.id] = board
        station._stack.callback(board.close)  # the board outlives slot use, like hardware
    stuck, io0_reaches = wiring(sim.faults)
    io0_reaches = io0_reaches and sim.io0_connected
    contacts = config.SIM_VARIANTS[sim.variant].contacts  # relay role -> board input
    wiring_map = {
        # io0_connected: false (or an io0_open fault) models an IO0 wire that does not reach
        # the module.
        channel.pin: (
            board,
            None if role == "io0" and not io0_reaches else contacts[role],
        )
        for role, channel in slot_cfg.relays.items()
    }
    factory = SimPinFactory(
        wiring_map,
        stuck={slot_cfg.relays[role].pin: closed for role, closed in stuck.items()},
    )
    stack.callback(factory.close)
    kept.parent.mkdir(parents=True, exist_ok=True)
    stack.callback(board.flash.save, kept)  # runs before the slot lock is released
    return factory, PortSpec(url=board.port_alias, reappear=REAPPEAR_S)
