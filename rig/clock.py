"""One injectable clock for everything that waits (sequences, relay pulses, boot checks).

Relay timing is the product here - a 300 ms IO0 hold is a datasheet requirement - so tests assert
exact timing diagrams. They do it instantly with :class:`FakeClock`, never with wall time.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that advances only when slept on; every sleep is recorded."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


SYSTEM = SystemClock()
