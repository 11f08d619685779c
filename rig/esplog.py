"""Route esptool's process-wide logger into our own display instead of its stdout.

esptool 5 prints through one singleton logger (``esptool.logger.log``); we never scrape that
text. Installing :class:`CapturingLogger` keeps esptool quiet, records its messages (for logs
and error reports) and turns its progress calls into a callback (fact sheet §8).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from esptool.logger import TemplateLogger

Progress = Callable[[int, int, str], None]  # (done, total, prefix)


class CapturingLogger(TemplateLogger):
    def __init__(self, progress: Progress | None = None) -> None:
        self.lines: list[str] = []
        self.progress = progress
        self._lock = threading.Lock()

    def _add(self, text: str) -> None:
        with self._lock:
            self.lines.append(text)

    def print(self, *args, **kwargs) -> None:
        self._add(kwargs.get("sep", " ").join(str(a) for a in args))

    def note(self, message: str) -> None:
        self._add(f"NOTE: {message}")

    def warning(self, message: str) -> None:
        self._add(f"WARNING: {message}")

    def error(self, message: str) -> None:
        self._add(f"ERROR: {message}")

    def stage(self, finish: bool = False) -> None:
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30) -> None:
        if self.progress is not None:
            self.progress(int(cur_iter), int(total_iters), prefix.strip())

    def set_verbosity(self, verbosity: str) -> None:
        pass


class _SilentHex:
    """Stop esptool formatting hex dumps for a trace log nobody reads.

    esptool's SLIP reader and writer build their trace text with an f-string around
    ``HexFormatter(data)`` *before* calling the trace function (loader.py ``slip_reader``:
    ``trace_function(f"... {HexFormatter(read_bytes)}")``), so every byte read is hex-formatted
    even with tracing off. Profiling a 4 MB read through the sim showed that formatting as most
    of esptool's CPU: 5.0 s of CPU and 10.7 s wall became 1.1 s and 2.8 s with it skipped. The
    rig never turns esptool's trace on, so while a rig session runs esptool (``captured``) the
    formatter renders nothing; outside, esptool is untouched.
    """

    def __init__(self) -> None:
        from esptool import loader

        self._cls = getattr(loader, "HexFormatter", None)
        self._original = getattr(self._cls, "__str__", None)
        self._depth = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            if self._cls is not None and self._depth == 0:
                self._cls.__str__ = lambda _self: ""
            self._depth += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._depth -= 1
            if self._cls is not None and self._depth == 0:
                self._cls.__str__ = self._original


_silent_hex = _SilentHex()


@contextlib.contextmanager
def captured(progress: Progress | None = None) -> Iterator[CapturingLogger]:
    """Install a capturing logger for the duration of the block, then restore the previous one."""
    from esp_pylib.logger import EspLog
    from esptool.logger import EsptoolLogger

    previous = EspLog.instance
    logger = CapturingLogger(progress)
    # esptool's own installer, called on its class: the ``log`` proxy forwards to whatever
    # logger is installed, which has no ``set_logger`` once a captured one is (nesting).
    EsptoolLogger.set_logger(previous, logger)
    try:
        with _silent_hex:
            yield logger
    finally:
        EspLog.instance = previous
