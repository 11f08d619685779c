"""Serial ports by a stable identity, so a replugged USB bridge is found again.

A slot names its port as a pyserial URL or device path (``/dev/serial/by-id/...`` is stable
across replugs: udev names it after the bridge's USB serial number), or by the USB serial number
itself, matched through pyserial's port listing each time the port is opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from serial.tools import list_ports


class PortNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class PortSpec:
    url: str | None = None
    usb_serial: str | None = None

    def resolve(self) -> str:
        """The URL or device path to open now."""
        if self.url:
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
