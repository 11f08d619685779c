"""Serial ports by a stable identity, so a replugged USB bridge is found again.

A slot names its port as a pyserial URL or device path (``/dev/serial/by-id/...`` is stable
across replugs: udev names it after the bridge's USB serial number), or by the USB serial number
itself, matched through pyserial's port listing each time the port is opened.

A replugged bridge needs a moment to enumerate again (the by-id link is removed at the unplug
and re-created ~1-2 s later); ``reappear`` is how long :meth:`PortSpec.resolve` waits for a
missing device path or USB serial number to come back before it gives up.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from serial.tools import list_ports

from rig.errors import OperationError, Transient


class PortNotFound(OperationError, Transient):
    """The slot's serial port is not there (unplugged, re-enumerating, another board's serial
    number): worth another attempt, which waits for it again."""


@dataclass(frozen=True)
class PortSpec:
    url: str | None = None
    usb_serial: str | None = None
    reappear: float = 0.0  # seconds to wait for a missing port to come back (0: don't wait)

    def resolve(self) -> str:
        """The URL or device path to open now (waiting up to ``reappear`` for it to exist)."""
        deadline = time.monotonic() + self.reappear
        while True:
            try:
                return self._resolve_now()
            except PortNotFound:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _resolve_now(self) -> str:
        if self.url:
            if self.reappear and self.url.startswith("/") and not os.path.exists(self.url):
                raise PortNotFound(
                    f"{self.url} is not there (unplugged?) and did not come back "
                    f"within {self.reappear:g} s"
                )
            return self.url
        if self.usb_serial:
            matches = [
                p.device for p in list_ports.comports() if p.serial_number == self.usb_serial
            ]
            if not matches:
                raise PortNotFound(
                    f"no USB serial port with serial number {self.usb_serial!r} is connected"
                )
            if len(matches) > 1:
                raise PortNotFound(
                    f"several ports have USB serial number {self.usb_serial!r}: {matches}"
                )
            return matches[0]
        raise PortNotFound("no port configured")

    def __str__(self) -> str:
        return self.url or f"usb-serial:{self.usb_serial}"
