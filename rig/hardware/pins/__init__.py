"""GPIO output pins that drive relays: one tiny interface, several backends.

Everything above this module sees an :class:`OutputPin`: ``set(active)`` energises or
de-energises one relay, ``get()`` says what was driven, ``close()`` drives it inactive and frees
the line. Polarity (``active_low``) is given once, when the pin is requested, and resolved here,
so no caller ever computes a level.

Backends:

* ``gpiod`` (:class:`~rig.hardware.pins.gpiod.GpiodFactory`) - libgpiod v2 Python bindings
  (PyPI ``gpiod>=2``), the GPIO character device. Recommended on every current Raspberry Pi, and
  the only kernel interface on the Pi 5 (its header GPIOs sit on the RP1 south bridge, which the
  old ``/dev/gpiomem`` register mapping does not reach).
* ``rpigpio`` (:class:`~rig.hardware.pins.rpigpio.RpiGpioFactory`) - RPi.GPIO, which maps the
  SoC's GPIO registers through ``/dev/gpiomem``. Works up to the Pi 4; on the Pi 5 only through
  the ``rpi-lgpio`` shim, which provides the same ``RPi.GPIO`` module on top of the character
  device.
* ``mock`` (:class:`~rig.hardware.pins.mock.MockPinFactory`) - in-memory pins with a history,
  for tests (like gpiozero's ``MockFactory``).
* ``sim`` (``rig.sim.pins.SimPinFactory``) - pins wired to a simulated board's contacts.

A backend is chosen by name from :data:`BACKENDS` (as python-can chooses its interfaces:
``can/interfaces/__init__.py``) and built by :func:`open_pin_factory`, which imports its module
only then - never from here, so this layer never imports the simulator, and the GPIO libraries are
imported only when their factory is built: the rig runs (simulated) on machines without them, and
a missing library or a non-Pi machine gives one actionable :class:`PinError`.

A site adds a backend (a relay HAT on I2C, a USB relay board) without touching the rig, through the
``rig.pin_backends`` entry-point group, as gpiozero's ``gpiozero_pin_factories`` does: in the
package that provides it::

    [project.entry-points."rig.pin_backends"]
    myhat = "myhat.rig:HatPinFactory"

The class implements :class:`PinFactory` (subclassing :class:`~rig.hardware.pins.base.BaseFactory`
gives the one-request-per-pin and idempotent-close rules for free); the station's ``pins`` options
other than ``backend`` are its keyword arguments. A built-in name wins over an entry point.

Levels: ``level`` below is the electrical level on the header pin, ``True`` = high (3.3 V). For an
active-low relay channel (most opto-isolated relay boards: the input sinks the opto LED's current)
``active`` means low, so an inactive active-low pin is driven *high*.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from rig.errors import BadInput, OperationError

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "BadPinFactory",
    "OutputPin",
    "PinError",
    "PinFactory",
    "known_backends",
    "level_for",
    "open_pin_factory",
]


class PinError(OperationError):
    """A pin could not be requested or driven; the message says what to do about it."""


class BadPinFactory(BadInput):
    """No pin backend of that name (nothing was touched)."""


@runtime_checkable
class OutputPin(Protocol):
    """One relay channel's GPIO output, polarity already resolved."""

    label: str

    def set(self, active: bool) -> None:
        """Energise (``True``) or de-energise (``False``) the relay."""

    def get(self) -> bool:
        """The active state as last driven (not read back from the relay)."""

    def close(self) -> None:
        """Drive inactive, then free the line. Idempotent."""


@runtime_checkable
class PinFactory(Protocol):
    """Hands out output pins of one backend and closes them all on :meth:`close`."""

    def output(self, pin: int | str, *, active_low: bool, label: str) -> OutputPin:
        """Request ``pin`` as an output, driven inactive from the first instant."""

    def close(self) -> None:
        """Close every pin handed out (each driven inactive, then freed). Idempotent."""


def level_for(active: bool, active_low: bool) -> bool:
    """The electrical level (``True`` = high) that puts a channel in the ``active`` state."""
    return active != active_low


#: Built-in backends: name -> (module, class). Modules are imported by :func:`open_pin_factory`
#: only, so naming one here costs nothing (``sim`` is the simulator's, above this layer).
BACKENDS: dict[str, tuple[str, str]] = {
    "gpiod": ("rig.hardware.pins.gpiod", "GpiodFactory"),
    "rpigpio": ("rig.hardware.pins.rpigpio", "RpiGpioFactory"),
    "mock": ("rig.hardware.pins.mock", "MockPinFactory"),
    "sim": ("rig.sim.pins", "SimPinFactory"),
}
ENTRY_POINT_GROUP = "rig.pin_backends"


def _site_backends() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_backends() -> list[str]:
    """Every backend name :func:`open_pin_factory` accepts: built in, or from an entry point."""
    return sorted({*BACKENDS, *_site_backends()})


def open_pin_factory(name: str, **options: Any) -> PinFactory:
    """The pin factory of backend ``name``, built with ``options`` (e.g. ``chip=`` for gpiod).

    An unknown name is :class:`BadPinFactory` naming the known ones; a backend that cannot run
    here (library missing, not a Raspberry Pi, no permission) raises its own :class:`PinError`.
    """
    if name in BACKENDS:
        module, attr = BACKENDS[name]
        factory = getattr(importlib.import_module(module), attr)
    else:
        site = _site_backends().get(name)
        if site is None:
            raise BadPinFactory(
                f"no pin backend {name!r} (known: {', '.join(known_backends())}; a site adds "
                f"one through the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        factory = site.load()
    return factory(**options)
