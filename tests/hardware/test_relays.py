"""Relays and relay banks: actions, timing, logging, and release on every way out."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import rig.signals
from rig.clock import FakeClock
from rig.hardware.pins import PinError
from rig.hardware.pins.mock import MockPinFactory
from rig.hardware.relays import Relay, RelayBank, RelayEvent, RelayLog
from rig.hardware.safety import (
    install_safety_net,
    live_banks,
    release_everything,
    safety_net_installed,
    uninstall_safety_net,
)
from rig.signals import Terminated


@pytest.fixture
def clock() -> FakeClock:
    """One time source for the log, the pins' history and the sleeps: no wall time passes."""
    return FakeClock()


@pytest.fixture
def pins(clock):
    factory = MockPinFactory(clock)
    yield factory
    factory.close()


@pytest.fixture
def bank(pins, clock):
    log = RelayLog("l7x-1", clock)
    relays = {
        role: Relay(role, pins.output(pin, active_low=True, label=f"l7x-1:{role}"), log)
        for role, pin in (("io0", 17), ("power", 27))
    }
    bank = RelayBank("l7x-1", relays)
    yield bank
    bank.close()


@pytest.fixture(autouse=True)
def no_leftover_banks():
    yield
    uninstall_safety_net()
    for leftover in live_banks():
        leftover.close()


def actions(log: RelayLog) -> list[tuple[float, str, str]]:
    """The log, its times to the nanosecond (sums of float sleeps are not exact)."""
    return [(round(e.t, 9), e.role, e.action) for e in log.events]


# ------------------------------------------------------------------------------------------------
# Actions and the log
# ------------------------------------------------------------------------------------------------
def test_close_open_press_release(bank, pins):
    io0, power = bank["io0"], bank["power"]
    assert not io0.is_closed and not power.is_closed
    io0.close()
    assert io0.is_closed and pins.pins[17].level is False  # active-low: energised = low
    power.press()
    assert power.is_closed and pins.pins[27].level is False
    io0.open()
    power.release()
    assert not io0.is_closed and not power.is_closed
    assert pins.pins[17].level is True and pins.pins[27].level is True
    assert [e.action for e in io0.log.events] == ["close", "press", "open", "release"]
    assert all(e.slot == "l7x-1" for e in io0.log.events)
    assert isinstance(io0.log.events[0], RelayEvent)


def test_download_sequence_timing_diagram_is_exact(bank, clock, pins):
    """The l7x download sequence, asserted to the millisecond without waiting for it."""
    io0, power = bank["io0"], bank["power"]
    clock.sleep(1.0)
    io0.close()
    power.press()
    clock.sleep(0.3)
    io0.open()
    clock.sleep(2.0)
    power.release()
    clock.sleep(0.5)
    io0.pulse(0.25)
    power.pulse(0.1)
    assert actions(io0.log) == [
        (1.0, "io0", "close"),
        (1.0, "power", "press"),
        (1.3, "io0", "open"),
        (3.3, "power", "release"),
        (3.8, "io0", "press"),
        (4.05, "io0", "release"),
        (4.05, "power", "press"),
        (4.15, "power", "release"),
    ]
    # the pins saw the same diagram (active = energised), after their inactive start
    pins.assert_history([
        (0.0, "l7x-1:io0", False),
        (0.0, "l7x-1:power", False),
        (1.0, "l7x-1:io0", True),
        (1.0, "l7x-1:power", True),
        (1.3, "l7x-1:io0", False),
        (3.3, "l7x-1:power", False),
        (3.8, "l7x-1:io0", True),
        (4.05, "l7x-1:io0", False),
        (4.05, "l7x-1:power", True),
        (4.15, "l7x-1:power", False),
    ])  # fmt: skip


def test_pulse_releases_when_interrupted(pins):
    class Interrupted(FakeClock):
        def sleep(self, seconds: float) -> None:
            raise KeyboardInterrupt

    power = Relay("power", pins.output(27, active_low=True, label="s:power"), clock=Interrupted())
    with pytest.raises(KeyboardInterrupt):
        power.pulse(5)
    assert not power.is_closed
    assert [e.action for e in power.log.events] == ["press", "release"]


def test_pulse_rejects_negative_time(bank):
    with pytest.raises(ValueError, match=">= 0"):
        bank["io0"].pulse(-0.1)
    assert bank["io0"].log.events == []


def test_relay_without_a_log_keeps_its_own(pins):
    relay = Relay("reset", pins.output(5, active_low=False, label="s:reset"))
    relay.close()
    assert [e.action for e in relay.log.events] == ["close"]
    assert repr(relay) == "<Relay :reset closed>"


def test_bank_lookup(bank):
    assert bank.roles == ("io0", "power")
    assert "io0" in bank and "reset" not in bank
    assert [r.role for r in bank] == ["io0", "power"]
    with pytest.raises(KeyError, match=r"slot l7x-1 has no relay 'reset' \(wired: io0, power\)"):
        bank["reset"]


# ------------------------------------------------------------------------------------------------
# Release
# ------------------------------------------------------------------------------------------------
def test_context_manager_releases_after_an_exception(bank, clock):
    with pytest.raises(RuntimeError, match="boom"), bank:
        bank["io0"].close()
        bank["power"].press()
        clock.sleep(0.2)
        raise RuntimeError("boom")
    assert not bank["io0"].is_closed and not bank["power"].is_closed
    assert actions(bank["io0"].log)[-2:] == [
        (0.2, "io0", "release-all"),
        (0.2, "power", "release-all"),
    ]


def test_context_manager_releases_on_normal_exit(bank):
    with bank as same:
        assert same is bank
        bank["power"].press()
    assert not bank["power"].is_closed


def test_release_all_is_idempotent(bank, pins):
    bank["io0"].close()
    assert bank.release_all() == []
    assert bank.release_all() == []
    releases = [e for e in bank["io0"].log.events if e.action == "release-all"]
    assert len(releases) == 1  # only the relay that was energised, only once
    assert bank.close() == []
    assert bank.close() == []
    assert pins.pins[17].freed and pins.pins[27].freed
    assert bank.release_all() == []  # after close: still harmless


class FailingPin:
    """An OutputPin whose line has gone away (e.g. a chip that vanished)."""

    label = "s:broken"

    def __init__(self) -> None:
        self.active = False

    def set(self, active: bool) -> None:
        if not active:
            raise OSError(5, "Input/output error")
        self.active = True

    def get(self) -> bool:
        return self.active

    def close(self) -> None:
        raise PinError("cannot close")


def test_release_all_tries_every_pin_and_never_raises(pins):
    good = Relay("power", pins.output(27, active_low=True, label="s:power"))
    bad = Relay("io0", FailingPin())
    bank = RelayBank("s", {"io0": bad, "power": good})
    bad.close()
    good.press()
    errors = bank.release_all()
    assert len(errors) == 1 and "Input/output error" in str(errors[0])
    assert not good.is_closed  # tried after the failing one
    errors = bank.close()
    assert len(errors) == 2  # release failed again, close failed
    assert bank not in live_banks()


def test_live_banks_and_release_everything(pins):
    a = RelayBank("a", {"io0": Relay("io0", pins.output(1, active_low=True, label="a:io0"))})
    b = RelayBank("b", {"io0": Relay("io0", pins.output(2, active_low=False, label="b:io0"))})
    assert a in live_banks() and b in live_banks()
    a["io0"].close()
    b["io0"].close()
    assert release_everything() == []
    assert not a["io0"].is_closed and not b["io0"].is_closed
    a.close()
    assert a not in live_banks() and b in live_banks()


# ------------------------------------------------------------------------------------------------
# Safety net, in process
# ------------------------------------------------------------------------------------------------
def test_install_twice_and_uninstall_restores_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert install_safety_net() is True
    handlers = {s: signal.getsignal(s) for s in before}
    assert install_safety_net() is True  # harmless
    assert {s: signal.getsignal(s) for s in before} == handlers
    assert all(h is rig.signals.unwind for h in handlers.values())
    assert safety_net_installed()
    uninstall_safety_net()
    uninstall_safety_net()
    assert {s: signal.getsignal(s) for s in before} == before
    assert not safety_net_installed()


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # the handler runs at the next bytecode boundary
        time.sleep(0)


def test_sigterm_becomes_terminated_and_the_bank_is_released(bank):
    install_safety_net()
    with pytest.raises(Terminated) as exc, bank:
        bank["io0"].close()
        bank["power"].press()
        _deliver(signal.SIGTERM)
    assert exc.value.code == 143 and exc.value.signum == signal.SIGTERM
    assert str(exc.value) == "terminated by SIGTERM"
    assert not isinstance(exc.value, Exception)  # `except Exception` cannot swallow it
    assert not bank["io0"].is_closed and not bank["power"].is_closed


def test_sigint_becomes_keyboardinterrupt(bank):
    install_safety_net()
    with pytest.raises(KeyboardInterrupt), bank:
        bank["power"].press()
        _deliver(signal.SIGINT)
    assert not bank["power"].is_closed


def test_a_signal_during_release_waits_until_every_pin_is_released(pins):
    install_safety_net()

    class SignallingPin(FailingPin):
        signalled = False

        def set(self, active: bool) -> None:
            if not active and not self.signalled:
                self.signalled = True
                _deliver(signal.SIGTERM)  # arrives in the middle of release_all
            self.active = active

        def close(self) -> None:
            pass

    first = Relay("io0", SignallingPin())
    second = Relay("power", pins.output(27, active_low=True, label="s:power"))
    bank = RelayBank("s", {"io0": first, "power": second})
    first.close()
    second.press()
    with pytest.raises(Terminated):
        bank.release_all()
    assert not first.is_closed and not second.is_closed


# ------------------------------------------------------------------------------------------------
# Safety net, in a real process: SIGTERM, SIGINT, SIGHUP, atexit
# ------------------------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import faulthandler, signal, sys, time
    from rig.hardware.relays import Relay, RelayBank
    from rig.hardware.safety import install_safety_net

    faulthandler.register(signal.SIGUSR1)  # the test asks where a child that hangs is stuck

    state, mode = sys.argv[1], sys.argv[2]

    class FilePin:
        '''An OutputPin whose line is a file: one line per drive, 1 energised, 0 released.'''
        label = "child:io0"
        def __init__(self):
            self.active = False
            self.set(False)
        def set(self, active):
            self.active = bool(active)
            with open(state, "a") as f:
                f.write("1\\n" if active else "0\\n")
        def get(self):
            return self.active
        def close(self):
            self.set(False)

    if mode != "no-net":
        install_safety_net()
    bank = RelayBank("child", {"io0": Relay("io0", FilePin())})
    if mode == "with":
        with bank:
            bank["io0"].close()
            print("ready", flush=True)
            time.sleep(60)
    else:
        bank["io0"].close()
        print("ready", flush=True)
        if mode == "exit":
            sys.exit(0)  # never releases by itself: atexit must
        time.sleep(60)
    """
)


def run_child(tmp_path, mode: str, signum: int | None) -> tuple[int, str, str]:
    """Run CHILD; returns its exit status, the history of its pin ("010": off, on, off), and
    its stderr."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(state), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "child did not start"
        assert proc.stdout.readline().strip() == "ready"
        assert state.read_text().split()[:2] == ["0", "1"]  # requested off, then energised
        if signum is not None:
            proc.send_signal(signum)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
            time.sleep(1)
            proc.kill()
            _, stderr = proc.communicate()
            raise AssertionError(f"the child did not exit within 30 s; stacks:\n{stderr}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return rc, "".join(state.read_text().split()), stderr


@pytest.mark.parametrize("mode", ["with", "bare"])
def test_sigterm_releases_in_another_process(tmp_path, mode):
    rc, state, stderr = run_child(tmp_path, mode, signal.SIGTERM)
    assert re.fullmatch("010+", state), stderr
    assert rc == 128 + signal.SIGTERM, stderr  # a quiet exit with the shell's status
    assert "Traceback" not in stderr


def test_sighup_releases_in_another_process(tmp_path):
    rc, state, stderr = run_child(tmp_path, "with", signal.SIGHUP)
    assert re.fullmatch("010+", state), stderr
    assert rc == 128 + signal.SIGHUP


def test_sigint_releases_in_another_process(tmp_path):
    rc, state, stderr = run_child(tmp_path, "with", signal.SIGINT)
    assert re.fullmatch("010+", state), stderr
    assert "KeyboardInterrupt" in stderr


def test_atexit_releases_a_bank_left_energised(tmp_path):
    rc, state, stderr = run_child(tmp_path, "exit", None)
    assert rc == 0, stderr
    assert state == "010"  # released once, by the atexit hook


def test_without_the_safety_net_sigterm_leaves_the_relay_energised(tmp_path):
    """Why the safety net exists: Python's default SIGTERM action kills without unwinding."""
    rc, state, _ = run_child(tmp_path, "no-net", signal.SIGTERM)
    assert rc == -signal.SIGTERM
    assert state == "01"
