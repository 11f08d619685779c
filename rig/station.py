"""The station factory: live slots (relays, serial port, board handle, lock) from a station config.

Real slots get GPIO pins from the configured backend and a serial port by path, URL or USB
serial number. Simulated slots get a simulated board on a pseudo-terminal and pins wired to its
inputs: the port is a real pty, the relays are real :class:`~rig.relays.Relay` objects, so every
layer above runs the same code on the bench and in CI. This module (and the ``rig sim``
command) is the only place that imports the simulator.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from . import config
from .board import Board
from .clock import SYSTEM, Clock
from .locks import SlotLock
from .pins import GpiodFactory, PinFactory, RpiGpioFactory
from .ports import PortSpec
from .relays import Relay, RelayBank, RelayLog

REAPPEAR_S = 5.0  # seconds a vanished USB serial port may take to re-enumerate


@dataclass
class LiveSlot:
    """One slot in use: locked, relays at rest, board handle ready."""

    config: config.Slot
    board_type: config.BoardType
    relays: RelayBank
    board: Board
    lock: SlotLock
    _resources: ExitStack = field(repr=False)

    @property
    def id(self) -> str:
        return self.config.id

    def close(self) -> None:
        """Release every relay, free the pins, drop the lock (idempotent)."""
        self._resources.close()


class LiveStation:
    """Opens slots of one station on demand; closing it releases everything it opened."""

    def __init__(self, cfg: config.Station, *, clock: Clock = SYSTEM) -> None:
        self.config = cfg
        self.clock = clock
        self._stack = ExitStack()
        self._shared_pins: PinFactory | None = None
        self._open: dict[str, LiveSlot] = {}
        self._sim_boards: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def slots(self, board: str | None = None) -> list[config.Slot]:
        return [s for s in self.config.slots if board is None or s.board == board]

    def open_slot(self, slot_id: str) -> LiveSlot:
        """Lock the slot, then build its pins (relays de-energised), port and board handle."""
        if slot_id in self._open:
            return self._open[slot_id]
        slot_cfg = self.config.slot(slot_id)
        board_type = self.config.board_of(slot_cfg)
        stack = ExitStack()
        try:
            lock = SlotLock(self.config.locks, self.name, slot_id).acquire()
            stack.callback(lock.release)
            if slot_cfg.simulated is not None:
                pins, port = self._simulated_parts(slot_cfg, stack)
            else:
                # A bumped USB cable re-enumerates in a second or two: wait for the by-id link
                # or the serial number to come back rather than failing the reconnect.
                port = PortSpec(slot_cfg.port, slot_cfg.usb_serial, reappear=REAPPEAR_S)
                pins = self._pin_factory()
            log = RelayLog(slot=slot_id, clock=self.clock.monotonic)
            relays = {}
            for role, channel in slot_cfg.relays.items():
                pin = pins.output(
                    channel.pin, active_low=channel.active_low, label=f"rig:{slot_id}:{role}"
                )
                relays[role] = Relay(role, pin, log, sleep=self.clock.sleep)
            bank = RelayBank(slot_id, relays)
            stack.callback(bank.close)
            board = Board(slot_id, board_type, bank, port, clock=self.clock)
        except BaseException:
            stack.close()
            raise
        live = LiveSlot(slot_cfg, board_type, bank, board, lock, stack)
        stack.callback(self._open.pop, slot_id, None)
        self._open[slot_id] = live
        return live

    def simulated_board(self, slot_id: str):
        """The simulated board behind a slot (tests and ``rig sim`` only; None if real)."""
        return self._sim_boards.get(slot_id)

    def close(self) -> None:
        for live in list(self._open.values()):
            live.close()
        self._stack.close()

    def __enter__(self) -> LiveStation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parts ----------------------------------------------------------------------------------
    def _pin_factory(self) -> PinFactory:
        if self._shared_pins is None:
            pins = self.config.pins
            if pins.backend == "gpiod":
                factory: PinFactory = GpiodFactory(pins.chip)
            elif pins.backend == "rpigpio":
                factory = RpiGpioFactory()
            else:
                raise config.ConfigError(
                    str(self.config.source),
                    None,
                    None,
                    "pins.backend",
                    f"backend {pins.backend!r} is only for simulated slots",
                )
            self._shared_pins = factory
            self._stack.callback(factory.close)
        return self._shared_pins

    def _simulated_parts(
        self, slot_cfg: config.Slot, stack: ExitStack
    ) -> tuple[PinFactory, PortSpec]:
        import os
        from pathlib import Path

        from .config.faults import wiring
        from .images.flash_contents import vendor_l7x_flash
        from .sim.board import SimBoard
        from .sim.parts.efuse import Security
        from .sim.pins import SimPinFactory

        sim = slot_cfg.simulated
        # A simulated board keeps its flash from one rig command to the next, as hardware
        # does: the flash lives in the station's state dir while the slot is not in use.
        kept = self.config.state_dir / "sim-flash" / f"{slot_cfg.id}.bin"
        board = self._sim_boards.get(slot_cfg.id)
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
                inject=sim.faults,
                inject_seed=sim.fault_seed if sim.fault_seed is not None else seed,
                # The port the rig opens is a stable alias of the pty, resolved at every open
                # (as /dev/serial/by-id is on a bench): an unplugged board comes back under a
                # new pty path. Per process: another process's board of this slot is another
                # board.
                port_alias=Path(self.config.locks)
                / "sim-ports"
                / f"{self.name}-{slot_cfg.id}-{os.getpid()}",
            )
            self._sim_boards[slot_cfg.id] = board
            self._stack.callback(board.close)  # the board outlives slot use, like hardware
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


def open_station(path: str | None = None, *, clock: Clock = SYSTEM) -> LiveStation:
    """The station named by ``path`` / ``RIG_STATION``, else the embedded simulated station."""
    return LiveStation(config.station_from_env(path), clock=clock)
