"""SLIP framing as the ESP32 ROM loader, the flasher stub and esptool use it.

Every packet is ``C0 <escaped payload> C0``; inside a packet ``C0`` is sent as ``DB DC`` and
``DB`` as ``DB DD`` (esptool ``ESPLoader.write`` / ``slip_reader``; fact sheet §1.1). Bytes that
arrive outside a packet are line noise to the chip's receiver and are dropped, as the ROM does.
"""

from __future__ import annotations

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD


def encode(payload: bytes) -> bytes:
    """One SLIP frame around ``payload`` (escaping is done on the finished packet)."""
    return b"\xc0" + payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SlipError(ValueError):
    """A frame that cannot be decoded (a bad escape sequence)."""


class SlipDecoder:
    """Incremental decoder: feed it raw bytes in any chunking, get complete packets back.

    A bad escape (``DB`` followed by anything but ``DC``/``DD``) poisons only the packet it is in;
    the decoder reports it as ``None`` in the returned list so the chip can answer with an error or
    ignore it, and resynchronises on the next ``C0``.
    """

    def __init__(self) -> None:
        self._buf: bytearray | None = None  # None: outside a packet

    def reset(self) -> None:
        self._buf = None

    def feed(self, data: bytes) -> list[bytes | None]:
        packets: list[bytes | None] = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._buf is None:
                start = data.find(b"\xc0", pos)
                if start < 0:
                    return packets  # noise outside a frame
                self._buf = bytearray()
                pos = start + 1
                continue
            end = data.find(b"\xc0", pos)
            if end < 0:
                self._buf += data[pos:]
                return packets
            self._buf += data[pos:end]
            pos = end + 1
            raw = bytes(self._buf)
            self._buf = None
            if not raw:
                # C0 C0: either an empty packet or the start of the next one; treat the second
                # delimiter as an opening one, as the ROM's receiver does.
                self._buf = bytearray()
                continue
            packets.append(_unescape(raw))
        return packets


def _unescape(raw: bytes) -> bytes | None:
    if b"\xdb" not in raw:
        return raw
    out = raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
    # Any DB left over was not part of a valid escape pair.
    check = raw.replace(b"\xdb\xdc", b"").replace(b"\xdb\xdd", b"")
    return None if b"\xdb" in check else out
