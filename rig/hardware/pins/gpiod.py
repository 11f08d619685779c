"""The libgpiod v2 backend: the GPIO character device, chip discovery, kernel ``active_low``.

Recommended on every current Raspberry Pi, and the only kernel interface on the Pi 5 (its header
GPIOs sit on the RP1 south bridge, which the old ``/dev/gpiomem`` register mapping does not reach).
"""

from __future__ import annotations

import errno
import glob
import os
import re

from rig.hardware.pins import PinError
from rig.hardware.pins.base import BaseFactory, BasePin
from rig.install import install_hint

__all__ = ["CONSUMER_MAX", "HEADER_CHIP_LABELS", "GpiodFactory", "GpiodPin"]

#: gpiochip labels of the chip that carries the 40-pin header's GPIO0..27, newest first. The
#: number of that chip is not stable: on the Pi 5 the RP1 chip was /dev/gpiochip4 until kernel
#: 6.6.45 and /dev/gpiochip0 since, so a chip is only ever found by its label or a line name.
HEADER_CHIP_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")

#: The kernel keeps at most 31 characters of a consumer label (GPIO_MAX_NAME_SIZE is 32 with NUL).
CONSUMER_MAX = 31


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
            f"the gpiod pin backend needs the libgpiod v2 Python bindings: {install_hint('gpiod')}"
        ) from exc
    if not hasattr(gpiod, "request_lines") or not hasattr(gpiod, "LineSettings"):
        # Debian / Raspberry Pi OS bookworm's apt package python3-libgpiod is libgpiod 1.6,
        # whose API (chip.get_line(), line.request()) is unrelated to v2's.
        raise PinError(
            "the installed gpiod module is the libgpiod v1 API (apt's python3-libgpiod); "
            f"the rig needs v2 from PyPI: {install_hint('gpiod')} (in the rig's virtualenv)"
        )
    return gpiod


def _permission_hint(path: str) -> str:
    return (
        f"permission denied on {path}: add the user to the 'gpio' group "
        f"(sudo usermod -aG gpio $USER, then log in again) or run as root"
    )


def _natural_key(path: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path))
