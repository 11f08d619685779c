"""What every pin backend shares: state, idempotent close, one request per pin."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rig.hardware.pins import OutputPin, PinError

__all__ = ["BaseFactory", "BasePin"]


class BasePin:
    """State and lifecycle shared by the backends' pins.

    A backend implements :meth:`_drive` (put the line in the given active state) and
    :meth:`_free` (give the line back). ``set(False)`` on a closed pin is a harmless no-op - the
    pin was driven inactive when it was closed - so a safety net that releases everything twice
    never fails; ``set(True)`` on a closed pin is an error.
    """

    def __init__(self, key: Any, label: str, active_low: bool) -> None:
        self.key = key
        self.label = label
        self.active_low = active_low
        self.closed = False
        self._active = False
        self._lock = threading.RLock()
        self._on_close: Callable[[BasePin], None] | None = None

    def set(self, active: bool) -> None:
        active = bool(active)
        with self._lock:
            if self.closed:
                if active:
                    raise PinError(f"pin {self.label!r} is closed; request it again to drive it")
                return
            self._drive(active)
            self._active = active

    def get(self) -> bool:
        return self._active

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            error: BaseException | None = None
            try:
                self._drive(False)
                self._active = False
            except Exception as exc:  # still free the line, then report
                error = exc
            finally:
                try:
                    self._free()
                finally:
                    if self._on_close is not None:
                        self._on_close(self)
            if error is not None:
                raise PinError(
                    f"pin {self.label!r}: could not drive it inactive: {error}"
                ) from error

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("active" if self._active else "inactive")
        polarity = "active-low" if self.active_low else "active-high"
        return f"<{type(self).__name__} {self.label!r} {self.key!r} {polarity} {state}>"

    # -- backend hooks --------------------------------------------------------------------------
    def _drive(self, active: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _free(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class BaseFactory:
    """Keeps the live pins of one factory; a pin can be requested once until it is closed."""

    def __init__(self) -> None:
        self._live: dict[Any, BasePin] = {}
        self._lock = threading.RLock()
        self.closed = False

    def output(self, pin: int | str, *, active_low: bool, label: str) -> OutputPin:
        with self._lock:
            if self.closed:
                raise PinError(f"{type(self).__name__} is closed; cannot request pin {pin!r}")
            key = self._key(pin)
            if key in self._live:
                holder = self._live[key].label
                raise PinError(
                    f"pin {pin!r} is already in use by {holder!r}; each GPIO drives one relay "
                    f"channel (check the station config for a pin used twice)"
                )
            new = self._open(key, pin, active_low=bool(active_low), label=label)
            new._on_close = self._forget
            self._live[key] = new
            return new

    def close(self) -> None:
        """Close every live pin; each is tried even if another fails, then the first error."""
        with self._lock:
            self.closed = True
            errors: list[Exception] = []
            for pin in list(self._live.values()):
                try:
                    pin.close()
                except Exception as exc:
                    errors.append(exc)
            self._live.clear()
            self._shutdown()
        if errors:
            raise PinError("; ".join(str(e) for e in errors)) from errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self, pin: BasePin) -> None:
        with self._lock:
            if self._live.get(pin.key) is pin:
                del self._live[pin.key]

    # -- backend hooks --------------------------------------------------------------------------
    def _key(self, pin: int | str) -> Any:
        return pin

    def _open(self, key: Any, pin: int | str, *, active_low: bool, label: str) -> BasePin:
        raise NotImplementedError  # pragma: no cover - abstract

    def _shutdown(self) -> None:
        pass
