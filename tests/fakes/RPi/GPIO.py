"""A faithful fake of RPi.GPIO 0.7.1 (``RPi/_GPIO`` C module, source/py_gpio.c) for outputs.

Module state is per import, like the real extension's statics; the fake ``RPi`` package's
``BOARD`` decides the machine at import time:

* ``None`` -> the import raises ``RuntimeError("This module can only be run on a Raspberry
  Pi!")``, as the real module init does when ``get_rpi_info`` fails;
* a Pi 5 -> the import works, but ``setup()`` raises ``RuntimeError("Cannot determine SOC
  peripheral base address")``, as RPi.GPIO 0.7.1 does there (its register mapping cannot find
  the RP1's GPIOs);
* any other Pi -> a 54-line BCM GPIO block.

Misuse is rejected with the real messages: a channel before ``setmode`` -> RuntimeError "Please
set pin numbering mode ..."; ``output`` on a channel not set up as an output -> RuntimeError
"The GPIO channel has not been set up as an OUTPUT"; a second, different ``setmode`` ->
ValueError "A different mode has already been set!"; a BCM channel outside 0..53 -> ValueError.
Like the real library, setting up a channel twice only warns.

Inspection (not in the real API): :func:`latch` (the output register's level for a channel),
:func:`pin_level` (the level on the pin: the latch while an output, ``None`` = floating input),
:func:`direction`, and ``writes`` (every ``(channel, level)`` written to the latch).
"""

from __future__ import annotations

import warnings as _warnings

from . import BOARD as _BOARD

if _BOARD is None:
    raise RuntimeError("This module can only be run on a Raspberry Pi!")

VERSION = "0.7.1"

HIGH = 1
LOW = 0
OUT = 0
IN = 1
HARD_PWM = 43
SERIAL = 40
I2C = 42
SPI = 41
UNKNOWN = -1
BOARD = 10
BCM = 11
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33

RPI_INFO = {
    "P1_REVISION": 3,
    "REVISION": "c03114" if "Pi 4" in _BOARD else "d04170",
    "TYPE": _BOARD,
    "MANUFACTURER": "Sony UK",
    "PROCESSOR": "BCM2711" if "Pi 4" in _BOARD else "BCM2712",
    "RAM": "4G",
}
RPI_REVISION = 3

_IS_PI5 = "Pi 5" in _BOARD
_mode = UNKNOWN
_warnings_on = True
_direction: dict[int, int] = dict.fromkeys(range(54), -1)  # -1: not set up by this program
_latch: dict[int, int] = dict.fromkeys(range(54), LOW)
_pull: dict[int, int] = dict.fromkeys(range(54), PUD_OFF)
_mapped = False
writes: list[tuple[int, int]] = []


def _gpio_number(channel) -> int:
    if _mode not in (BOARD, BCM):
        raise RuntimeError(
            "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)"
        )
    if not isinstance(channel, int):
        raise ValueError("Channel must be an integer")
    if _mode == BCM:
        if not 0 <= channel <= 53:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        return channel
    raise NotImplementedError("the fake only implements BCM numbering")


def _mmap_gpio_mem() -> None:
    global _mapped
    if _IS_PI5:
        raise RuntimeError("Cannot determine SOC peripheral base address")
    _mapped = True


def _channels(channel) -> list:
    if isinstance(channel, (list, tuple)):
        return list(channel)
    if isinstance(channel, int):
        return [channel]
    raise ValueError("Channel must be an integer or list/tuple of integers")


def _write(gpio: int, value) -> None:
    level = HIGH if value else LOW
    _latch[gpio] = level
    writes.append((gpio, level))


def setwarnings(flag) -> None:
    global _warnings_on
    _warnings_on = bool(flag)


def setmode(mode) -> None:
    global _mode
    if _mode != UNKNOWN and mode != _mode:
        raise ValueError("A different mode has already been set!")
    if mode not in (BOARD, BCM):
        raise ValueError("An invalid mode was passed to setmode()")
    _mode = mode


def getmode():
    return None if _mode == UNKNOWN else _mode


def setup(channel, direction, pull_up_down=PUD_OFF, initial=-1) -> None:
    chans = _channels(channel)
    _mmap_gpio_mem()
    if direction not in (IN, OUT):
        raise ValueError("An invalid direction was passed to setup()")
    if direction == OUT and pull_up_down != PUD_OFF:
        raise ValueError("pull_up_down parameter is not valid for outputs")
    if direction == IN and initial != -1:
        raise ValueError("initial parameter is not valid for inputs")
    if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
        raise ValueError(
            "Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN"
        )
    for ch in chans:
        gpio = _gpio_number(ch)
        if _warnings_on and _direction[gpio] != -1:
            _warnings.warn(
                "This channel is already in use, continuing anyway.  "
                "Use GPIO.setwarnings(False) to disable warnings.",
                RuntimeWarning,
                stacklevel=2,
            )
        # py_gpio.c setup_one(): the latch is written *before* the pin becomes an output
        if direction == OUT and initial in (LOW, HIGH):
            _write(gpio, initial)
        _pull[gpio] = pull_up_down
        _direction[gpio] = direction


def output(channel, value) -> None:
    chans = _channels(channel)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * len(chans)
    if len(values) != len(chans):
        raise RuntimeError("Number of channels != number of values")
    for ch, val in zip(chans, values, strict=True):
        gpio = _gpio_number(ch)
        if _direction[gpio] != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        if not isinstance(val, int):
            raise ValueError(
                "Value must be an integer/boolean or a list/tuple of integers/booleans"
            )
        _write(gpio, val)


def input(channel) -> int:  # noqa: A001 - the real API's name
    gpio = _gpio_number(channel)
    if _direction[gpio] not in (IN, OUT):
        raise RuntimeError("You must setup() the GPIO channel first")
    level = pin_level(gpio)
    return HIGH if level else LOW


def cleanup(channel=None) -> None:
    global _mode
    found = False
    if channel is None:
        for gpio, d in _direction.items():
            if d != -1:
                _direction[gpio] = -1  # back to an input, no pull
                _pull[gpio] = PUD_OFF
                found = True
        _mode = UNKNOWN
    else:
        for ch in _channels(channel):
            gpio = _gpio_number(ch)
            if _direction[gpio] != -1:
                _direction[gpio] = -1
                _pull[gpio] = PUD_OFF
                found = True
    if not found and _warnings_on:
        _warnings.warn(
            "No channels have been set up yet - nothing to clean up!  "
            "Try cleaning up at the end of your program instead!",
            RuntimeWarning,
            stacklevel=2,
        )


def gpio_function(channel) -> int:
    gpio = _gpio_number(channel)
    return OUT if _direction[gpio] == OUT else IN


# -- inspection (fake only) -----------------------------------------------------------------------
def latch(gpio: int) -> int:
    return _latch[gpio]


def direction(gpio: int) -> int:
    return _direction[gpio]


def pin_level(gpio: int) -> int | None:
    return _latch[gpio] if _direction[gpio] == OUT else None
