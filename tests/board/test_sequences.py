"""The sequence interpreter: exact timing diagrams with a fake clock, no wall time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rig.board.sequences import SequenceError, run_sequence
from rig.clock import FakeClock


@dataclass(frozen=True)
class Step:
    action: str
    role: str | None = None
    seconds: float | None = None


class RecordingRelay:
    def __init__(self, role: str, clock: FakeClock, trace: list) -> None:
        self.role, self.clock, self.trace = role, clock, trace

    def close(self) -> None:
        self.trace.append((round(self.clock.now, 6), self.role, "close"))

    def open(self) -> None:
        self.trace.append((round(self.clock.now, 6), self.role, "open"))


def relays(clock, trace, *roles):
    return {role: RecordingRelay(role, clock, trace) for role in roles}


def test_l7x_download_timing_diagram():
    clock, trace = FakeClock(), []
    steps = [
        Step("close", "io0"),
        Step("press", "power"),
        Step("wait", seconds=0.3),
        Step("open", "io0"),
    ]
    run_sequence(steps, relays(clock, trace, "io0", "power"), clock)
    assert trace == [(0.0, "io0", "close"), (0.0, "power", "close"), (0.3, "io0", "open")]
    assert clock.sleeps == [0.3]


def test_pulse_closes_for_exactly_its_duration():
    clock, trace = FakeClock(), []
    steps = [
        Step("close", "io0"),
        Step("pulse", "reset", 0.1),
        Step("wait", seconds=0.05),
        Step("release", "io0"),
    ]
    run_sequence(steps, relays(clock, trace, "io0", "reset"), clock)
    assert trace == [
        (0.0, "io0", "close"),
        (0.0, "reset", "close"),
        (0.1, "reset", "open"),
        (0.15, "io0", "open"),
    ]


def test_unwired_role_is_a_clear_error_before_any_later_step():
    clock, trace = FakeClock(), []
    steps = [Step("close", "io0"), Step("press", "power")]
    with pytest.raises(SequenceError, match="no relay wired for role 'power'"):
        run_sequence(steps, relays(clock, trace, "io0"), clock, name="l7x-1:download")
    assert trace == [(0.0, "io0", "close")]
