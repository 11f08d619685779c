"""Relays: named, logged, and always released.

A :class:`Relay` is one relay channel with a *role* on a slot (``io0``, ``power``, ``reset``...)
driven through an :class:`rig.pins.OutputPin`. ``close()`` / ``open()`` energise and de-energise
it (a contact across IO0-GND or EN-GND); ``press()`` / ``release()`` are the same for a relay
wired across a button; ``pulse()`` presses for a while. Every action is appended to a
:class:`RelayLog` with a timestamp from an injectable clock, so a test asserts the exact timing
diagram of a boot sequence without waiting for it.

A :class:`RelayBank` holds one slot's relays. Leaving its ``with`` block - normally, by an
exception, or by a signal turned into one - de-energises every relay.

Why so much care about releasing: a relay left energised holds a board in reset, in download
mode, or with its power button pressed, and **stock Raspberry Pi kernels keep GPIO outputs driven
after the process that drove them dies** - releasing a line does not return it to an input (the
Raspberry Pi kernel keeps released GPIO state by design). The layers of protection are:

1. ``with bank:`` and :meth:`RelayBank.release_all` (idempotent, never raises on a pin error);
2. :func:`install_safety_net`: SIGINT -> ``KeyboardInterrupt``, SIGTERM/SIGHUP ->
   :class:`Terminated`, so ``with`` blocks unwind on ``kill`` or a dropped SSH session, plus an
   ``atexit`` hook that releases every live bank if the program ends without doing so;
3. for the deaths no process can handle (SIGKILL, the OOM killer, a power cut): the kernel
   parameter ``dtparam=strict_gpiod`` (Raspberry Pi OS kernels >= 6.6; with it, lines requested
   through the GPIO character device revert to inputs when released, including when their
   process dies) and the boot unit ``contrib/systemd/rig-release-relays.service``, which runs
   ``rig relay --release-all``. strict_gpiod does nothing for RPi.GPIO, which writes the
   registers through /dev/gpiomem behind the kernel's back. See ``docs/gpio.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the hardware layer imports only the standard library at run time
    from rig.pins import OutputPin

__all__ = [
    "Relay",
    "RelayBank",
    "RelayEvent",
    "RelayLog",
    "Terminated",
    "install_safety_net",
    "live_banks",
    "release_everything",
    "safety_net_installed",
    "uninstall_safety_net",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayEvent:
    """One relay action: ``t`` from the log's clock, ``action`` the method name (or
    ``release-all`` when a bank released a relay that was still energised)."""

    t: float
    slot: str
    role: str
    action: str


@dataclass
class RelayLog:
    """Where a slot's relays record their actions. ``clock`` is the one time source."""

    slot: str = ""
    clock: Callable[[], float] = time.monotonic
    events: list[RelayEvent] = field(default_factory=list)

    def record(self, role: str, action: str) -> RelayEvent:
        event = RelayEvent(self.clock(), self.slot, role, action)
        self.events.append(event)
        return event


class Relay:
    """One relay channel. ``log`` is a :class:`RelayLog` (``None``: a private one)."""

    def __init__(
        self,
        role: str,
        pin: OutputPin,
        log: RelayLog | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.role = role
        self.pin = pin
        self.log = log if log is not None else RelayLog()
        self.sleep = sleep

    @property
    def is_closed(self) -> bool:
        """Energised (contact closed / button pressed), as last driven."""
        return self.pin.get()

    def _act(self, active: bool, action: str) -> None:
        self.pin.set(active)
        self.log.record(self.role, action)

    def close(self) -> None:
        """Energise: the contact closes (e.g. IO0 shorted to GND)."""
        self._act(True, "close")

    def open(self) -> None:
        """De-energise: the contact opens."""
        self._act(False, "open")

    def press(self) -> None:
        """Energise a relay wired across a button: the button is held down."""
        self._act(True, "press")

    def release(self) -> None:
        """De-energise a relay wired across a button: the button is let go."""
        self._act(False, "release")

    def pulse(self, seconds: float, sleep: Callable[[float], None] | None = None) -> None:
        """Press, wait ``seconds`` (through ``sleep``, default the relay's), release.

        The release happens even if the wait is interrupted (Ctrl-C, SIGTERM).
        """
        if seconds < 0:
            raise ValueError(f"pulse length must be >= 0, not {seconds}")
        self.press()
        try:
            (sleep or self.sleep)(seconds)
        finally:
            self.release()

    def __repr__(self) -> str:
        return f"<Relay {self.log.slot}:{self.role} {'closed' if self.is_closed else 'open'}>"


class RelayBank:
    """The relays of one slot, by role. A context manager that releases them on exit.

    A bank is *live* (known to :func:`release_everything` and the ``atexit`` hook) from its
    creation until :meth:`close`.
    """

    def __init__(self, slot_id: str, relays: dict[str, Relay]) -> None:
        self.slot_id = slot_id
        self.relays = dict(relays)
        self.closed = False
        _register(self)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.relays)

    def __getitem__(self, role: str) -> Relay:
        try:
            return self.relays[role]
        except KeyError:
            raise KeyError(
                f"slot {self.slot_id} has no relay {role!r} (wired: {', '.join(self.relays)})"
            ) from None

    def __contains__(self, role: object) -> bool:
        return role in self.relays

    def __iter__(self) -> Iterator[Relay]:
        return iter(self.relays.values())

    def release_all(self) -> list[Exception]:
        """De-energise every relay; each pin is tried even if another fails.

        Never raises for a pin error: the errors are logged and returned. Idempotent. SIGINT /
        SIGTERM arriving meanwhile (with the safety net) are held back until every pin has been
        tried, then raised.
        """
        errors: list[Exception] = []
        with _release_guard():
            for relay in self.relays.values():
                try:
                    was_closed = relay.pin.get()
                    relay.pin.set(False)
                    if was_closed:
                        relay.log.record(relay.role, "release-all")
                except Exception as exc:
                    log.error("slot %s: cannot release relay %s: %s", self.slot_id, relay.role, exc)
                    errors.append(exc)
        return errors

    def close(self) -> list[Exception]:
        """Release every relay, close (free) its pin, and forget the bank. Idempotent."""
        if self.closed:
            return []
        errors = self.release_all()
        with _release_guard():
            for relay in self.relays.values():
                try:
                    relay.pin.close()
                except Exception as exc:
                    log.error("slot %s: cannot close pin %s: %s", self.slot_id, relay.role, exc)
                    errors.append(exc)
            self.closed = True
            _unregister(self)
        return errors

    def __enter__(self) -> RelayBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()

    def __repr__(self) -> str:
        state = ", ".join(f"{r.role}={'closed' if r.is_closed else 'open'}" for r in self)
        return f"<RelayBank {self.slot_id} {state}>"


# ------------------------------------------------------------------------------------------------
# Registry of live banks, safety net
# ------------------------------------------------------------------------------------------------
_live: dict[int, RelayBank] = {}
_live_lock = threading.RLock()


def _register(bank: RelayBank) -> None:
    # Strong references on purpose: a bank dropped without close() must still be released at
    # exit, or its relays stay energised.
    with _live_lock:
        _live[id(bank)] = bank


def _unregister(bank: RelayBank) -> None:
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


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM (and SIGHUP) once :func:`install_safety_net` ran.

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


# SIGHUP is what a dropped SSH session or a closed terminal sends to the foreground process:
# at a bench that is as likely as Ctrl-C, and its default action kills without unwinding.
_TERMINATING = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
_HANDLED = (signal.SIGINT, *_TERMINATING)

_net_lock = threading.Lock()
_previous: dict[int, object] = {}
_atexit_registered = False
_guard = threading.local()
_pending: list[int] = []


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _handler(signum: int, frame: object) -> None:
    if getattr(_guard, "depth", 0) > 0:
        _pending.append(signum)  # raise once every relay has been released
        return
    _raise_for(signum)


@contextlib.contextmanager
def _release_guard():
    """Hold back signal exceptions while releasing, so one signal cannot skip a pin.

    Python runs signal handlers in the main thread between bytecodes; a handler that raised in
    the middle of the release loop would leave the remaining relays energised.
    """
    _guard.depth = getattr(_guard, "depth", 0) + 1
    try:
        yield
    finally:
        _guard.depth -= 1
        if _guard.depth == 0 and _pending and threading.current_thread() is threading.main_thread():
            signum = _pending[0]
            _pending.clear()
            _raise_for(signum)


def _atexit_release() -> None:
    errors = release_everything()
    if errors:
        log.error("relays not released at exit: %s", "; ".join(map(str, errors)))


def install_safety_net() -> bool:
    """Release relays on exit and turn SIGINT/SIGTERM/SIGHUP into exceptions. Idempotent.

    Registers an ``atexit`` hook that releases every live bank. In the main thread it also
    installs signal handlers (SIGINT -> ``KeyboardInterrupt``, SIGTERM/SIGHUP ->
    :class:`Terminated`) and remembers the previous ones for :func:`uninstall_safety_net`.
    Python only lets the main thread set signal handlers; from another thread only the
    ``atexit`` hook is installed and ``False`` is returned.
    """
    global _atexit_registered
    with _net_lock:
        if not _atexit_registered:
            atexit.register(_atexit_release)
            _atexit_registered = True
        if _previous:
            return True
        if threading.current_thread() is not threading.main_thread():
            log.warning("safety net: not in the main thread, signals are not handled")
            return False
        for signum in _HANDLED:
            _previous[signum] = signal.signal(signum, _handler)
        return True


def uninstall_safety_net() -> None:
    """Restore the signal handlers found by :func:`install_safety_net`; drop the atexit hook."""
    global _atexit_registered
    with _net_lock:
        for signum, previous in _previous.items():
            # signal.signal() returns None for a handler installed from C; the default is
            # the best we can put back then.
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        _previous.clear()
        if _atexit_registered:
            atexit.unregister(_atexit_release)
            _atexit_registered = False


def safety_net_installed() -> bool:
    return bool(_previous)
