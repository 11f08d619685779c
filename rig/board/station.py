"""The station factory: live slots (relays, serial port, board handle, lock) from a station config.

A slot's pins and port come from its *kind*, found by name in :data:`SLOT_KINDS` (a
``"module:function"`` string imported when a slot of that kind is first opened, as python-can's
``can/interface.py`` finds its backends): real slots (:func:`real_parts`) get GPIO pins from the
station's pin backend and a serial port by path, URL or USB serial number; simulated slots
(:func:`rig.board.simulated.simulated_parts`) get a simulated board on a pseudo-terminal and pins
wired to its inputs. Everything else - the lock, the relays, the board handle - is the same for
both, so every layer above runs the same code on the bench and in CI, and none of them (nor this
module) imports the simulator. Remote slots (``remote: rfc2217://...``, a slot another host serves
with ``rig serve``) have no relays here: their board (:class:`rig.board.remote.RemoteBoard`)
plays the sequences as DTR/RTS patterns on one held connection, behind the same board handle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from rig import config
from rig.board.board import Board
from rig.board.remote import RemoteBoard, RemoteLines
from rig.clock import SYSTEM, Clock
from rig.hardware.locks import SlotLock
from rig.hardware.pins import PinFactory, open_pin_factory
from rig.hardware.ports import PortSpec
from rig.hardware.relays import Relay, RelayBank, RelayLog

__all__ = [
    "REAPPEAR_S",
    "SLOT_KINDS",
    "LiveSlot",
    "LiveStation",
    "real_parts",
    "release_abandoned_slot",
    "slot_kind",
]

#: Slot kinds by name: where the function that builds a slot's pins and port lives.
SLOT_KINDS = {
    "real": "rig.board.station:real_parts",
    "simulated": "rig.board.simulated:simulated_parts",
}
PartsFactory = Callable[["LiveStation", config.Slot, ExitStack], tuple[PinFactory, PortSpec]]

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
            if slot_cfg.remote is not None:
                # relays on the serving host: DTR/RTS on one held connection (rig.board.remote)
                board = RemoteBoard(slot_id, board_type, slot_cfg.remote, clock=self.clock)
                bank: RelayBank = RemoteLines(board)
            else:
                pins, port = slot_kind(slot_cfg)(self, slot_cfg, stack)
                bank = self._relays(slot_cfg, pins)
                board = Board(slot_id, board_type, bank, port, clock=self.clock)
            stack.callback(bank.close)
        except BaseException:
            stack.close()
            raise
        live = LiveSlot(slot_cfg, board_type, bank, board, lock, stack)
        stack.callback(self._open.pop, slot_id, None)
        self._open[slot_id] = live
        return live

    def _relays(self, slot_cfg: config.Slot, pins: PinFactory) -> RelayBank:
        """The slot's relays on ``pins``, de-energised."""
        log = RelayLog(slot=slot_cfg.id, clock=self.clock)
        relays = {}
        for role, channel in slot_cfg.relays.items():
            pin = pins.output(
                channel.pin, active_low=channel.active_low, label=f"rig:{slot_cfg.id}:{role}"
            )
            relays[role] = Relay(role, pin, log)
        return RelayBank(slot_cfg.id, relays)

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
        """The station's pin backend (``pins.backend``, by name), shared by its real slots."""
        if self._shared_pins is None:
            pins = self.config.pins
            options = pins.model_dump(exclude={"backend"}, exclude_none=True)
            factory = open_pin_factory(pins.backend, **options)
            self._shared_pins = factory
            self._stack.callback(factory.close)
        return self._shared_pins


def release_abandoned_slot(cfg: config.Station, slot_id: str) -> dict[str, bool]:
    """Release the relays of a slot whose process died without releasing them; return each
    relay's state afterwards (role -> still closed).

    A SIGKILLed process (the OOM killer, a supervisor's last resort) releases nothing, and a
    Raspberry Pi kernel keeps its GPIO outputs driven after their process dies: the board would
    stay strapped, its power button held. The slot's lock died with the process (an ``flock``
    dies with its last holder), so the slot is re-opened - requesting a pin drives it inactive
    from the first instant - and closed again. Raises :class:`~rig.hardware.locks.SlotBusy` if
    another process holds the slot (then its relays are that process's)."""
    with LiveStation(cfg) as live:
        slot = live.open_slot(slot_id)  # the pins are requested inactive
        slot.close()  # every relay released, pins freed, lock dropped
        return {relay.role: relay.is_closed for relay in slot.relays}


def slot_kind(slot_cfg: config.Slot) -> PartsFactory:
    """The parts factory of the slot's kind (``simulated`` when the slot has ``simulated``
    options, else ``real``), imported by name."""
    kind = "simulated" if slot_cfg.simulated is not None else "real"
    module, _, name = SLOT_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def real_parts(
    station: LiveStation, slot_cfg: config.Slot, stack: ExitStack
) -> tuple[PinFactory, PortSpec]:
    """A real slot: the station's shared pin backend, and its port by path, URL or USB serial
    number. A bumped USB cable re-enumerates in a second or two: the port waits for the by-id
    link or the serial number to come back rather than failing the reconnect."""
    port = PortSpec(slot_cfg.port, slot_cfg.usb_serial, reappear=REAPPEAR_S)
    return station._pin_factory(), port
