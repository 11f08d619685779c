"""In-memory pins for tests, with their history and an assertion helper (gpiozero's
``MockFactory`` / ``MockPin.assert_states_and_times``, ``gpiozero/pins/mock.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rig.clock import SYSTEM, Clock
from rig.hardware.pins import level_for
from rig.hardware.pins.base import BaseFactory, BasePin

__all__ = ["MockPin", "MockPinFactory"]

History = list[tuple[float, str, bool]]  # (time, label, active)


class MockPin(BasePin):
    """An in-memory pin; ``level`` is the electrical level it would drive (``True`` = high)."""

    def __init__(self, key, label, active_low, *, factory: MockPinFactory) -> None:
        super().__init__(key, label, active_low)
        self._factory = factory
        self.level: bool = level_for(False, active_low)
        self.freed = False

    def _drive(self, active: bool) -> None:
        self.level = level_for(active, self.active_low)
        self._factory.history.append((self._factory.clock.monotonic(), self.label, active))

    def _free(self) -> None:
        self.freed = True


class MockPinFactory(BaseFactory):
    """In-memory pins with a ``history`` of ``(time, label, active)`` for every drive, the time
    from ``clock`` (a :class:`rig.clock.FakeClock` in tests: the relays' clock, so the pins'
    diagram and the relay log agree)."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        super().__init__()
        self.clock = clock
        self.history: History = []
        self.pins: dict[int | str, MockPin] = {}  # every pin ever requested, by pin id

    def _open(self, key, pin, *, active_low: bool, label: str) -> BasePin:
        new = MockPin(key, label, active_low, factory=self)
        self.history.append((self.clock.monotonic(), label, False))  # requested inactive
        self.pins[pin] = new
        return new

    def assert_history(self, expected: Sequence[tuple[float, str, bool]]) -> None:
        """The whole history is ``expected``: the same drives in the same order, each at the
        expected time (to a nanosecond: sums of float sleeps are not exact)."""
        same = len(self.history) == len(expected) and all(
            math.isclose(t, et, rel_tol=0.0, abs_tol=1e-9) and (label, active) == (el, ea)
            for (t, label, active), (et, el, ea) in zip(self.history, expected, strict=True)
        )
        if not same:
            lines = [f"  {t:.9f} {label} {'active' if active else 'inactive'}"
                     for t, label, active in self.history]  # fmt: skip
            raise AssertionError(
                f"pin history differs from {list(expected)!r}; it is:\n" + "\n".join(lines)
            )
