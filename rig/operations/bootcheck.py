"""The boot check: boot the firmware from flash and wait for its console pattern.

A written image that verifies by MD5 can still not boot (a wrong bootloader, a partition table
that points elsewhere, an app for another board); only the console says. The firmware catalog
names each firmware's pattern; :data:`GENERIC_BOOT` is ESP-IDF's app start for a firmware the
catalog does not know, :data:`BOOT_FAILURE` the ROM's and the bootloader's complaints.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import serial

from rig.board.protocols import BoardHandle
from rig.errors import OperationError, Transient

__all__ = ["BOOT_FAILURE", "GENERIC_BOOT", "BootCheck", "ConsoleLost", "boot_check"]

# A firmware that boots prints IDF's app start; one that does not, the ROM's complaints.
GENERIC_BOOT = r"(cpu_start|app_start): (Pro cpu start|Project name)"
BOOT_FAILURE = re.compile(r"invalid header|csum err|flash read err|No bootable app")


class ConsoleLost(OperationError, Transient):
    """The board's console port failed during the boot check (unplugged, a bridge that went
    away): worth another attempt once it is back."""


@dataclass(frozen=True)
class BootCheck:
    ok: bool
    pattern: str
    seconds: float
    console: str


def boot_check(board: BoardHandle, pattern: str, timeout: float | None = None) -> BootCheck:
    """Boot the firmware (``run`` sequence) and wait for ``pattern`` on the console.

    A port error (pyserial's ``SerialException`` is an ``OSError``) becomes :class:`ConsoleLost`,
    so the retry logic sees a rig error that says it is transient."""
    timeout = timeout or board.type.boot_timeout
    t0 = time.monotonic()
    try:
        with board.console() as ser:
            board.run()
            seen, text = board.expect(ser, pattern, timeout)
    except (OSError, serial.SerialException) as err:
        raise ConsoleLost(f"{board.slot_id}: console lost during the boot check: {err}") from err
    return BootCheck(seen, pattern, time.monotonic() - t0, text)
