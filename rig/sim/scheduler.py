"""A single timer thread per simulated board for deferred work (console lines, boot loops)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
from collections.abc import Callable


class Scheduler:
    """``call_later(delay, fn)`` runs ``fn`` on the scheduler thread, under the board's lock."""

    def __init__(
        self,
        lock: threading.RLock,
        name: str = "sim",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._lock = lock
        self._on_error = on_error
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            with self._lock:
                try:
                    fn()
                except Exception:
                    if self._on_error is None:
                        raise
                    self._on_error(traceback.format_exc())
