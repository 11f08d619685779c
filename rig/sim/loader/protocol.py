"""Wire format of the ESP32 serial bootloader protocol (fact sheet §1.2-§2).

Requests are ``<BBHI`` (direction 0, opcode, data length, checksum) plus data; responses are
``<BBHI`` (direction 1, opcode, length, value) plus data plus status bytes. The ROM appends four
status bytes (``status, error, 0, 0``), the flasher stub two (a 16-bit code, big-endian on the
wire). esptool reads the status at ``data[resp_data_len:resp_data_len + 2]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct("<BBHI")
CHECKSUM_MAGIC = 0xEF  # esptool ESP_CHECKSUM_MAGIC


class Op(IntEnum):
    """Opcodes of ``ESPLoader.ESP_CMDS`` that an ESP32 ROM or the stub can be sent."""

    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    GET_SECURITY_INFO = 0x14
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


class RomError(IntEnum):
    """ESP32 ROM error codes (second status byte; esptool util.py ``ROM`` table)."""

    UNDEFINED = 0x00
    INVALID_PARAM = 0x01
    MALLOC = 0x02
    SEND = 0x03
    RECEIVE = 0x04
    BAD_FORMAT = 0x05  # "The format of the received message is invalid"
    RESULT_WRONG = 0x06
    CHECKSUM = 0x07
    FLASH_WRITE = 0x08
    FLASH_READ = 0x09
    FLASH_READ_LENGTH = 0x0A
    DEFLATE = 0x0B
    DEFLATE_ADLER32 = 0x0C
    DEFLATE_PARAM = 0x0D
    RAM_SIZE = 0x0E
    RAM_ADDRESS = 0x0F


class StubError(IntEnum):
    """Flasher-stub result codes (esp-flasher-stub ``command_handler``; esptool util.py)."""

    OK = 0x0000
    BAD_DATA_LEN = 0xC000
    BAD_DATA_CHECKSUM = 0xC100
    BAD_BLOCKSIZE = 0xC200
    INVALID_COMMAND = 0xC300
    FAILED_SPI_OP = 0xC400
    FAILED_SPI_UNLOCK = 0xC500
    NOT_IN_FLASH_MODE = 0xC600
    INFLATE_ERROR = 0xC700
    NOT_ENOUGH_DATA = 0xC800
    TOO_MUCH_DATA = 0xC900
    CMD_NOT_IMPLEMENTED = 0xFF00


class CommandError(Exception):
    """Raised by a command handler to send an error reply.

    ``code`` is a :class:`RomError` in ROM mode and a :class:`StubError` under the stub.
    """

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(why or f"error 0x{code:x}")
        self.code = code


class MalformedRequest(Exception):
    """The request's data is too short or inconsistent for its opcode.

    Each loader answers it with its own code (ROM: 0x05 "format of the received message is
    invalid", stub: 0xC000 "bad data length").
    """


@dataclass(frozen=True)
class Request:
    op: int
    checksum: int
    data: bytes
    declared_size: int

    @classmethod
    def parse(cls, packet: bytes) -> Request | None:
        """A request, or ``None`` if the packet is not one (too short, wrong direction)."""
        if len(packet) < HEADER.size or packet[0] != 0x00:
            return None
        _, op, size, checksum = HEADER.unpack_from(packet)
        return cls(op=op, checksum=checksum, data=packet[HEADER.size :], declared_size=size)

    def words(self, count: int) -> tuple[int, ...]:
        """The first ``count`` little-endian 32-bit words of the data."""
        if self.declared_size != len(self.data) or len(self.data) < 4 * count:
            raise MalformedRequest(
                f"op 0x{self.op:02x}: need {4 * count} bytes of data, got {len(self.data)}"
                f" (header says {self.declared_size})"
            )
        return struct.unpack_from(f"<{count}I", self.data)


def data_checksum(payload: bytes) -> int:
    """esptool ``ESPLoader.checksum``: 0xEF XOR every byte written by a _DATA command."""
    value = CHECKSUM_MAGIC
    # XOR of all bytes, fast: fold the buffer as big integers 8 bytes at a time.
    if len(payload) >= 64:
        pad = (-len(payload)) % 8
        words = struct.unpack(f"<{(len(payload) + pad) // 8}Q", payload + b"\0" * pad)
        acc = 0
        for w in words:
            acc ^= w
        for _ in range(8):
            value ^= acc & 0xFF
            acc >>= 8
        return value
    for b in payload:
        value ^= b
    return value


def response(op: int, value: int = 0, data: bytes = b"", status: bytes = b"") -> bytes:
    """A response packet (not yet SLIP-framed)."""
    body = data + status
    return HEADER.pack(0x01, op & 0xFF, len(body), value & 0xFFFFFFFF) + body
