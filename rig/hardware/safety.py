"""The safety net: every live relay bank is released at exit and on a stop signal.

A relay left energised holds a board in reset, in download mode, or with its power button
pressed, and stock Raspberry Pi kernels keep GPIO outputs driven after the process that drove them
dies (see :mod:`rig.hardware.relays` for the layers of protection). This module keeps the
registry of live banks - :class:`~rig.hardware.relays.RelayBank` registers itself when it is
made and leaves when it is closed - and :func:`install_safety_net`: SIGINT ->
``KeyboardInterrupt``, SIGTERM/SIGHUP -> :class:`rig.signals.Terminated`, so ``with`` blocks
unwind on ``kill`` or a dropped SSH session, plus an ``atexit`` hook that releases every live bank
if the program ends without doing so.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable
from typing import Protocol

from rig import signals

__all__ = [
    "install_safety_net",
    "live_banks",
    "register",
    "release_everything",
    "safety_net_installed",
    "uninstall_safety_net",
    "unregister",
]

log = logging.getLogger(__name__)


class RelayBank(Protocol):
    """What the registry needs of a bank (:class:`rig.hardware.relays.RelayBank`, which
    registers itself): to release every relay, never raising for a pin error."""

    def release_all(self) -> list[Exception]: ...


_live: dict[int, RelayBank] = {}
_live_lock = threading.RLock()


def register(bank: RelayBank) -> None:
    # Strong references on purpose: a bank dropped without close() must still be released at
    # exit, or its relays stay energised.
    with _live_lock:
        _live[id(bank)] = bank


def unregister(bank: RelayBank) -> None:
    with _live_lock:
        _live.pop(id(bank), None)


def live_banks() -> list[RelayBank]:
    with _live_lock:
        return list(_live.values())


def release_everything() -> list[Exception]:
    """De-energise every relay of every live bank in this process (never raises on pin errors).

    ``rig relay --release-all`` builds the station's banks - with gpiod, requesting a line
    already drives it inactive - then calls this.
    """
    errors: list[Exception] = []
    for bank in live_banks():
        errors.extend(bank.release_all())
    return errors


_net_lock = threading.Lock()
_previous: signals.Handlers = {}
_atexit_registered = False


def _atexit_release() -> None:
    errors = release_everything()
    if errors:
        log.error("relays not released at exit: %s", "; ".join(map(str, errors)))


def install_safety_net(handle: Iterable[int] = signals.STOP_SIGNALS) -> bool:
    """Release relays on exit and turn stop signals into exceptions. Idempotent.

    Registers an ``atexit`` hook that releases every live bank. In the main thread it also sets
    :func:`rig.signals.unwind` for ``handle`` (default SIGINT -> ``KeyboardInterrupt``,
    SIGTERM/SIGHUP -> :class:`~rig.signals.Terminated`) and remembers the previous handlers for
    :func:`uninstall_safety_net`. Python only lets the main thread set signal handlers; from
    another thread only the ``atexit`` hook is installed and ``False`` is returned.
    """
    global _atexit_registered
    with _net_lock:
        if not _atexit_registered:
            atexit.register(_atexit_release)
            _atexit_registered = True
        if _previous:
            return True
        if not signals.in_main_thread():
            log.warning("safety net: not in the main thread, signals are not handled")
            return False
        _previous.update(signals.install(signals.unwind, handle))
        return True


def uninstall_safety_net() -> None:
    """Restore the signal handlers found by :func:`install_safety_net`; drop the atexit hook."""
    global _atexit_registered
    with _net_lock:
        signals.restore(_previous)
        _previous.clear()
        if _atexit_registered:
            atexit.unregister(_atexit_release)
            _atexit_registered = False


def safety_net_installed() -> bool:
    return bool(_previous)
