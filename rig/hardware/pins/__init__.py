"""GPIO output pins that drive relays: one tiny interface, several backends.

Everything above this module sees an :class:`OutputPin`: ``set(active)`` energises or
de-energises one relay, ``get()`` says what was driven, ``close()`` drives it inactive and frees
the line. Polarity (``active_low``) is given once, when the pin is requested, and resolved here,
so no caller ever computes a level.

Backends:

* :class:`GpiodFactory` - libgpiod v2 Python bindings (PyPI ``gpiod>=2``), the GPIO character
  device. Recommended on every current Raspberry Pi, and the only kernel interface on the Pi 5
  (its header GPIOs sit on the RP1 south bridge, which the old ``/dev/gpiomem`` register mapping
  does not reach).
* :class:`RpiGpioFactory` - RPi.GPIO, which maps the SoC's GPIO registers through
  ``/dev/gpiomem``. Works up to the Pi 4; on the Pi 5 only through the ``rpi-lgpio`` shim, which
  provides the same ``RPi.GPIO`` module on top of the character device.
* :class:`MockPinFactory` - in-memory pins with a history, for tests (like gpiozero's
  ``MockFactory``).
* ``rig.sim.pins.SimPinFactory`` - pins wired to a simulated board's contacts (imported only by
  the station factory, never from here).

This module imports only the standard library at import time; the GPIO libraries are imported
lazily when a factory is built, so the rig runs (simulated) on machines without them, and a
missing library or a non-Pi machine gives one actionable :class:`PinError`.

Levels: ``level`` below is the electrical level on the header pin, ``True`` = high (3.3 V). For an
active-low relay channel (most opto-isolated relay boards: the input sinks the opto LED's current)
``active`` means low, so an inactive active-low pin is driven *high*.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BasePin",
    "BaseFactory",
    "GpiodFactory",
    "MockPin",
    "MockPinFactory",
    "OutputPin",
    "PinError",
    "PinFactory",
    "RpiGpioFactory",
    "level_for",
]


class PinError(RuntimeError):
    """A pin could not be requested or driven; the message says what to do about it."""


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


# ------------------------------------------------------------------------------------------------
# Shared machinery: state, idempotent close, one request per pin
# ------------------------------------------------------------------------------------------------
class BasePin:
    """State and lifecycle shared by the backends' pins.

    A backend implements :meth:`_drive` (put the line in the given active state) and
    :meth:`_free` (give the line back). ``set(False)`` on a closed pin is a harmless no-op - the
    pin was driven inactive when it was closed - so a safety net that releases everything twice
    never fails; ``set(True)`` on a closed pin is an error.
    """

    def __init__(self, key: Any, label: str, active_low: bool) -> None:
        self.key = key
        self.label = label
        self.active_low = active_low
        self.closed = False
        self._active = False
        self._lock = threading.RLock()
        self._on_close: Callable[[BasePin], None] | None = None

    def set(self, active: bool) -> None:
        active = bool(active)
        with self._lock:
            if self.closed:
                if active:
                    raise PinError(f"pin {self.label!r} is closed; request it again to drive it")
                return
            self._drive(active)
            self._active = active

    def get(self) -> bool:
        return self._active

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            error: BaseException | None = None
            try:
                self._drive(False)
                self._active = False
            except Exception as exc:  # still free the line, then report
                error = exc
            finally:
                try:
                    self._free()
                finally:
                    if self._on_close is not None:
                        self._on_close(self)
            if error is not None:
                raise PinError(
                    f"pin {self.label!r}: could not drive it inactive: {error}"
                ) from error

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("active" if self._active else "inactive")
        polarity = "active-low" if self.active_low else "active-high"
        return f"<{type(self).__name__} {self.label!r} {self.key!r} {polarity} {state}>"

    # -- backend hooks --------------------------------------------------------------------------
    def _drive(self, active: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _free(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class BaseFactory:
    """Keeps the live pins of one factory; a pin can be requested once until it is closed."""

    def __init__(self) -> None:
        self._live: dict[Any, BasePin] = {}
        self._lock = threading.RLock()
        self.closed = False

    def output(self, pin: int | str, *, active_low: bool, label: str) -> OutputPin:
        with self._lock:
            if self.closed:
                raise PinError(f"{type(self).__name__} is closed; cannot request pin {pin!r}")
            key = self._key(pin)
            if key in self._live:
                holder = self._live[key].label
                raise PinError(
                    f"pin {pin!r} is already in use by {holder!r}; each GPIO drives one relay "
                    f"channel (check the station config for a pin used twice)"
                )
            new = self._open(key, pin, active_low=bool(active_low), label=label)
            new._on_close = self._forget
            self._live[key] = new
            return new

    def close(self) -> None:
        """Close every live pin; each is tried even if another fails, then the first error."""
        with self._lock:
            self.closed = True
            errors: list[Exception] = []
            for pin in list(self._live.values()):
                try:
                    pin.close()
                except Exception as exc:
                    errors.append(exc)
            self._live.clear()
            self._shutdown()
        if errors:
            raise PinError("; ".join(str(e) for e in errors)) from errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self, pin: BasePin) -> None:
        with self._lock:
            if self._live.get(pin.key) is pin:
                del self._live[pin.key]

    # -- backend hooks --------------------------------------------------------------------------
    def _key(self, pin: int | str) -> Any:
        return pin

    def _open(self, key: Any, pin: int | str, *, active_low: bool, label: str) -> BasePin:
        raise NotImplementedError  # pragma: no cover - abstract

    def _shutdown(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------
# libgpiod v2
# ------------------------------------------------------------------------------------------------
#: gpiochip labels of the chip that carries the 40-pin header's GPIO0..27, newest first. The
#: number of that chip is not stable: on the Pi 5 the RP1 chip was /dev/gpiochip4 until kernel
#: 6.6.45 and /dev/gpiochip0 since, so a chip is only ever found by its label or a line name.
HEADER_CHIP_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")

#: The kernel keeps at most 31 characters of a consumer label (GPIO_MAX_NAME_SIZE is 32 with NUL).
CONSUMER_MAX = 31

_GPIOD_HINT = "pip install 'esp-flash-rig[gpiod]'"


class GpiodPin(BasePin):
    """One line of one libgpiod v2 request (one request per pin, so each is freed on its own)."""

    def __init__(self, key, label, active_low, *, request, offset, path, value) -> None:
        super().__init__(key, label, active_low)
        self._request = request
        self.offset = offset
        self.path = path
        self._value = value  # gpiod.line.Value

    def _drive(self, active: bool) -> None:
        value = self._value.ACTIVE if active else self._value.INACTIVE
        self._request.set_value(self.offset, value)

    def _free(self) -> None:
        self._request.release()


class GpiodFactory(BaseFactory):
    """Output lines through the libgpiod v2 Python bindings (the GPIO character device).

    ``chip``: ``None`` finds the header's chip by its label (:data:`HEADER_CHIP_LABELS`:
    ``pinctrl-rp1`` on a Pi 5, ``pinctrl-bcm2711`` on a Pi 4, ``pinctrl-bcm2835`` earlier) or,
    failing that, by the line name ``GPIO<n>``; a string containing ``/`` is a device path; any
    other string is a chip name in ``dev_dir`` (``gpiochip0``, if you insist) or a chip label.
    A pin is an offset (``17``) or a line name (``"GPIO17"``).

    Each pin is requested once, as an output whose *initial* value is inactive, so the request
    itself never makes a relay click; the consumer label ``rig:<label>`` shows in ``gpioinfo``.

    Polarity: this backend passes ``active_low`` to the kernel (``LineSettings.active_low``, the
    uAPI's ``GPIO_V2_LINE_FLAG_ACTIVE_LOW``) instead of inverting values itself. The kernel then
    applies the inversion to the initial value in the same ioctl that requests the line (no
    window with a wrong level), and ``gpioinfo`` shows the line as ``active-low`` next to its
    consumer, so what a person sees at the bench matches the station config.
    """

    def __init__(
        self, chip: str | None = None, *, consumer_prefix: str = "rig", dev_dir: str = "/dev"
    ) -> None:
        super().__init__()
        self.chip = chip
        self.consumer_prefix = consumer_prefix
        self.dev_dir = dev_dir
        self._gpiod = _import_gpiod()
        self._chip_list: list[tuple[str, str, int]] | None = None  # (path, label, num_lines)

    # -- chip discovery -------------------------------------------------------------------------
    def chips(self) -> list[tuple[str, str, int]]:
        """Every GPIO chip as ``(path, label, num_lines)``, in numeric order of the device."""
        if self._chip_list is None:
            found = []
            paths = glob.glob(os.path.join(self.dev_dir, "gpiochip*"))
            for path in sorted(paths, key=_natural_key):
                if not self._gpiod.is_gpiochip_device(path):
                    continue
                info = self._chip_info(path)
                found.append((path, info.label, info.num_lines))
            self._chip_list = found
        return self._chip_list

    def _chip_info(self, path: str):
        try:
            with self._gpiod.Chip(path) as chip:
                return chip.get_info()
        except PermissionError as exc:
            raise PinError(_permission_hint(path)) from exc
        except OSError as exc:
            raise PinError(f"cannot open GPIO chip {path}: {exc}") from exc

    def _describe_chips(self) -> str:
        chips = self.chips()
        if not chips:
            return f"no GPIO chips in {self.dev_dir} (is this a Raspberry Pi?)"
        return "chips: " + ", ".join(f"{p} ({label}, {n} lines)" for p, label, n in chips)

    def _explicit_chip(self, chip: str) -> str:
        if "/" in chip:
            if not self._gpiod.is_gpiochip_device(chip):
                raise PinError(f"{chip} is not a GPIO chip device; {self._describe_chips()}")
            return chip
        for path, label, _n in self.chips():
            if os.path.basename(path) == chip or label == chip:
                return path
        raise PinError(f"no GPIO chip named or labelled {chip!r}; {self._describe_chips()}")

    def _offset_on(self, path: str, line: int | str) -> int | None:
        """The offset of ``line`` (offset or name) on chip ``path``, ``None`` if it has none."""
        try:
            with self._gpiod.Chip(path) as chip:
                return chip.line_offset_from_id(line)
        except (FileNotFoundError, ValueError):
            return None  # unknown name (ENOENT) / offset out of range
        except PermissionError as exc:
            raise PinError(_permission_hint(path)) from exc

    def _locate(self, pin: int | str) -> tuple[str, int]:
        if isinstance(pin, str) and pin.strip().isdigit():
            pin = int(pin)
        if self.chip is not None:
            path = self._explicit_chip(self.chip)
            offset = self._offset_on(path, pin)
            if offset is None:
                raise PinError(f"GPIO chip {path} has no line {pin!r}")
            return path, offset
        if isinstance(pin, int):
            for wanted in HEADER_CHIP_LABELS:
                for path, label, num_lines in self.chips():
                    if label == wanted and 0 <= pin < num_lines:
                        return path, pin
            name = f"GPIO{pin}"
        else:
            name = pin
        for path, _label, _n in self.chips():
            offset = self._offset_on(path, name)
            if offset is not None:
                return path, offset
        raise PinError(
            f"cannot find GPIO {pin!r}: no chip labelled {' / '.join(HEADER_CHIP_LABELS)} and no "
            f"line named {name!r}; {self._describe_chips()}; name the chip with pins.chip in the "
            f"station config"
        )

    # -- requests -------------------------------------------------------------------------------
    def _key(self, pin: int | str) -> tuple[str, int]:
        return self._locate(pin)

    def _open(self, key, pin, *, active_low: bool, label: str) -> BasePin:
        gpiod = self._gpiod
        path, offset = key
        value = gpiod.line.Value
        settings = gpiod.LineSettings(
            direction=gpiod.line.Direction.OUTPUT,
            output_value=value.INACTIVE,
            active_low=active_low,
        )
        consumer = f"{self.consumer_prefix}:{label}"[:CONSUMER_MAX]
        try:
            request = gpiod.request_lines(path, consumer=consumer, config={offset: settings})
        except PermissionError as exc:
            raise PinError(_permission_hint(path)) from exc
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                holder = self._consumer_of(path, offset)
                raise PinError(
                    f"GPIO {pin!r} ({path} line {offset}) is busy, held by {holder!r}: another "
                    f"rig process or program drives it (see `gpioinfo`); stop it first"
                ) from exc
            raise PinError(f"cannot request GPIO {pin!r} ({path} line {offset}): {exc}") from exc
        return GpiodPin(
            key, label, active_low, request=request, offset=offset, path=path, value=value
        )

    def _consumer_of(self, path: str, offset: int) -> str:
        try:
            with self._gpiod.Chip(path) as chip:
                return chip.get_line_info(offset).consumer or "?"
        except Exception:
            return "?"


def _import_gpiod():
    try:
        import gpiod
    except ImportError as exc:
        raise PinError(
            f"the gpiod pin backend needs the libgpiod v2 Python bindings: {_GPIOD_HINT}"
        ) from exc
    if not hasattr(gpiod, "request_lines") or not hasattr(gpiod, "LineSettings"):
        # Debian / Raspberry Pi OS bookworm's apt package python3-libgpiod is libgpiod 1.6,
        # whose API (chip.get_line(), line.request()) is unrelated to v2's.
        raise PinError(
            "the installed gpiod module is the libgpiod v1 API (apt's python3-libgpiod); "
            f"the rig needs v2 from PyPI: {_GPIOD_HINT} (in the rig's virtualenv)"
        )
    return gpiod


def _permission_hint(path: str) -> str:
    return (
        f"permission denied on {path}: add the user to the 'gpio' group "
        f"(sudo usermod -aG gpio $USER, then log in again) or run as root"
    )


def _natural_key(path: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path))


# ------------------------------------------------------------------------------------------------
# RPi.GPIO
# ------------------------------------------------------------------------------------------------
_RPI_HINT = (
    "use the gpiod backend instead (pins: {backend: gpiod}; pip install 'esp-flash-rig[gpiod]'), "
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
                f"RPi.GPIO cannot drive this machine's GPIO ({exc}); {_RPI_HINT}"
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
                raise PinError(f"RPi.GPIO cannot set up GPIO{key} ({exc}); {_RPI_HINT}") from exc
            except ValueError as exc:  # "The channel sent is invalid on a Raspberry Pi"
                raise PinError(f"RPi.GPIO rejects GPIO{key}: {exc}") from exc
            _RPI_CLAIMED[key] = label
        return RpiGpioPin(key, label, active_low, gpio=gpio)


def _import_rpi_gpio():
    try:
        import RPi.GPIO as gpio
    except ImportError as exc:
        raise PinError(f"RPi.GPIO is not installed; {_RPI_HINT}") from exc
    except RuntimeError as exc:
        # RPi.GPIO's module init raises "This module can only be run on a Raspberry Pi!" when
        # it cannot identify the board from /proc/cpuinfo / the device tree.
        raise PinError(f"RPi.GPIO cannot run here ({exc}); {_RPI_HINT}") from exc
    return gpio


# ------------------------------------------------------------------------------------------------
# In-memory pins for tests
# ------------------------------------------------------------------------------------------------
class MockPin(BasePin):
    """An in-memory pin; ``level`` is the electrical level it would drive (``True`` = high)."""

    def __init__(self, key, label, active_low, *, factory: MockPinFactory) -> None:
        super().__init__(key, label, active_low)
        self._factory = factory
        self.level: bool = level_for(False, active_low)
        self.freed = False

    def _drive(self, active: bool) -> None:
        self.level = level_for(active, self.active_low)
        self._factory.history.append((self._factory.clock(), self.label, active))

    def _free(self) -> None:
        self.freed = True


class MockPinFactory(BaseFactory):
    """In-memory pins with a ``history`` of ``(time, label, active)`` for every drive."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.history: list[tuple[float, str, bool]] = []
        self.pins: dict[int | str, MockPin] = {}  # every pin ever requested, by pin id

    def _open(self, key, pin, *, active_low: bool, label: str) -> BasePin:
        new = MockPin(key, label, active_low, factory=self)
        self.history.append((self.clock(), label, False))  # requested inactive
        self.pins[pin] = new
        return new
