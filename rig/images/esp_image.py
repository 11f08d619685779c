"""ESP32 flash image format: build and parse, byte-compatible with esptool's ``bin_image.py``.

Layout (ESP32 flavour of ``ESP32FirmwareImage``; esptool 5.6.0 is the reference):

* 8-byte common header ``<BBBBI``: magic ``0xE9``, segment count, flash mode (qio 0, qout 1,
  dio 2, dout 3), ``size << 4 | freq`` (sizes 1MB 0x00 .. 128MB 0x70, freqs 40m 0x0, 26m 0x1,
  20m 0x2, 80m 0xF), entry point.
* 16-byte extended header ``<BBBBHBHH4sB``: wp_pin (``0xEE`` = not remapped, the ROM skips it),
  three bytes of SPI pin drive nibbles (clk/q, d/cs0, hd/wp), chip id (ESP32 = 0), legacy min_rev,
  min/max chip revision ``major*100+minor``, 4 reserved bytes, ``hash_appended`` (0 or 1).
* Segments: ``<II`` load address and length, then the data. esptool pads every real segment to a
  4-byte multiple with zeros (``ImageSegment.pad_to_alignment(4)``); we do the same.
* Zero padding so the one-byte checksum sits at the last byte of a 16-byte block
  (``align_file_position(f, 16)``). Checksum = ``0xEF`` XOR every segment data byte.
* If ``hash_appended``: SHA-256 of everything from the magic byte through the checksum byte.

Nothing here executes or interprets segment contents: the segment list is the whole truth, which
is why :class:`Segment` is just an address and bytes. The parser is meant to be handed a flash
region (``read(0x10000, partition_size)``), so bytes after the image are ignored and
:attr:`EspImage.length` says where the image ends.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from rig.errors import BadInput
from rig.esp32 import IMAGE_CHIP_ID, IMAGE_MAGIC

__all__ = [
    "CHIP_ID_ESP32",
    "FLASH_FREQS",
    "FLASH_MODES",
    "FLASH_SIZES",
    "IMAGE_MAGIC",
    "MAX_SEGMENTS",
    "EspImage",
    "ImageError",
    "Segment",
    "build_image",
    "image_checksum",
    "parse_image",
]

CHECKSUM_SEED = 0xEF  # ESPLoader.ESP_CHECKSUM_MAGIC
CHIP_ID_ESP32 = IMAGE_CHIP_ID  # ESP32ROM.IMAGE_CHIP_ID (the chip id field of an ESP32 image)
WP_PIN_DISABLED = 0xEE  # ESP32FirmwareImage.WP_PIN_DISABLED
MAX_SEGMENTS = 16  # BaseFirmwareImage.verify(): "Invalid segment count ... (max 16)"
MAX_SEGMENT_LEN = 0x1000000  # save_segment(): "The 16 MB limit has been exceeded"

COMMON_HEADER = struct.Struct("<BBBBI")
EXTENDED_HEADER = struct.Struct("<BBBBHBHH4sB")
SEGMENT_HEADER = struct.Struct("<II")
HEADER_LEN = COMMON_HEADER.size + EXTENDED_HEADER.size  # 24
DIGEST_LEN = 32

# Same tables as esptool (cmds.FLASH_MODES, ESP32ROM.FLASH_SIZES / FLASH_FREQUENCY).
FLASH_MODES = {"qio": 0, "qout": 1, "dio": 2, "dout": 3}
FLASH_SIZES = {
    "1MB": 0x00,
    "2MB": 0x10,
    "4MB": 0x20,
    "8MB": 0x30,
    "16MB": 0x40,
    "32MB": 0x50,
    "64MB": 0x60,
    "128MB": 0x70,
}
FLASH_FREQS = {"40m": 0x0, "26m": 0x1, "20m": 0x2, "80m": 0xF}


class ImageError(BadInput):
    """Data that is not a loadable ESP32 image.

    ``kind`` lets callers that mimic firmware (the simulated ROM / bootloader) pick the message the
    real code would print: ``"magic"``, ``"header"`` (malformed header field), ``"segments"``
    (segment count) or ``"truncated"`` (a segment, checksum or digest runs past the data; then
    ``needed`` is how many bytes the headers claim the image needs, at least).
    """

    def __init__(self, reason: str, *, kind: str = "header", needed: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.needed = needed


@dataclass(frozen=True)
class Segment:
    """One loadable segment: the load address and its bytes."""

    addr: int
    data: bytes


@dataclass(frozen=True)
class EspImage:
    """A parsed image. Strings use esptool's spellings; unknown codes read ``"unknown(0x..)"``."""

    flash_mode: str
    flash_freq: str
    flash_size: str
    entry: int
    chip_id: int
    wp_pin: int
    drive: bytes  # 3 raw bytes: clk|q<<4, d|cs0<<4, hd|wp<<4
    min_rev: int
    min_rev_full: int
    max_rev_full: int
    segments: tuple[Segment, ...]
    segment_offsets: tuple[int, ...]  # offset of each segment's *data* (esptool file_offs + 8)
    checksum: int  # stored
    calculated_checksum: int
    hash_appended: bool
    digest: bytes | None  # stored SHA-256, if appended
    sha256_ok: bool | None  # None when no digest is appended
    length: int  # bytes from magic to end of checksum (+ digest)

    @property
    def checksum_ok(self) -> bool:
        return self.checksum == self.calculated_checksum

    @property
    def valid(self) -> bool:
        """What the IDF bootloader accepts (no secure boot): checksum and, if present, hash."""
        return self.checksum_ok and self.sha256_ok is not False

    @property
    def drive_levels(self) -> dict[str, int]:
        """Drive nibbles as the ROM prints them (``clk_drv:0x00,q_drv:0x00,...``)."""
        b0, b1, b2 = self.drive
        return {
            "clk_drv": b0 & 0xF,
            "q_drv": b0 >> 4,
            "d_drv": b1 & 0xF,
            "cs0_drv": b1 >> 4,
            "hd_drv": b2 & 0xF,
            "wp_drv": b2 >> 4,
        }


def image_checksum(chunks: Iterable[bytes]) -> int:
    """``0xEF`` XOR every byte, as ``ESPLoader.checksum``; folded through ints to stay fast.

    A Python per-byte loop over a 1 MB app costs ~50 ms per boot; XOR-folding the big integer in
    halves does the same in a few C-level passes (zero padding does not change an XOR).
    """
    acc = CHECKSUM_SEED
    for data in chunks:
        if not data:
            continue
        value = int.from_bytes(data, "little")
        bits = 8 << (len(data) - 1).bit_length()
        while bits > 8:
            bits //= 2
            value = (value >> bits) ^ (value & ((1 << bits) - 1))
        acc ^= value
    return acc


def _code(table: dict[str, int], name: str, what: str) -> int:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r} (choose from {', '.join(table)})") from None


def _name(table: dict[str, int], code: int) -> str:
    for name, value in table.items():
        if value == code:
            return name
    return f"unknown({code:#x})"


def build_image(
    segments: Iterable[Segment],
    *,
    entry: int,
    flash_mode: str = "dio",
    flash_freq: str = "40m",
    flash_size: str = "4MB",
    chip_id: int = CHIP_ID_ESP32,
    wp_pin: int = WP_PIN_DISABLED,
    drive: bytes = b"\x00\x00\x00",
    min_rev: int = 0,
    min_rev_full: int = 0,
    max_rev_full: int = 0,
    append_sha256: bool = True,
) -> bytes:
    """Serialise segments, in the order given, into an image esptool's ``image-info`` accepts.

    Segment placement (e.g. putting IROM/DROM data at a file offset congruent to its vaddr modulo
    64 KB, as esptool's ``elf2image`` does) is the caller's business; see ``synthetic.py``.
    """
    segs = list(segments)
    if len(segs) > MAX_SEGMENTS:
        raise ValueError(f"{len(segs)} segments (max {MAX_SEGMENTS})")
    if len(drive) != 3:
        raise ValueError("drive must be 3 bytes")
    size_freq = _code(FLASH_SIZES, flash_size, "flash size") | _code(
        FLASH_FREQS, flash_freq, "flash freq"
    )
    out = bytearray(
        COMMON_HEADER.pack(
            IMAGE_MAGIC, len(segs), _code(FLASH_MODES, flash_mode, "flash mode"), size_freq, entry
        )
    )
    out += EXTENDED_HEADER.pack(
        wp_pin,
        drive[0],
        drive[1],
        drive[2],
        chip_id,
        min_rev,
        min_rev_full,
        max_rev_full,
        b"\x00" * 4,
        1 if append_sha256 else 0,
    )
    padded = []
    for seg in segs:
        data = seg.data + b"\x00" * (-len(seg.data) % 4)
        if len(data) >= MAX_SEGMENT_LEN:
            raise ValueError(f"segment at {seg.addr:#010x} is {len(data)} bytes (limit 16 MB)")
        out += SEGMENT_HEADER.pack(seg.addr, len(data)) + data
        padded.append(data)
    out += b"\x00" * (15 - len(out) % 16)
    out.append(image_checksum(padded))
    if append_sha256:
        out += hashlib.sha256(out).digest()
    return bytes(out)


def parse_image(data: bytes) -> EspImage:
    """Parse the image at the start of ``data``; trailing bytes are ignored.

    Raises :class:`ImageError` when the bytes cannot be an image (bad magic, malformed header,
    more than 16 segments, anything running past the end). A bad checksum or digest is *not* an
    error: it is reported in ``checksum_ok`` / ``sha256_ok`` so callers can print what the ROM or
    bootloader would.
    """
    data = bytes(data)
    if not data:
        raise ImageError("no data (empty image)", kind="magic")
    if data[0] != IMAGE_MAGIC:
        raise ImageError(f"invalid magic {data[0]:#04x} at offset 0", kind="magic")
    if len(data) < HEADER_LEN:
        raise ImageError(
            f"truncated header: {len(data)} bytes, need {HEADER_LEN}",
            kind="truncated",
            needed=HEADER_LEN,
        )
    _, count, mode, size_freq, entry = COMMON_HEADER.unpack_from(data, 0)
    (wp_pin, d0, d1, d2, chip_id, min_rev, min_rev_full, max_rev_full, _reserved, hash_flag) = (
        EXTENDED_HEADER.unpack_from(data, COMMON_HEADER.size)
    )
    if count > MAX_SEGMENTS:
        raise ImageError(f"invalid segment count {count} (max {MAX_SEGMENTS})", kind="segments")
    if hash_flag not in (0, 1):
        raise ImageError(f"invalid hash_appended byte {hash_flag:#04x} (must be 0 or 1)")

    pos = HEADER_LEN
    segments: list[Segment] = []
    offsets: list[int] = []
    for index in range(count):
        if pos + SEGMENT_HEADER.size > len(data):
            raise ImageError(
                f"segment {index} header at offset {pos:#x} runs past the end of the data",
                kind="truncated",
                needed=pos + SEGMENT_HEADER.size,
            )
        addr, length = SEGMENT_HEADER.unpack_from(data, pos)
        pos += SEGMENT_HEADER.size
        if length >= MAX_SEGMENT_LEN or pos + length > len(data):
            raise ImageError(
                f"segment {index} ({addr:#010x}, {length} bytes at offset {pos:#x}) runs past "
                "the end of the data",
                kind="truncated",
                needed=pos + length,
            )
        segments.append(Segment(addr, data[pos : pos + length]))
        offsets.append(pos)
        pos += length

    checksum_at = pos + 15 - pos % 16
    if checksum_at >= len(data):
        raise ImageError(
            f"checksum byte at offset {checksum_at:#x} is past the end of the data",
            kind="truncated",
            needed=checksum_at + 1,
        )
    end = checksum_at + 1
    digest = None
    sha256_ok = None
    if hash_flag:
        if end + DIGEST_LEN > len(data):
            raise ImageError(
                f"appended SHA-256 at offset {end:#x} runs past the end of the data",
                kind="truncated",
                needed=end + DIGEST_LEN,
            )
        digest = data[end : end + DIGEST_LEN]
        sha256_ok = hashlib.sha256(data[:end]).digest() == digest
        end += DIGEST_LEN

    return EspImage(
        flash_mode=_name(FLASH_MODES, mode),
        flash_freq=_name(FLASH_FREQS, size_freq & 0x0F),
        flash_size=_name(FLASH_SIZES, size_freq & 0xF0),
        entry=entry,
        chip_id=chip_id,
        wp_pin=wp_pin,
        drive=bytes((d0, d1, d2)),
        min_rev=min_rev,
        min_rev_full=min_rev_full,
        max_rev_full=max_rev_full,
        segments=tuple(segments),
        segment_offsets=tuple(offsets),
        checksum=data[checksum_at],
        calculated_checksum=image_checksum(s.data for s in segments),
        hash_appended=bool(hash_flag),
        digest=digest,
        sha256_ok=sha256_ok,
        length=end,
    )
