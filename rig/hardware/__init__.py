"""What the rig touches: relay pins, relays, serial ports, slot locks (stdlib + pyserial only).

The face of the layer; the modules say what they own: :mod:`~rig.hardware.pins` (backends by
name), :mod:`~rig.hardware.relays`, :mod:`~rig.hardware.safety` (the safety net),
:mod:`~rig.hardware.ports`, :mod:`~rig.hardware.locks`, :mod:`~rig.hardware.rfc2217`.
"""

from rig.hardware.locks import SlotBusy, SlotLock
from rig.hardware.pins import PinError, open_pin_factory
from rig.hardware.ports import PortNotFound, PortSpec
from rig.hardware.relays import Relay, RelayBank, RelayLog

__all__ = [
    "PinError",
    "PortNotFound",
    "PortSpec",
    "Relay",
    "RelayBank",
    "RelayLog",
    "SlotBusy",
    "SlotLock",
    "open_pin_factory",
]
