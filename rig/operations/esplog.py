"""Route esptool's process-wide logger into our own display instead of its stdout.

esptool 5 prints through one singleton logger (``esptool.logger.log``); we never scrape that
text. A :class:`CapturingLogger` per session (``captured``) keeps esptool quiet, records its
messages (for logs and error reports) and turns its progress calls into a callback (fact sheet
§8). Sessions may run in several threads at once: the singleton routes each call to the capture
of the thread making it (:class:`_ThreadRouter`).
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


class _ThreadRouter(TemplateLogger):
    """The logger installed while rig sessions run esptool, in any number of threads.

    esptool has one process-wide logger (``EspLog.instance``, read by its ``log`` proxy on every
    call). Two sessions in two threads (two slots) that each installed their own and put back the
    one they found would swap lines while both run and, leaving in another order than they came,
    restore a finished session's logger for good. So one router is installed instead: each call
    goes to the innermost capture of the calling thread, or - in a thread outside any session -
    to the logger that was installed before (``outside``).
    """

    _OUTSIDE_NAMES = {"warning": "warn", "error": "err"}  # esp-pylib's names for them

    def __init__(self, outside) -> None:
        self.outside = outside
        self.local = threading.local()

    def stack(self) -> list[CapturingLogger]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    def _to(self, name: str) -> Callable:
        stack = self.stack()
        if stack:
            return getattr(stack[-1], name)
        return getattr(self.outside, self._OUTSIDE_NAMES.get(name, name))

    def print(self, *args, **kwargs) -> None:
        self._to("print")(*args, **kwargs)

    def note(self, message: str) -> None:
        self._to("note")(message)

    def warning(self, message: str) -> None:
        self._to("warning")(message)

    def error(self, message: str) -> None:
        self._to("error")(message)

    def stage(self, finish: bool = False) -> None:
        self._to("stage")(finish=finish)

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30) -> None:
        self._to("progress_bar")(cur_iter, total_iters, prefix, suffix, bar_length)

    def set_verbosity(self, verbosity: str) -> None:
        self._to("set_verbosity")(verbosity)


class _Sessions:
    """What is set up in esptool while at least one rig session runs it, in any thread: the
    :class:`_ThreadRouter` as its logger, and hex dumps switched off (below). The first session
    in sets them up, the last one out puts esptool back as it was.

    esptool's SLIP reader and writer build their trace text with an f-string around
    ``HexFormatter(data)`` *before* calling the trace function (loader.py ``slip_reader``:
    ``trace_function(f"... {HexFormatter(read_bytes)}")``), so every byte read is hex-formatted
    even with tracing off. Profiling a 4 MB read through the sim showed that formatting as most
    of esptool's CPU: 5.0 s of CPU and 10.7 s wall became 1.1 s and 2.8 s with it skipped. The
    rig never turns esptool's trace on, so while rig sessions run the formatter renders nothing;
    outside, esptool is untouched.
    """

    def __init__(self) -> None:
        from esptool import loader

        self._hex = getattr(loader, "HexFormatter", None)
        self._hex_str = getattr(self._hex, "__str__", None)
        self._lock = threading.Lock()
        self._count = 0
        self.router: _ThreadRouter | None = None

    def enter(self) -> _ThreadRouter:
        from esp_pylib.logger import EspLog
        from esptool.logger import EsptoolLogger

        with self._lock:
            if self._count == 0:
                outside = EspLog.instance
                self.router = _ThreadRouter(outside)
                # esptool's own installer (it wraps a TemplateLogger for esp-pylib), called on
                # its class: the ``log`` proxy has no ``set_logger`` once a router is installed.
                EsptoolLogger.set_logger(outside, self.router)
                if self._hex is not None:
                    self._hex.__str__ = lambda _self: ""
            self._count += 1
            return self.router

    def leave(self) -> None:
        from esp_pylib.logger import EspLog

        with self._lock:
            self._count -= 1
            if self._count == 0:
                EspLog.instance = self.router.outside
                self.router = None
                if self._hex is not None:
                    self._hex.__str__ = self._hex_str


_sessions = _Sessions()


@contextlib.contextmanager
def captured(progress: Progress | None = None) -> Iterator[CapturingLogger]:
    """Capture esptool's messages in this thread for the duration of the block (nested blocks:
    the innermost); other threads' messages go to their own captures."""
    logger = CapturingLogger(progress)
    stack = _sessions.enter().stack()
    stack.append(logger)
    try:
        yield logger
    finally:
        stack.remove(logger)
        _sessions.leave()
