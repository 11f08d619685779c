"""The serial line between the host and the simulated chip: its rate, and what a wrong rate does.

* :class:`LineRate` paces a byte stream at the line rate (8N1: 10 bit times per byte), on a
  :class:`~rig.clock.Clock`;
* two UARTs understand each other within a few percent of rate error (:func:`rates_agree`);
  beyond it the receiver samples the wrong bit cells (:func:`garbled`), which is how a failed
  baud switch shows on real hardware;
* :data:`SPEED_TO_BAUD` reads a termios speed code back as a rate (Linux shows the rate a host
  set on a pty's slave through its master).
"""

from __future__ import annotations

import random
import termios

from rig.clock import SYSTEM, Clock

__all__ = ["BAUD_TOLERANCE", "SPEED_TO_BAUD", "LineRate", "bridge_rate", "garbled", "rates_agree"]

BAUD_TOLERANCE = 0.03  # a UART samples correctly within a few percent of rate error


class LineRate:
    """Paces a byte stream at baud/10 bytes per second, starting when the line goes idle.

    The schedule is absolute: a sleep that overshoots by scheduler jitter is made up on the next
    chunk instead of accumulating, so a busy line runs at the full rate, as a UART's shift
    register does. Only a real idle gap (longer than ``IDLE``) restarts the clock.
    """

    IDLE = 0.005

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self._clock = clock
        self._free_at = 0.0

    def reset(self) -> None:
        self._free_at = 0.0

    def wait(self, nbytes: int, baud: int) -> None:
        now = self._clock.monotonic()
        start = self._free_at if now - self._free_at < self.IDLE else now
        self._free_at = start + nbytes * 10 / baud
        if self._free_at > now:
            self._clock.sleep(self._free_at - now)


def bridge_rate(host: int, max_baud: int | None) -> int:
    """The rate a USB bridge really runs at when the host asks for ``host``: above its fastest
    rate its divisor lands on another one (the CH330 does 2 Mbaud at most)."""
    if max_baud is not None and host > max_baud:
        return host * 3 // 4  # the nearest divisor the bridge has: a different rate
    return host


def rates_agree(rate: int, uart: int) -> bool:
    """Whether a UART running at ``uart`` baud samples bytes sent at ``rate`` correctly."""
    return abs(rate - uart) <= BAUD_TOLERANCE * uart


def garbled(data: bytes, sender: int, sampler: int, rng: random.Random) -> bytes:
    """What a UART at ``sampler`` baud receives of ``data`` sent at a ``sender`` baud it does
    not agree with: wrong bit cells sampled, a different number of wrong bytes."""
    return rng.randbytes(max(1, round(len(data) * sampler / sender)))


SPEED_TO_BAUD = {
    getattr(termios, f"B{b}"): b
    for b in (
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        500000,
        576000,
        921600,
        1000000,
        1152000,
        1500000,
        2000000,
        2500000,
        3000000,
    )
    if hasattr(termios, f"B{b}")
}
