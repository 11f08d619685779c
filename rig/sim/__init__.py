"""The simulated ESP32 board: the hardware side only (what a bench has, not what the rig does).

``SimBoard`` (:mod:`.board`) is a board with its chip, flash, USB bridge on a pty and input
contacts; ``SimPinFactory`` (:mod:`.pins`) the ``sim`` pin backend wiring relays to its contacts;
``Rfc2217Endpoint`` (:mod:`.rfc2217`) serves its bridge over RFC 2217 with DTR/RTS. The layers
below: :mod:`.bridge`, :mod:`.faults`, :mod:`.chip`, :mod:`.loader`, :mod:`.parts`,
:mod:`.transport` (the "simulator layers" contract in pyproject.toml).
"""

from .board import SimBoard
from .pins import SimPinFactory
from .rfc2217 import Rfc2217Endpoint

__all__ = ["Rfc2217Endpoint", "SimBoard", "SimPinFactory"]
