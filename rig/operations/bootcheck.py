"""The boot check: boot the firmware from flash and read its console.

A written image that verifies by MD5 can still not boot (a wrong bootloader, a partition table
that points elsewhere, otadata selecting another app, an app for another board); only the
console says. Two checks, both reading the console at the board's console baud after ``run``:

* **a pattern** (a catalog entry's ``console`` regex): it shows within ``boot_timeout``;
* **the default check** (a firmware without a pattern, a vendor dump): ESP-IDF's second-stage
  bootloader logs ``Loaded app from partition at offset 0x..`` (``bootloader_utility.c``) - the
  app it starts must be at the expected partition - and then, for ``boot_settle`` seconds, no
  panic (ESP-IDF's panic handler: ``Guru Meditation Error``, ``abort() was called``; the
  brownout and task watchdog messages; ``Rebooting...``) and no reset (a new ROM banner
  ``rst:0x..``: the chip restarted, the start of a reset loop).

A failed check says why, from the console: the ROM's or bootloader's complaint
(:data:`BOOT_FAILURE`), a crash or reset line, or the simulator's note that its board does not
execute firmware (:data:`rig.images.console.SIMULATED_APP_RE`: the simulated board says so on
its console; the rig never asks whether a slot is simulated).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import serial

from rig.board.protocols import BoardHandle
from rig.errors import OperationError, Transient
from rig.images.console import SIMULATED_APP_RE

__all__ = [
    "BOOT_FAILURE",
    "CRASH",
    "LOADED",
    "RESET",
    "BootCheck",
    "ConsoleLost",
    "boot_check",
]

# Whole lines (up to their end: the console is read in chunks, and a stop on half a line would
# read "offset 0x1" for "offset 0x10000").
# The ROM's and the bootloader's complaints: nothing boots.
BOOT_FAILURE = re.compile(
    r"(?:invalid header|csum err|flash read err|No bootable app)[^\r\n]*\r?\n"
)
LOADED = re.compile(r"Loaded app from partition at offset (0x[0-9a-fA-F]+)\r?\n")
CRASH = re.compile(
    r"(?:Guru Meditation Error|abort\(\) was called|Brownout detector was triggered"
    r"|Task watchdog got triggered|Rebooting\.\.\.)[^\r\n]*\r?\n"
)
RESET = re.compile(r"rst:(0x[0-9a-fA-F]+) \((\w+)\),boot:")


class ConsoleLost(OperationError, Transient):
    """The board's console port failed during the boot check (unplugged, a bridge that went
    away): worth another attempt once it is back."""


@dataclass(frozen=True)
class BootCheck:
    """What a boot check saw: ``ok``, the pattern (None: the default check), the seconds it
    took, the console, and ``problem``: why it failed (None if ok)."""

    ok: bool
    pattern: str | None
    seconds: float
    console: str
    problem: str | None = None


def boot_check(
    board: BoardHandle,
    pattern: str | None,
    timeout: float | None = None,
    *,
    app_offset: int | None = None,
) -> BootCheck:
    """Boot the firmware (``run`` sequence) and check its console: ``pattern`` shows, or (no
    pattern) the default check with the app expected at ``app_offset`` (None: any partition).

    A port error (pyserial's ``SerialException`` is an ``OSError``) becomes :class:`ConsoleLost`,
    so the retry logic sees a rig error that says it is transient."""
    timeout = timeout or board.type.boot_timeout
    t0 = time.monotonic()
    try:
        with board.console() as ser:
            board.run()
            if pattern is not None:
                seen, text = board.expect(ser, pattern, timeout)
                problem = None if seen else _pattern_problem(pattern, text)
            else:
                text = _default_console(board, ser, timeout)
                problem = _default_problem(text, app_offset)
    except (OSError, serial.SerialException) as err:
        raise ConsoleLost(f"{board.slot_id}: console lost during the boot check: {err}") from err
    return BootCheck(problem is None, pattern, time.monotonic() - t0, text, problem)


def _default_console(board: BoardHandle, ser: serial.SerialBase, timeout: float) -> str:
    """The console until the bootloader loads an app (or gives up), then ``boot_settle``
    seconds more unless the app crashes or resets first."""
    _, text = board.expect(ser, f"{LOADED.pattern}|{BOOT_FAILURE.pattern}", timeout)
    loaded = LOADED.search(text)
    if loaded is not None and not (
        CRASH.search(text, loaded.end()) or RESET.search(text, loaded.end())
    ):
        _, more = board.expect(ser, f"{CRASH.pattern}|{RESET.pattern}", board.type.boot_settle)
        text += more
    return text


def _default_problem(text: str, app_offset: int | None) -> str | None:
    loaded = LOADED.search(text)
    if loaded is None:
        failure = BOOT_FAILURE.search(text)
        if failure is not None:
            return f"nothing booted: {failure.group(0).strip()}"
        return (
            "the bootloader never said it loaded an app (a bootloader built with its log off "
            "prints nothing: give the firmware a console pattern)" + _explained(text)
        )
    offset = int(loaded.group(1), 16)
    if app_offset is not None and offset != app_offset:
        return (
            f"the bootloader loaded the app at {offset:#x}, not the one at {app_offset:#x} "
            "(otadata selects another app partition)"
        )
    after = text[loaded.end() :]
    crash, reset = CRASH.search(after), RESET.search(after)
    if crash is not None and (reset is None or crash.start() < reset.start()):
        return f"the app at {offset:#x} crashed: {crash.group(0).strip()}"
    if reset is not None:
        return (
            f"the board reset (rst:{reset.group(1)} {reset.group(2)}) after the app at "
            f"{offset:#x} started: a reset loop"
        )
    return None


def _pattern_problem(pattern: str, text: str) -> str:
    return f"the console never showed {pattern!r}" + _explained(text)


def _explained(text: str) -> str:
    """Why the console did not show what was expected, if it says: the simulated board's note,
    the ROM's or bootloader's complaint, a crash, a reset after the app started."""
    note = SIMULATED_APP_RE.search(text)
    if note is not None:
        return (
            "; the console came from a simulated board that does not execute firmware: "
            f"{note.group(0).strip()}"
        )
    reason = BOOT_FAILURE.search(text) or CRASH.search(text)
    if reason is not None:
        return f"; the console shows: {reason.group(0).strip()}"
    loaded = LOADED.search(text)
    if loaded is not None and RESET.search(text, loaded.end()):
        return "; the board reset after the app started (a reset loop)"
    return ""
