"""What happened to a simulated board, in order: contact changes, resets, brown-outs, faults."""

from __future__ import annotations

import os
import time

__all__ = ["EventLog"]


class EventLog(list):
    """``[(time.monotonic(), what), ...]``, the oldest half dropped past :attr:`LIMIT` entries.

    ``RIG_SIM_TRACE=FILE``: every event is also appended there (``<time> <board> <event>``), so a
    test can follow a simulated board living inside another process (the ``rig`` CLI).
    """

    LIMIT = 10000

    def __init__(self, board: str, trace: str | None = None) -> None:
        super().__init__()
        self.board = board
        self.trace = trace if trace is not None else os.environ.get("RIG_SIM_TRACE") or None

    def record(self, what: str) -> None:
        now = time.monotonic()
        self.append((now, what))
        if len(self) > self.LIMIT:
            del self[: self.LIMIT // 2]
        if self.trace is not None:
            try:
                with open(self.trace, "a") as f:
                    f.write(f"{now:.3f} {self.board} {what}\n")
            except OSError:
                self.trace = None
