"""The RPi.GPIO backend: the SoC's GPIO registers through ``/dev/gpiomem``.

Works up to the Pi 4; on the Pi 5 only through the ``rpi-lgpio`` shim, which provides the same
``RPi.GPIO`` module on top of the character device.
"""

from __future__ import annotations

import re
import threading

from rig.hardware.pins import PinError, level_for
from rig.hardware.pins.base import BaseFactory, BasePin
from rig.install import install_hint

__all__ = ["RpiGpioFactory", "RpiGpioPin"]


def _rpi_hint() -> str:
    return (
        f"use the gpiod backend instead (pins: {{backend: gpiod}}; {install_hint('gpiod')}), "
        "which works on every Raspberry Pi including the Pi 5; RPi.GPIO itself works up to the "
        "Pi 4 and on the Pi 5 only through the rpi-lgpio shim (pip uninstall RPi.GPIO; "
        "pip install rpi-lgpio)"
    )


# RPi.GPIO state is per process (one register mapping), so pins claimed by any factory count.
_RPI_CLAIMED: dict[int, str] = {}
_RPI_LOCK = threading.Lock()


class RpiGpioPin(BasePin):
    def __init__(self, key, label, active_low, *, gpio) -> None:
        super().__init__(key, label, active_low)
        self._gpio = gpio

    def _drive(self, active: bool) -> None:
        gpio = self._gpio
        gpio.output(self.key, gpio.HIGH if level_for(active, self.active_low) else gpio.LOW)

    def _free(self) -> None:
        # cleanup(channel) puts the channel back to an input with no pull (RPi.GPIO's
        # cleanup_one: setup_gpio(gpio, INPUT, PUD_OFF)).
        try:
            self._gpio.cleanup(self.key)
        finally:
            with _RPI_LOCK:
                if _RPI_CLAIMED.get(self.key) == self.label:
                    del _RPI_CLAIMED[self.key]


class RpiGpioFactory(BaseFactory):
    """Output pins through RPi.GPIO, BCM numbering.

    RPi.GPIO has no notion of polarity, so this backend inverts: the inactive level is computed
    once per pin and passed as ``GPIO.setup(pin, GPIO.OUT, initial=...)``, which RPi.GPIO writes
    to the output latch *before* switching the pin to output (py_gpio.c ``setup_one``:
    ``output_gpio`` then ``setup_gpio``), so the relay never clicks on at start.

    RPi.GPIO never refuses a pin that is already set up (it only warns), so this backend
    refuses a second request of a pin in the same process itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self._gpio = _import_rpi_gpio()
        try:
            self._gpio.setwarnings(False)  # we track our own claims; its warning is noise
            self._gpio.setmode(self._gpio.BCM)
        except ValueError as exc:  # "A different mode has already been set!"
            raise PinError(
                f"RPi.GPIO is already in BOARD numbering mode in this process; the rig uses BCM "
                f"numbers ({exc})"
            ) from exc
        except RuntimeError as exc:
            raise PinError(
                f"RPi.GPIO cannot drive this machine's GPIO ({exc}); {_rpi_hint()}"
            ) from exc

    def _key(self, pin: int | str) -> int:
        if isinstance(pin, str):
            m = re.fullmatch(r"(?:GPIO|BCM)?\s*(\d+)", pin.strip(), re.IGNORECASE)
            if not m:
                raise PinError(f"RPi.GPIO takes BCM numbers (17 or 'GPIO17'), not {pin!r}")
            pin = int(m.group(1))
        return int(pin)

    def _open(self, key: int, pin, *, active_low: bool, label: str) -> BasePin:
        gpio = self._gpio
        with _RPI_LOCK:
            if key in _RPI_CLAIMED:
                raise PinError(
                    f"GPIO{key} is already in use by {_RPI_CLAIMED[key]!r} in this process"
                )
            inactive = gpio.HIGH if level_for(False, active_low) else gpio.LOW
            try:
                gpio.setup(key, gpio.OUT, initial=inactive)
            except RuntimeError as exc:
                # e.g. "No access to /dev/mem. Try running as root!" or, on a Pi 5 with the
                # original RPi.GPIO, "Cannot determine SOC peripheral base address".
                raise PinError(f"RPi.GPIO cannot set up GPIO{key} ({exc}); {_rpi_hint()}") from exc
            except ValueError as exc:  # "The channel sent is invalid on a Raspberry Pi"
                raise PinError(f"RPi.GPIO rejects GPIO{key}: {exc}") from exc
            _RPI_CLAIMED[key] = label
        return RpiGpioPin(key, label, active_low, gpio=gpio)


def _import_rpi_gpio():
    try:
        import RPi.GPIO as gpio
    except ImportError as exc:
        raise PinError(f"RPi.GPIO is not installed; {_rpi_hint()}") from exc
    except RuntimeError as exc:
        # RPi.GPIO's module init raises "This module can only be run on a Raspberry Pi!" when
        # it cannot identify the board from /proc/cpuinfo / the device tree.
        raise PinError(f"RPi.GPIO cannot run here ({exc}); {_rpi_hint()}") from exc
    return gpio
