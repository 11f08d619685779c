"""Serial ports by URL, path or USB serial number (found again after a replug)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rig.hardware import ports
from rig.hardware.ports import PortNotFound, PortSpec


def fake_ports(monkeypatch, *listing):
    monkeypatch.setattr(
        ports.list_ports,
        "comports",
        lambda: [SimpleNamespace(device=d, serial_number=s) for d, s in listing],
    )


def test_url_and_path_are_used_as_given():
    assert PortSpec(url="socket://127.0.0.1:4000").resolve() == "socket://127.0.0.1:4000"
    path = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
    assert PortSpec(url=path).resolve() == path


def test_usb_serial_is_looked_up_at_every_open(monkeypatch):
    spec = PortSpec(usb_serial="A50285BI")
    fake_ports(monkeypatch, ("/dev/ttyUSB0", "OTHER"), ("/dev/ttyUSB1", "A50285BI"))
    assert spec.resolve() == "/dev/ttyUSB1"
    fake_ports(monkeypatch, ("/dev/ttyUSB3", "A50285BI"))  # replugged, new name
    assert spec.resolve() == "/dev/ttyUSB3"


def test_usb_serial_missing_or_ambiguous_is_a_clear_error(monkeypatch):
    spec = PortSpec(usb_serial="A50285BI")
    fake_ports(monkeypatch, ("/dev/ttyUSB0", "OTHER"))
    with pytest.raises(PortNotFound, match="no USB serial port with serial number 'A50285BI'"):
        spec.resolve()
    fake_ports(monkeypatch, ("/dev/ttyUSB0", "A50285BI"), ("/dev/ttyUSB1", "A50285BI"))
    with pytest.raises(PortNotFound, match="several ports"):
        spec.resolve()
