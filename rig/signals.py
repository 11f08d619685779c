"""Stop signals: the one place that touches ``signal.signal``.

A person stops the rig with Ctrl-C (SIGINT), a service manager with SIGTERM, and a dropped SSH
session or a closed terminal sends SIGHUP to the foreground process - at a bench that is as likely
as Ctrl-C, and the default action of SIGTERM and SIGHUP kills without unwinding, leaving relays
energised (``rig.hardware.relays``). So the rig turns them into exceptions that unwind ``with``
blocks and ``finally`` clauses, or routes them to a stop request:

* :class:`Terminated` - what SIGTERM/SIGHUP become (SIGINT becomes ``KeyboardInterrupt``);
* :func:`unwind` - the handler that raises them, except inside :func:`held_back` (a relay bank
  releasing its relays: one signal must not skip a pin), where the signal waits for the block;
* :func:`install` / :func:`restore` - handlers for good (the safety net of
  ``rig.hardware.safety``); :func:`ignore` - a batch worker leaves Ctrl-C to its parent;
* :func:`routed` - for a block, signals call ``handler(signum)`` (a batch run turns them into
  stop requests; ``rig sim`` into a stop event);
* :func:`deferred` - for a block, signals wait and are handed to the previous handler afterwards
  (a batch worker closing its slot and writing its result).

Python runs signal handlers in the main thread only, and only the main thread may set them: from
another thread :func:`install` and :func:`routed` do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "STOP_SIGNALS",
    "TERMINATING",
    "Terminated",
    "deferred",
    "held_back",
    "ignore",
    "in_main_thread",
    "install",
    "raise_for",
    "restore",
    "routed",
    "unwind",
]

# SIGHUP is missing on some platforms (Windows); the rig runs on Linux, but stays importable.
TERMINATING = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
STOP_SIGNALS = (signal.SIGINT, *TERMINATING)

Handlers = dict[int, Any]  # signum -> what signal.signal() returned for it


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM (and SIGHUP) by :func:`unwind`.

    A ``SystemExit`` (hence a ``BaseException``): ``except Exception`` does not swallow it,
    ``with`` blocks and ``finally`` clauses unwind, and if nothing catches it the interpreter
    runs ``atexit`` and exits quietly with status ``128 + signum`` (143 for SIGTERM), the status
    a shell reports for a process killed by that signal.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def raise_for(signum: int) -> None:
    """SIGINT -> ``KeyboardInterrupt``; SIGTERM/SIGHUP -> :class:`Terminated`."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


_guard = threading.local()
_pending: list[int] = []


def unwind(signum: int, frame: object) -> None:
    """The safety net's handler: raise (:func:`raise_for`), or hold the signal back until the
    :func:`held_back` block around the current code ends."""
    if getattr(_guard, "depth", 0) > 0:
        _pending.append(signum)  # raised once every relay has been released
        return
    raise_for(signum)


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """Hold back what :func:`unwind` would raise until the block is done, then raise it.

    Python runs signal handlers in the main thread between bytecodes; a handler that raised in
    the middle of a relay bank's release loop would leave the remaining relays energised.
    """
    _guard.depth = getattr(_guard, "depth", 0) + 1
    try:
        yield
    finally:
        _guard.depth -= 1
        if _guard.depth == 0 and _pending and in_main_thread():
            signum = _pending[0]
            _pending.clear()
            raise_for(signum)


def install(handler: Callable[[int, Any], Any], signals: Iterable[int] = STOP_SIGNALS) -> Handlers:
    """Set ``handler`` for ``signals`` (main thread only); the previous handlers, for
    :func:`restore`. From another thread nothing is set and ``{}`` is returned."""
    if not in_main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in signals}


def restore(previous: Handlers) -> None:
    """Put back handlers :func:`install` replaced. ``signal.signal()`` returns None for a handler
    installed from C; the default is the best that can be put back then."""
    for signum, old in previous.items():
        signal.signal(signum, old if old is not None else signal.SIG_DFL)


def ignore(signum: int) -> None:
    signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def routed(
    handler: Callable[[int], None], signals: Iterable[int] = STOP_SIGNALS
) -> Iterator[Handlers]:
    """Route ``signals`` to ``handler(signum)`` for the block (main thread only: Python delivers
    signals there), then put the previous handlers back. Yields those handlers."""
    previous = install(lambda signum, _frame: handler(signum), signals)
    try:
        yield previous
    finally:
        restore(previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back (main thread) for the block: e.g. while a slot is closed
    and its result written, which a second signal must not cut short. A signal that came
    meanwhile is handed to the previous handler afterwards."""
    pending: list[int] = []
    previous: Handlers = {}
    try:
        with routed(pending.append) as previous:
            yield
    finally:
        for signum in dict.fromkeys(pending):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
