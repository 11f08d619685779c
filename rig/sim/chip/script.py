"""A console script: the lines the simulated ESP32 prints after a reset, and what it does next.

:mod:`.boot` (the ROM) and :mod:`.bootloader` (ESP-IDF's second stage) write one with a
:class:`ConsoleLog`; the chip plays it (:meth:`~rig.sim.chip.chip.Esp32Chip._play`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["NEXT_RESET_REASON", "BootScript", "ConsoleLog", "Reader"]

Reader = Callable[[int, int], bytes]  # read(offset, length) of the flash array
# How a script that ends in a reset goes on: the reset reason of the next boot.
NEXT_RESET_REASON = {"rtcwdt_reset": 0x10, "sw_reset": 0x3}


@dataclass(frozen=True)
class BootScript:
    """Console lines with the delay (s) *before* each, and what the chip does afterwards:
    ``then`` is "wait", "run", "rtcwdt_reset", "sw_reset", or "reset" (a firmware that resets
    the chip with ``reset_reason``: a panic's ``esp_restart()``, a watchdog). A running
    firmware's ``answers`` map what the host sends (one byte, or a line without its end) to
    the lines it prints back."""

    lines: tuple[tuple[float, str], ...]
    then: str
    reset_reason: int | None = None
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def next_reset_reason(self) -> int | None:
        """Reset reason for the automatic reboot that follows, if any."""
        if self.then == "reset":
            return self.reset_reason
        return NEXT_RESET_REASON.get(self.then)

    @property
    def duration(self) -> float:
        return sum(delay for delay, _ in self.lines)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.lines]

    def text(self) -> str:
        """Everything as the serial port sees it (lines ended with CR LF)."""
        return "".join(text + "\r\n" for _, text in self.lines)


class ConsoleLog:
    """Accumulates lines; ``t`` is the time since reset, which IDF log stamps show in ms."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.t = 0.0

    def raw(self, delay: float, text: str) -> None:
        self.t += delay
        self.lines.append((delay, text))

    def idf(self, level: str, tag: str, msg: str, delay: float, stamp: int | None = None) -> None:
        ms = round((self.t + delay) * 1000) if stamp is None else stamp
        self.raw(delay, f"{level} ({ms}) {tag}: {msg}")

    def done(
        self,
        then: str,
        reset_reason: int | None = None,
        answers: Mapping[str, tuple[str, ...]] | None = None,
    ) -> BootScript:
        return BootScript(tuple(self.lines), then, reset_reason, dict(answers or {}))
