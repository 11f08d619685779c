"""The console-script convention: what a synthetic firmware "prints", carried inside its image.

The simulator cannot execute Xtensa code, so what a firmware prints is carried as data inside its
image. Right after the 256-byte ``esp_app_desc_t`` at the start of the first DROM segment sits::

    b"RIGCONSOLE\\0"  LE16 length  UTF-8 text (lines joined by "\\n")

:func:`console_block` makes that block, :func:`read_console` extracts it; the simulated board
"runs" a firmware by printing those lines after the ESP-IDF startup log. A last line
``"\\0reset 0xc"`` (:data:`RESET_DIRECTIVE`) says that the firmware then resets the chip with that
reset reason (a panic's ``esp_restart()`` is ``rst:0xc (SW_CPU_RESET)``), so the board loops as a
crashing firmware does. An image without the block (a real firmware) carries no script: the
simulator then looks its sha256 up in its table of known firmware behaviours, and if it is not
there the console says so with :data:`SIMULATED_APP_NOTE` (the simulated board speaking, not the
firmware: a real board's console never prints it).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .app_desc import APP_DESC_SIZE, first_drom_segment
from .esp_image import EspImage

__all__ = [
    "CONSOLE_MAGIC",
    "RESET_DIRECTIVE",
    "SIMULATED_APP_NOTE",
    "SIMULATED_APP_RE",
    "ConsoleScript",
    "console_block",
    "console_script",
    "read_console",
]

CONSOLE_MAGIC = b"RIGCONSOLE\x00"
RESET_DIRECTIVE = "\x00reset "
_CONSOLE_LEN = struct.Struct("<H")

# What a simulated board prints after loading an app it has no behaviour for.
SIMULATED_APP_NOTE = (
    "[rig sim] a simulated ESP32 does not execute firmware: the app at {offset:#x} (sha256 "
    "{sha256}) is not in the simulator's table of known firmware behaviours, so its console "
    "ends here"
)
SIMULATED_APP_RE = re.compile(r"\[rig sim\] a simulated ESP32 does not execute firmware[^\r\n]*")


@dataclass(frozen=True)
class ConsoleScript:
    """The lines a synthetic firmware prints, and the reset reason it then resets with (None:
    it keeps running)."""

    lines: tuple[str, ...]
    reset_reason: int | None = None


def console_block(lines: tuple[str, ...] | list[str], *, reset_reason: int | None = None) -> bytes:
    """Encode a console script (the block :func:`read_console` reads), 4-byte aligned."""
    lines = list(lines)
    if reset_reason is not None:
        lines.append(f"{RESET_DIRECTIVE}{reset_reason:#x}")
    text = "\n".join(lines).encode("utf-8")
    if len(text) > 0xFFFF:
        raise ValueError("console script longer than 65535 bytes")
    block = CONSOLE_MAGIC + _CONSOLE_LEN.pack(len(text)) + text
    return block + b"\x00" * (-len(block) % 4)


def read_console(image: EspImage) -> ConsoleScript | None:
    """The console script carried by an app image, or None if it carries none."""
    data = first_drom_segment(image)
    if data is None:
        return None
    at = APP_DESC_SIZE
    if data[at : at + len(CONSOLE_MAGIC)] != CONSOLE_MAGIC:
        return None
    at += len(CONSOLE_MAGIC)
    if at + _CONSOLE_LEN.size > len(data):
        return None
    (length,) = _CONSOLE_LEN.unpack_from(data, at)
    at += _CONSOLE_LEN.size
    if at + length > len(data):
        return None
    text = data[at : at + length].decode("utf-8", errors="replace")
    lines = text.split("\n") if text else []
    if lines and lines[-1].startswith(RESET_DIRECTIVE):
        return ConsoleScript(tuple(lines[:-1]), int(lines[-1][len(RESET_DIRECTIVE) :], 0))
    return ConsoleScript(tuple(lines))


def console_script(image: EspImage) -> list[str] | None:
    """The console lines carried by an app image, or None if it carries none."""
    script = read_console(image)
    return None if script is None else list(script.lines)
