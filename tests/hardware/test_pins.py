"""Pin backends: one contract suite over every backend and polarity, then each backend's specifics.

The gpiod and RPi.GPIO backends run against faithful fakes of those modules (tests/fakes/) that
hold line levels and reject misuse as the real libraries do; the sim backend drives a real
simulated board.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fakes import RPi as fake_rpi
from fakes import gpiod as fake_gpiod

import rig.hardware.pins.rpigpio
from rig.clock import FakeClock
from rig.hardware.pins import (
    BACKENDS,
    BadPinFactory,
    OutputPin,
    PinError,
    PinFactory,
    level_for,
    open_pin_factory,
)
from rig.hardware.pins.gpiod import GpiodFactory
from rig.hardware.pins.mock import MockPinFactory
from rig.hardware.pins.rpigpio import RpiGpioFactory
from rig.sim.board import SimBoard
from rig.sim.pins import SimPinFactory

PIN = 17
OTHER = 27
LABEL = "l7x-1:io0"


# ------------------------------------------------------------------------------------------------
# Harnesses: how each backend's "hardware" is observed
# ------------------------------------------------------------------------------------------------
@dataclass
class Harness:
    name: str
    factory: PinFactory
    level: Callable[[int], bool | None]  # electrical level the library/hardware drives
    is_free: Callable[[int], bool]  # the line has been given back
    energised: Callable[[int], bool] | None = None  # what the relay does (sim only)


def install_fake_rpi(monkeypatch, board: str | None = "Raspberry Pi 4 Model B Rev 1.4"):
    """Make ``import RPi.GPIO`` run the fake afresh; returns the module (None if off-Pi)."""
    monkeypatch.setattr(fake_rpi, "BOARD", board)
    monkeypatch.setitem(sys.modules, "RPi", fake_rpi)
    monkeypatch.delattr(fake_rpi, "GPIO", raising=False)
    monkeypatch.setattr(rig.hardware.pins.rpigpio, "_RPI_CLAIMED", {})
    sys.modules.pop("RPi.GPIO", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)  # recorded for teardown...
    del sys.modules["RPi.GPIO"]  # ...and gone now, so the import below runs GPIO.py
    if board is None:
        return None
    return importlib.import_module("RPi.GPIO")


def make_gpiod(monkeypatch, tmp_path) -> Harness:
    kernel = fake_gpiod.boot("pi5", dev_dir=tmp_path)
    fake_gpiod.install(monkeypatch)
    factory = GpiodFactory(dev_dir=str(tmp_path))
    return Harness(
        "gpiod",
        factory,
        level=lambda p: kernel.line("pinctrl-rp1", p).level,
        is_free=lambda p: not kernel.line("pinctrl-rp1", p).used,
    )


def make_rpigpio(monkeypatch) -> Harness:
    gpio = install_fake_rpi(monkeypatch)
    factory = RpiGpioFactory()
    return Harness(
        "rpigpio",
        factory,
        level=lambda p: bool(gpio.latch(p)),
        is_free=lambda p: gpio.direction(p) == -1,
    )


def make_mock() -> Harness:
    factory = MockPinFactory()
    return Harness(
        "mock",
        factory,
        level=lambda p: factory.pins[p].level,
        is_free=lambda p: factory.pins[p].freed,
    )


def make_sim(board: SimBoard) -> Harness:
    factory = SimPinFactory({PIN: (board, "io0"), OTHER: (board, "en")})
    contacts = {PIN: "io0", OTHER: "en"}
    return Harness(
        "sim",
        factory,
        level=lambda p: factory.pins[p].level,
        is_free=lambda p: factory.pins[p].freed,
        energised=lambda p: board.contact(contacts[p]),
    )


@pytest.fixture
def sim_board():
    board = SimBoard("l7x", seed="pins")
    yield board
    board.close()
    assert not board.faults


@pytest.fixture(params=["gpiod", "rpigpio", "mock", "sim"])
def hw(request, monkeypatch, tmp_path, sim_board) -> Harness:
    if request.param == "gpiod":
        harness = make_gpiod(monkeypatch, tmp_path)
    elif request.param == "rpigpio":
        harness = make_rpigpio(monkeypatch)
    elif request.param == "mock":
        harness = make_mock()
    else:
        harness = make_sim(sim_board)
    yield harness
    harness.factory.close()


@pytest.fixture(params=[True, False], ids=["active_low", "active_high"])
def active_low(request) -> bool:
    return request.param


# ------------------------------------------------------------------------------------------------
# The contract
# ------------------------------------------------------------------------------------------------
def check_state(hw: Harness, pin: int, active: bool, active_low: bool) -> None:
    assert hw.level(pin) is level_for(active, active_low)
    if hw.energised is not None:
        assert hw.energised(pin) is active


def test_interfaces(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    assert isinstance(pin, OutputPin)
    assert isinstance(hw.factory, PinFactory)
    assert pin.label == LABEL


def test_starts_inactive(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    assert pin.get() is False
    # active-low: inactive means the line is driven high
    assert hw.level(PIN) is active_low
    check_state(hw, PIN, False, active_low)
    assert not hw.is_free(PIN)


def test_set_and_get(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    pin.set(True)
    assert pin.get() is True
    assert hw.level(PIN) is (not active_low)
    check_state(hw, PIN, True, active_low)
    pin.set(True)  # again: no change
    check_state(hw, PIN, True, active_low)
    pin.set(False)
    assert pin.get() is False
    check_state(hw, PIN, False, active_low)


def test_close_drives_inactive_then_frees(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    pin.set(True)
    pin.close()
    assert pin.get() is False
    check_state(hw, PIN, False, active_low)
    assert hw.is_free(PIN)


def test_double_close_is_harmless(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    pin.set(True)
    pin.close()
    pin.close()
    pin.set(False)  # releasing a closed pin is a no-op (a safety net may do it twice)
    with pytest.raises(PinError, match="closed"):
        pin.set(True)
    check_state(hw, PIN, False, active_low)
    hw.factory.close()
    hw.factory.close()


def test_second_request_of_a_pin_is_rejected(hw, active_low):
    pin = hw.factory.output(PIN, active_low=active_low, label=LABEL)
    with pytest.raises(PinError, match="already in use"):
        hw.factory.output(PIN, active_low=active_low, label="l7x-1:power")
    pin.close()
    again = hw.factory.output(PIN, active_low=active_low, label=LABEL)  # free again after close
    again.set(True)
    check_state(hw, PIN, True, active_low)


def test_factory_close_closes_every_pin(hw, active_low):
    a = hw.factory.output(PIN, active_low=active_low, label="s:a")
    b = hw.factory.output(OTHER, active_low=active_low, label="s:b")
    a.set(True)
    b.set(True)
    hw.factory.close()
    for p in (PIN, OTHER):
        check_state(hw, p, False, active_low)
        assert hw.is_free(p)
    assert not a.get() and not b.get()
    hw.factory.close()
    with pytest.raises(PinError, match="closed"):
        hw.factory.output(PIN, active_low=active_low, label=LABEL)


def test_pins_are_independent(hw, active_low):
    a = hw.factory.output(PIN, active_low=active_low, label="s:a")
    hw.factory.output(OTHER, active_low=not active_low, label="s:b")
    a.set(True)
    check_state(hw, PIN, True, active_low)
    check_state(hw, OTHER, False, not active_low)


# ------------------------------------------------------------------------------------------------
# gpiod specifics
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def pi5(monkeypatch, tmp_path):
    kernel = fake_gpiod.boot("pi5", dev_dir=tmp_path)
    fake_gpiod.install(monkeypatch)
    return kernel


def test_gpiod_finds_the_header_chip_by_label_not_number(pi5, tmp_path):
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        pin = factory.output(PIN, active_low=True, label=LABEL)
        assert pin.path == str(tmp_path / "gpiochip4")  # RP1 is not gpiochip0 here
        assert pin.offset == PIN
        line = pi5.line("pinctrl-rp1", PIN)
        assert line.used and line.consumer == "rig:l7x-1:io0"
        assert line.active_low is True  # polarity handed to the kernel
        assert line.direction is fake_gpiod.Direction.OUTPUT
        assert line.history == [True]  # first level ever driven: inactive (high)
        assert not pi5.line("gpiochip0", PIN).used  # the SoC's own chip untouched


@pytest.mark.parametrize(
    ("machine", "label", "path"),
    [("pi4", "pinctrl-bcm2711", "gpiochip0"), ("pi3", "pinctrl-bcm2835", "gpiochip0")],
)
def test_gpiod_finds_older_pis_header_chip(monkeypatch, tmp_path, machine, label, path):
    kernel = fake_gpiod.boot(machine, dev_dir=tmp_path)
    fake_gpiod.install(monkeypatch)
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        pin = factory.output(PIN, active_low=False, label=LABEL)
        assert pin.path == str(tmp_path / path)
        pin.set(True)
        assert kernel.line(label, PIN).level is True


def test_gpiod_pin_by_line_name(pi5, tmp_path):
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        pin = factory.output("GPIO27", active_low=False, label="l7x-1:power")
        assert (pin.path, pin.offset) == (str(tmp_path / "gpiochip4"), 27)
        pin.set(True)
        assert pi5.line("pinctrl-rp1", 27).level is True
        with pytest.raises(PinError, match="already in use"):
            factory.output(27, active_low=False, label="x")  # same line, other spelling


def test_gpiod_chip_by_line_name_when_no_known_label(monkeypatch, tmp_path):
    kernel = fake_gpiod.Kernel()
    monkeypatch.setattr(fake_gpiod, "_kernel", kernel)
    fake_gpiod.install(monkeypatch)
    kernel.add_chip(tmp_path / "gpiochip0", "some-expander", ["A", "B"])
    kernel.add_chip(tmp_path / "gpiochip1", "pinctrl-future", [f"GPIO{i}" for i in range(30)])
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        pin = factory.output(PIN, active_low=False, label=LABEL)
        assert pin.path == str(tmp_path / "gpiochip1")


@pytest.mark.parametrize("chip", ["pinctrl-rp1", "gpiochip4", "PATH"])
def test_gpiod_explicit_chip(pi5, tmp_path, chip):
    chip = str(tmp_path / "gpiochip4") if chip == "PATH" else chip
    with GpiodFactory(chip, dev_dir=str(tmp_path)) as factory:
        pin = factory.output(PIN, active_low=False, label=LABEL)
        assert pin.path == str(tmp_path / "gpiochip4")
        named = factory.output("GPIO5", active_low=False, label="s:x")
        assert named.offset == 5


def test_gpiod_explicit_chip_is_honoured_even_if_not_the_header(pi5, tmp_path):
    with GpiodFactory("gpiochip0", dev_dir=str(tmp_path)) as factory:
        pin = factory.output(3, active_low=False, label=LABEL)
        pin.set(True)
        assert pi5.line("gpiochip0", 3).level is True


def gpiod_error(tmp_path, pin, chip=None) -> str:
    """The PinError message a fresh GpiodFactory gives for requesting ``pin``."""
    factory = GpiodFactory(chip, dev_dir=str(tmp_path))
    try:
        with pytest.raises(PinError) as err:
            factory.output(pin, active_low=False, label="l7x-2:io0")
    finally:
        factory.close()
    return str(err.value)


def test_gpiod_errors_name_the_chips(pi5, tmp_path):
    assert re.search(
        r"no-such-chip.*pinctrl-rp1, 54 lines", gpiod_error(tmp_path, 1, "no-such-chip")
    )
    assert "NOPE" in gpiod_error(tmp_path, "NOPE")
    assert "has no line 99" in gpiod_error(tmp_path, 99, "pinctrl-rp1")
    assert "not a GPIO chip" in gpiod_error(tmp_path, PIN, str(tmp_path / "not-a-chip"))


def test_gpiod_no_chips(monkeypatch, tmp_path):
    fake_gpiod.boot("none", dev_dir=tmp_path)
    fake_gpiod.install(monkeypatch)
    assert re.search("no GPIO chips.*Raspberry Pi", gpiod_error(tmp_path, PIN))


def test_gpiod_busy_line_names_its_holder(pi5, tmp_path):
    with GpiodFactory(dev_dir=str(tmp_path)) as first:
        first.output(PIN, active_low=True, label=LABEL)
        assert "busy, held by 'rig:l7x-1:io0'" in gpiod_error(tmp_path, PIN)
    # a line held by another program
    line = pi5.line("pinctrl-rp1", OTHER)
    line.used, line.consumer = True, "gpioset"
    assert "gpioset" in gpiod_error(tmp_path, OTHER)


def test_gpiod_consumer_label_is_truncated_like_the_kernel(pi5, tmp_path):
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        factory.output(PIN, active_low=False, label="a-very-long-slot-name-indeed:power")
        consumer = pi5.line("pinctrl-rp1", PIN).consumer
        assert consumer == "rig:a-very-long-slot-name-indeed:power"[:31]


def test_gpiod_permission_denied_says_what_to_do(pi5, tmp_path):
    pi5.chip("pinctrl-rp1").denied = True
    assert "'gpio' group" in gpiod_error(tmp_path, PIN)


def test_gpiod_missing_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    with pytest.raises(PinError, match=r"pip install 'gpiod>=2'"):
        GpiodFactory()


def test_gpiod_v1_bindings_are_refused(monkeypatch):
    v1 = types.ModuleType("gpiod")
    v1.Chip = object  # libgpiod 1.x: Chip, Line, LINE_REQ_DIR_OUT..., no request_lines
    v1.LINE_REQ_DIR_OUT = 3
    monkeypatch.setitem(sys.modules, "gpiod", v1)
    with pytest.raises(PinError, match=r"v1 API.*pip install 'gpiod>=2'"):
        GpiodFactory()


def test_gpiod_released_line_stays_driven_on_stock_kernels(pi5, tmp_path):
    """Why close() drives inactive *before* releasing: the released line keeps its level."""
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        pin = factory.output(PIN, active_low=True, label=LABEL)
        pin.set(True)
    line = pi5.line("pinctrl-rp1", PIN)
    assert not line.used
    assert line.direction is fake_gpiod.Direction.OUTPUT
    assert line.level is True  # still driven, inactive (high) for active-low
    assert line.history == [True, False, True]


def test_gpiod_strict_kernel_reverts_released_lines(monkeypatch, tmp_path):
    kernel = fake_gpiod.boot("pi5", dev_dir=tmp_path, strict=True)
    fake_gpiod.install(monkeypatch)
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:
        factory.output(PIN, active_low=True, label=LABEL).set(True)
    line = kernel.line("pinctrl-rp1", PIN)
    assert line.direction is fake_gpiod.Direction.INPUT and line.level is None


@pytest.mark.parametrize("strict", [False, True], ids=["stock", "strict_gpiod"])
def test_fake_gpiod_shared_kernel_frees_a_dead_process_s_lines(monkeypatch, tmp_path, strict):
    """Another process drives a line of the shared fake kernel, then is killed: while it lives
    the line is busy; once it is gone its request is freed and the level it drove stays (stock
    kernel) or the line reverts to an input (strict_gpiod) - what the rig's batch relies on."""
    import signal
    import subprocess
    from pathlib import Path

    kernel = fake_gpiod.boot("pi5", dev_dir=tmp_path, strict=strict, state=tmp_path / "gpio")
    fake_gpiod.install(monkeypatch)
    env = {**os.environ, fake_gpiod.STATE_ENV: str(tmp_path / "gpio")}
    env["PYTHONPATH"] = str(Path(fake_gpiod.__file__).parent)  # `import gpiod`: the fake
    script = (
        "from rig.hardware.pins.gpiod import GpiodFactory; import sys, time; "
        f"GpiodFactory(dev_dir={str(tmp_path)!r}).output({PIN}, active_low=True, "
        "label='other').set(True); print('driven', flush=True); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert other.stdout.readline() == b"driven\n"
        line = kernel.refresh().line("pinctrl-rp1", PIN)
        assert line.used and line.owner == other.pid and line.level is False  # active (low)
        with pytest.raises(PinError, match="busy, held by 'rig:other'"):
            GpiodFactory(dev_dir=str(tmp_path)).output(PIN, active_low=True, label=LABEL)
        other.send_signal(signal.SIGKILL)
        other.wait(10)
    finally:
        other.kill()
        other.stdout.close()
    line = kernel.refresh().line("pinctrl-rp1", PIN)
    assert not line.used and line.owner is None
    assert line.level is (None if strict else False)  # stock: still driven active
    with GpiodFactory(dev_dir=str(tmp_path)) as factory:  # free to request again
        factory.output(PIN, active_low=True, label=LABEL)
        assert kernel.refresh().line("pinctrl-rp1", PIN).level is True  # requested inactive


def test_fake_gpiod_rejects_misuse_like_libgpiod(pi5, tmp_path):
    import errno

    path = str(tmp_path / "gpiochip4")
    settings = fake_gpiod.LineSettings(direction=fake_gpiod.line.Direction.OUTPUT)
    req = fake_gpiod.request_lines(path, consumer="a", config={PIN: settings})
    with pytest.raises(OSError) as busy:
        fake_gpiod.request_lines(path, consumer="b", config={PIN: settings})
    assert busy.value.errno == errno.EBUSY
    req.set_value(PIN, fake_gpiod.line.Value.ACTIVE)
    assert req.get_value(PIN) is fake_gpiod.line.Value.ACTIVE
    req.release()
    req.release()
    with pytest.raises(fake_gpiod.RequestReleasedError):
        req.set_value(PIN, fake_gpiod.line.Value.INACTIVE)
    with pytest.raises(FileNotFoundError):
        fake_gpiod.Chip(str(tmp_path / "gpiochip99"))
    with fake_gpiod.Chip(path) as chip:
        assert chip.get_info().label == "pinctrl-rp1"
        assert chip.line_offset_from_id("GPIO17") == 17
        assert chip.line_offset_from_id("17") == 17
        with pytest.raises(FileNotFoundError):
            chip.line_offset_from_id("GPIO99")
        with pytest.raises(ValueError):
            chip.line_offset_from_id(99)
    with pytest.raises(fake_gpiod.ChipClosedError):
        chip.get_info()


# ------------------------------------------------------------------------------------------------
# RPi.GPIO specifics
# ------------------------------------------------------------------------------------------------
def test_rpigpio_off_pi_is_one_actionable_error(monkeypatch):
    install_fake_rpi(monkeypatch, board=None)
    with pytest.raises(RuntimeError, match="only be run on a Raspberry Pi"):
        importlib.import_module("RPi.GPIO")  # the fake behaves as the real module
    with pytest.raises(PinError) as err:
        RpiGpioFactory()
    message = str(err.value)
    assert "This module can only be run on a Raspberry Pi!" in message
    assert "gpiod" in message and "'gpiod>=2'" in message  # a command that works (rig.install)


def test_rpigpio_missing_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "RPi", None)
    with pytest.raises(PinError, match="not installed.*gpiod"):
        RpiGpioFactory()


def test_rpigpio_on_a_pi5_points_to_gpiod_and_rpi_lgpio(monkeypatch):
    install_fake_rpi(monkeypatch, board="Raspberry Pi 5 Model B Rev 1.0")
    factory = RpiGpioFactory()
    with pytest.raises(PinError, match=r"peripheral base address.*gpiod.*rpi-lgpio"):
        factory.output(PIN, active_low=True, label=LABEL)
    factory.close()


@pytest.mark.parametrize("active_low", [True, False])
def test_rpigpio_initial_level_is_written_before_the_pin_becomes_an_output(monkeypatch, active_low):
    gpio = install_fake_rpi(monkeypatch)
    with RpiGpioFactory() as factory:
        pin = factory.output(PIN, active_low=active_low, label=LABEL)
        inactive = gpio.HIGH if active_low else gpio.LOW
        assert gpio.writes == [(PIN, inactive)]  # the only level the pin ever had
        assert gpio.getmode() == gpio.BCM
        assert gpio.gpio_function(PIN) == gpio.OUT
        pin.set(True)
        pin.close()
        assert gpio.writes == [(PIN, inactive), (PIN, 1 - inactive), (PIN, inactive)]
        assert gpio.pin_level(PIN) is None  # cleanup(): back to an input


def test_rpigpio_pin_names(monkeypatch):
    gpio = install_fake_rpi(monkeypatch)
    with RpiGpioFactory() as factory:
        factory.output("GPIO22", active_low=False, label="a").set(True)
        assert gpio.latch(22) == gpio.HIGH
        with pytest.raises(PinError, match="BCM numbers"):
            factory.output("header-11", active_low=False, label="b")
        with pytest.raises(PinError, match="invalid on a Raspberry Pi"):
            factory.output(60, active_low=False, label="c")


def test_rpigpio_claims_are_per_process(monkeypatch):
    install_fake_rpi(monkeypatch)
    with RpiGpioFactory() as one, RpiGpioFactory() as two:
        one.output(PIN, active_low=True, label=LABEL)
        with pytest.raises(PinError, match="l7x-1:io0"):
            two.output(PIN, active_low=True, label="l7x-2:io0")


def test_fake_rpigpio_rejects_misuse_like_rpigpio(monkeypatch):
    gpio = install_fake_rpi(monkeypatch)
    with pytest.raises(RuntimeError, match="Please set pin numbering mode"):
        gpio.setup(PIN, gpio.OUT)
    gpio.setmode(gpio.BCM)
    with pytest.raises(ValueError, match="A different mode has already been set!"):
        gpio.setmode(gpio.BOARD)
    with pytest.raises(RuntimeError, match="The GPIO channel has not been set up as an OUTPUT"):
        gpio.output(PIN, gpio.HIGH)
    gpio.setup(PIN, gpio.OUT, initial=gpio.LOW)
    with pytest.warns(RuntimeWarning, match="already in use"):
        gpio.setup(PIN, gpio.OUT)
    gpio.cleanup(PIN)
    with pytest.raises(RuntimeError, match="not been set up as an OUTPUT"):
        gpio.output(PIN, gpio.HIGH)


# ------------------------------------------------------------------------------------------------
# Mock specifics
# ------------------------------------------------------------------------------------------------
def test_mock_history_uses_the_clock():
    clock = FakeClock()
    factory = MockPinFactory(clock)
    pin = factory.output(PIN, active_low=True, label=LABEL)
    clock.sleep(1.0)
    pin.set(True)
    clock.sleep(0.5)
    pin.set(False)
    clock.sleep(0.5)
    pin.close()
    assert factory.history == [
        (0.0, LABEL, False),
        (1.0, LABEL, True),
        (1.5, LABEL, False),
        (2.0, LABEL, False),
    ]


def test_mock_assert_history_names_what_differs():
    clock = FakeClock()
    factory = MockPinFactory(clock)
    pin = factory.output(PIN, active_low=True, label=LABEL)
    for _ in range(3):
        clock.sleep(0.1)  # 0.30000000000000004: equal to 0.3 to the nanosecond
    pin.set(True)
    factory.assert_history([(0.0, LABEL, False), (0.3, LABEL, True)])
    with pytest.raises(AssertionError, match=r"0\.300000000 l7x-1:io0 active"):
        factory.assert_history([(0.0, LABEL, False), (0.31, LABEL, True)])
    with pytest.raises(AssertionError):
        factory.assert_history([(0.0, LABEL, False)])


# ------------------------------------------------------------------------------------------------
# Backends by name
# ------------------------------------------------------------------------------------------------
def test_backends_are_chosen_by_name(tmp_path, monkeypatch):
    fake_gpiod.boot("pi5", dev_dir=tmp_path)
    fake_gpiod.install(monkeypatch)
    with open_pin_factory("gpiod", dev_dir=str(tmp_path)) as factory:
        assert isinstance(factory, GpiodFactory)
    clock = FakeClock(5.0)
    mock = open_pin_factory("mock", clock=clock)
    assert isinstance(mock, MockPinFactory) and mock.clock is clock
    assert BACKENDS["sim"] == ("rig.sim.pins", "SimPinFactory")
    assert isinstance(open_pin_factory("sim", wiring={}), SimPinFactory)


def test_an_unknown_backend_is_one_error_naming_the_known_ones():
    with pytest.raises(BadPinFactory) as err:
        open_pin_factory("relayhat")
    assert isinstance(err.value, ValueError)  # bad input: nothing was touched
    assert "'relayhat'" in str(err.value)
    assert "gpiod, mock, rpigpio, sim" in str(err.value)
    assert "rig.pin_backends" in str(err.value)


def test_a_site_adds_a_backend_through_an_entry_point(monkeypatch):
    from importlib.metadata import EntryPoint

    import rig.hardware.pins as pins

    site = EntryPoint("hat", "rig.hardware.pins.mock:MockPinFactory", pins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(pins, "entry_points", lambda group: [site] if group == site.group else [])
    assert "hat" in pins.known_backends()
    assert isinstance(open_pin_factory("hat"), MockPinFactory)


# ------------------------------------------------------------------------------------------------
# Sim specifics
# ------------------------------------------------------------------------------------------------
def test_sim_pins_press_the_boards_buttons():
    board = SimBoard("l7x", seed="sim-pins")
    try:
        factory = SimPinFactory({17: (board, "io0"), 27: (board, "power")})
        io0 = factory.output(17, active_low=True, label="l7x-1:io0")
        power = factory.output("27", active_low=True, label="l7x-1:power")
        assert not board.powered
        io0.set(True)
        assert board.contact("io0")
        power.set(True)  # IO0 low at power-on: ROM download mode
        assert board.powered and board.mode == "download"
        io0.set(False)
        assert not board.contact("io0")
        factory.close()  # power released: the ROM does not latch the supply
        assert not board.contact("power") and not board.powered
    finally:
        board.close()
    assert not board.faults


def test_sim_wrong_polarity_behaves_as_on_hardware(sim_board):
    """A station saying active-high for an active-low relay board energises it at start."""
    factory = SimPinFactory({PIN: (sim_board, "io0")}, relay_active_low={PIN: True})
    pin = factory.output(PIN, active_low=False, label=LABEL)
    assert pin.get() is False  # the rig believes the relay is off...
    assert pin.level is False  # ...drives the line low...
    assert sim_board.contact("io0") is True  # ...and the active-low relay closes IO0
    pin.set(True)
    assert sim_board.contact("io0") is False
    factory.close()


def test_sim_disconnected_wire(sim_board):
    """A relay whose contact reaches nothing (station fault ``io0_connected: false``)."""
    factory = SimPinFactory({PIN: (sim_board, None)})
    pin = factory.output(PIN, active_low=True, label=LABEL)
    pin.set(True)
    assert pin.get() is True and pin.level is False and pin.energised
    assert sim_board.contact("io0") is False
    factory.close()


def test_sim_unknown_pin_or_contact(sim_board):
    devkit = SimBoard("devkit", seed="sim-pins-devkit")
    try:
        factory = SimPinFactory({PIN: (sim_board, "io0"), 5: (devkit, "power")})
        with pytest.raises(PinError, match=r"pin 4 is not wired.*17, 5"):
            factory.output(4, active_low=True, label=LABEL)
        with pytest.raises(PinError, match="no input 'power'"):
            factory.output(5, active_low=True, label=LABEL)
        factory.close()
    finally:
        devkit.close()
