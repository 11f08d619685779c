"""The console-script convention: what a synthetic firmware "prints", carried inside its image.

The simulator cannot execute Xtensa code, so what a firmware prints is carried as data inside its
image. Right after the 256-byte ``esp_app_desc_t`` at the start of the first DROM segment sits::

    b"RIGCONSOLE\\0"  LE16 length  UTF-8 text (lines joined by "\\n")

:func:`console_block` makes that block, :func:`console_script` extracts it; the simulated board
"runs" a firmware by printing those lines after the ESP-IDF startup log. An image without the
block (e.g. a real firmware) boots silently.
"""

from __future__ import annotations

import struct

from .app_desc import APP_DESC_SIZE, first_drom_segment
from .esp_image import EspImage

__all__ = ["CONSOLE_MAGIC", "console_block", "console_script"]

CONSOLE_MAGIC = b"RIGCONSOLE\x00"
_CONSOLE_LEN = struct.Struct("<H")


def console_block(lines: tuple[str, ...] | list[str]) -> bytes:
    """Encode a console script (the block :func:`console_script` reads), 4-byte aligned."""
    text = "\n".join(lines).encode("utf-8")
    if len(text) > 0xFFFF:
        raise ValueError("console script longer than 65535 bytes")
    block = CONSOLE_MAGIC + _CONSOLE_LEN.pack(len(text)) + text
    return block + b"\x00" * (-len(block) % 4)


def console_script(image: EspImage) -> list[str] | None:
    """The console lines carried by an app image, or None if it carries none."""
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
    return text.split("\n") if text else []
