"""Relays: named, logged, and always released.

A :class:`Relay` is one relay channel with a *role* on a slot (``io0``, ``power``, ``reset``...)
driven through an :class:`rig.hardware.pins.OutputPin`. ``close()`` / ``open()`` energise and
de-energise it (a contact across IO0-GND or EN-GND); ``press()`` / ``release()`` are the same
for a relay wired across a button; ``pulse()`` presses for a while. Every action is appended to a
:class:`RelayLog` with a timestamp from its :class:`~rig.clock.Clock` (the one time source of the
log and of the relays' waits), so a test asserts the exact timing diagram of a boot sequence
without waiting for it (:class:`rig.clock.FakeClock`).

A :class:`RelayBank` holds one slot's relays. Leaving its ``with`` block - normally, by an
exception, or by a signal turned into one - de-energises every relay.

Why so much care about releasing: a relay left energised holds a board in reset, in download
mode, or with its power button pressed, and **stock Raspberry Pi kernels keep GPIO outputs driven
after the process that drove them dies** - releasing a line does not return it to an input (the
Raspberry Pi kernel keeps released GPIO state by design). The layers of protection are:

1. ``with bank:`` and :meth:`RelayBank.release_all` (idempotent, never raises on a pin error);
2. :func:`rig.hardware.safety.install_safety_net`: SIGINT -> ``KeyboardInterrupt``,
   SIGTERM/SIGHUP -> :class:`rig.signals.Terminated`, so ``with`` blocks unwind on ``kill`` or a
   dropped SSH session, plus an ``atexit`` hook that releases every live bank if the program
   ends without doing so;
3. for the deaths no process can handle (SIGKILL, the OOM killer, a power cut): the kernel
   parameter ``dtparam=strict_gpiod`` (Raspberry Pi OS kernels >= 6.6; with it, lines requested
   through the GPIO character device revert to inputs when released, including when their
   process dies) and the boot unit ``contrib/systemd/rig-release-relays.service``, which runs
   ``rig relay --release-all``. strict_gpiod does nothing for RPi.GPIO, which writes the
   registers through /dev/gpiomem behind the kernel's back. See ``docs/gpio.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from rig.clock import SYSTEM, Clock
from rig.hardware import safety
from rig.hardware.pins import OutputPin
from rig.signals import held_back

__all__ = ["Relay", "RelayBank", "RelayEvent", "RelayLog"]

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
    """Where a slot's relays record their actions. ``clock`` is the one time source: the log's
    timestamps and the waits of the relays that record here."""

    slot: str = ""
    clock: Clock = SYSTEM
    events: list[RelayEvent] = field(default_factory=list)

    def record(self, role: str, action: str) -> RelayEvent:
        event = RelayEvent(self.clock.monotonic(), self.slot, role, action)
        self.events.append(event)
        return event


class Relay:
    """One relay channel. ``log`` is a :class:`RelayLog` (``None``: a private one); ``clock``
    times :meth:`pulse` (default: the log's clock, so the log and the waits agree)."""

    def __init__(
        self, role: str, pin: OutputPin, log: RelayLog | None = None, *, clock: Clock | None = None
    ) -> None:
        self.role = role
        self.pin = pin
        self.log = log if log is not None else RelayLog()
        self.clock = clock if clock is not None else self.log.clock

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

    def pulse(self, seconds: float) -> None:
        """Press, wait ``seconds`` (on the relay's clock), release.

        The release happens even if the wait is interrupted (Ctrl-C, SIGTERM).
        """
        if seconds < 0:
            raise ValueError(f"pulse length must be >= 0, not {seconds}")
        self.press()
        try:
            self.clock.sleep(seconds)
        finally:
            self.release()

    def __repr__(self) -> str:
        return f"<Relay {self.log.slot}:{self.role} {'closed' if self.is_closed else 'open'}>"


class RelayBank:
    """The relays of one slot, by role. A context manager that releases them on exit.

    A bank is *live* (known to :func:`rig.hardware.safety.release_everything` and the ``atexit``
    hook) from its creation until :meth:`close`.
    """

    def __init__(self, slot_id: str, relays: dict[str, Relay]) -> None:
        self.slot_id = slot_id
        self.relays = dict(relays)
        self.closed = False
        safety.register(self)

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
        with held_back():
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
        with held_back():
            for relay in self.relays.values():
                try:
                    relay.pin.close()
                except Exception as exc:
                    log.error("slot %s: cannot close pin %s: %s", self.slot_id, relay.role, exc)
                    errors.append(exc)
            self.closed = True
            safety.unregister(self)
        return errors

    def __enter__(self) -> RelayBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()

    def __repr__(self) -> str:
        state = ", ".join(f"{r.role}={'closed' if r.is_closed else 'open'}" for r in self)
        return f"<RelayBank {self.slot_id} {state}>"
