"""Which distribution's ``serial/`` package this environment runs: pyserial or pyserial-labgrid.

labgrid depends on ``pyserial-labgrid``, a fork of pyserial 3.5 that installs the same ``serial/``
files; whichever pip installed last wins, silently, and uninstalling either removes files the
other needs. The fork differs only in ``serial/rfc2217.py``'s client: an unchanged option is not
negotiated again, and setting the read timeout no longer renegotiates the port settings (esptool
changes it twice per command; each renegotiation waits >= 2 x 50 ms for acknowledgements). Both
run every RFC 2217 path of the rig (tests/labgrid/test_serial_packages.py); the lab extra installs
the fork last (Makefile, docs/lab.md "pyserial").
"""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

__all__ = ["DISTRIBUTIONS", "serial_distribution"]

DISTRIBUTIONS = ("pyserial-labgrid", "pyserial")
FILE = "serial/rfc2217.py"


def serial_distribution() -> str | None:
    """The distribution whose recorded ``serial/rfc2217.py`` is the one Python imports (by the
    sha256 in its RECORD), or None when neither matches (a copy put first on the path)."""
    import serial.rfc2217

    data = Path(serial.rfc2217.__file__).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    for name in DISTRIBUTIONS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for entry in files:
            if str(entry) == FILE and entry.hash is not None and entry.hash.value == digest:
                return name
    return None
