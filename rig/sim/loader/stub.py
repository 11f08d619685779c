"""The esptool flasher stub (esp-flasher-stub v1.x, esptool 5.6's default for ESP32), emulated.

The simulator never runs Xtensa code: it recognises the stub by its upload (same text, same
entry point as esptool's bundled JSON) and from then on behaves as the stub does (fact sheet §3.7,
§5): two status bytes, SYNC value 0, flash attached on start, lazy sector erase while writing,
streamed READ_FLASH with host acks and a final MD5, ERASE_FLASH / ERASE_REGION, raw MD5 digests.
Replies to FLASH_DATA / FLASH_DEFL_DATA go out before the data is programmed; an error found
while programming is reported in the status of the next command, as the stub's post-process
step does.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..parts.flash import SECTOR_SIZE, FlashRangeError
from . import costs
from .base import FlashWrite, Loader, LoaderHost, Reply
from .protocol import CommandError, Op, Request, StubError

MAX_BLOCK = 0x10000
IN_FLIGHT = 2  # stub v2 keeps one or two READ_FLASH packets un-acked, whatever the host asks


@dataclass
class ReadStream:
    offset: int
    length: int
    packet_size: int
    sent: int = 0
    acked: int = 0
    md5: object = None


class StubLoader(Loader):
    name = "stub"
    STATUS_LEN = 2
    SYNC_VALUE_ZERO = True
    BAD_FORMAT = StubError.BAD_DATA_LEN
    UNKNOWN_COMMAND = StubError.INVALID_COMMAND
    BAD_CHECKSUM = StubError.BAD_DATA_CHECKSUM
    RANGE_ERROR = StubError.FAILED_SPI_OP
    NOT_IN_FLASH_MODE = StubError.NOT_IN_FLASH_MODE
    COSTS = costs.STUB

    def __init__(self, chip: LoaderHost) -> None:
        super().__init__(chip)
        chip.spi.attached = True  # the stub initialises and attaches the flash itself
        self.pending_error = 0
        self.stream: ReadStream | None = None
        self.handlers.update(
            {
                Op.FLASH_BEGIN: self.flash_begin,
                Op.FLASH_DATA: self.flash_data,
                Op.FLASH_END: self.flash_end,
                Op.FLASH_DEFL_BEGIN: self.flash_defl_begin,
                Op.FLASH_DEFL_DATA: self.flash_defl_data,
                Op.FLASH_DEFL_END: self.flash_defl_end,
                Op.ERASE_FLASH: self.erase_flash,
                Op.ERASE_REGION: self.erase_region,
                Op.READ_FLASH: self.read_flash_cmd,
                Op.GET_SECURITY_INFO: self.get_security_info,
                Op.RUN_USER_CODE: self.run_user_code,
            }
        )

    def status(self, code: int) -> bytes:
        return bytes([(code >> 8) & 0xFF, code & 0xFF])

    def format_md5(self, digest: bytes) -> bytes:
        return digest

    # -- dispatch: acks while streaming, deferred errors ---------------------------------------
    def handle(self, req: Request) -> None:
        if self.pending_error and req.op not in (Op.SYNC,):
            code, self.pending_error = self.pending_error, 0
            self.send_error(req.op, code)
            return
        super().handle(req)

    def handle_packet(self, packet: bytes) -> bool:
        """Consume a raw (non-request) frame: READ_FLASH acks. True if it was consumed."""
        if self.stream is None:
            return False
        if len(packet) == 4:
            (acked,) = struct.unpack("<I", packet)
            self.stream.acked = max(self.stream.acked, acked)
            self.pump()
        return True  # while streaming, the stub reads nothing but acks

    # -- commands -----------------------------------------------------------------------------
    def get_security_info(self, req: Request) -> Reply:
        raise CommandError(StubError.CMD_NOT_IMPLEMENTED, "not implemented for ESP32")

    def run_user_code(self, req: Request) -> Reply | None:
        self.chip.run_user_code()
        return None

    def send_reply(self, op: int, reply: Reply | None) -> None:
        if reply is not None:  # RUN_USER_CODE has no reply
            super().send_reply(op, reply)

    def _begin(self, req: Request, compressed: bool) -> Reply:
        words = req.words(5) if len(req.data) >= 20 else req.words(4)
        size, _blocks, block_size, offset = words[:4]
        if block_size == 0 or block_size > MAX_BLOCK:
            raise CommandError(StubError.BAD_BLOCKSIZE, f"block size {block_size:#x}")
        if offset + size > self.chip.flash.size:
            raise CommandError(StubError.FAILED_SPI_OP, "write past the end of flash")
        self.flash_write = FlashWrite(
            offset=offset,
            size=size,
            block_size=block_size,
            inflater=self.new_inflater() if compressed else None,
            erased_upto=offset - offset % SECTOR_SIZE,
        )
        return Reply()

    def flash_begin(self, req: Request) -> Reply:
        return self._begin(req, compressed=False)

    def flash_defl_begin(self, req: Request) -> Reply:
        return self._begin(req, compressed=True)

    def flash_data(self, req: Request) -> Reply:
        _seq, payload = self.checked_payload(req)
        fw = self._session(compressed=False)
        # Only the announced size is written: esptool's 0xFF padding of the last block is dropped.
        data = payload[: max(0, fw.size - fw.position)]
        return Reply(after=lambda: self._write(fw, data))

    def flash_defl_data(self, req: Request) -> Reply:
        _seq, payload = self.checked_payload(req)
        fw = self._session(compressed=True)

        def inflate_and_write() -> None:
            try:
                out = fw.inflater.decompress(payload)
            except Exception:  # zlib.error
                self.pending_error = StubError.INFLATE_ERROR
                return
            if fw.position + len(out) > fw.size:
                self.pending_error = StubError.TOO_MUCH_DATA
                out = out[: fw.size - fw.position]
            self._write(fw, out)

        return Reply(after=inflate_and_write)

    def flash_end(self, req: Request) -> Reply:
        req.words(1)
        if self.flash_write is None:
            raise CommandError(StubError.NOT_IN_FLASH_MODE, "FLASH_END outside a write")
        self.flash_write = None
        # Stub v2 leaves the reboot request as a TODO: it keeps running either way (§2).
        return Reply()

    def flash_defl_end(self, req: Request) -> Reply:
        req.words(1)
        fw = self.flash_write
        if fw is None or fw.inflater is None:
            raise CommandError(StubError.NOT_IN_FLASH_MODE, "FLASH_DEFL_END outside a write")
        self.flash_write = None
        if fw.position < fw.size:
            raise CommandError(StubError.NOT_ENOUGH_DATA, f"{fw.position}/{fw.size} bytes")
        return Reply()

    def erase_flash(self, req: Request) -> Reply:
        self.chip.flash.erase_chip()
        return Reply()

    def erase_region(self, req: Request) -> Reply:
        offset, size = req.words(2)
        if offset % SECTOR_SIZE or size % SECTOR_SIZE:
            raise CommandError(StubError.BAD_DATA_LEN, "erase region must be sector aligned")
        self._erase(offset, size)
        return Reply()

    def read_flash_cmd(self, req: Request) -> Reply:
        offset, length, packet_size, _max_inflight = req.words(4)
        if packet_size == 0 or packet_size > MAX_BLOCK:
            raise CommandError(StubError.BAD_BLOCKSIZE, f"packet size {packet_size:#x}")
        if offset + length > self.chip.flash.size:
            raise CommandError(StubError.FAILED_SPI_OP, "read past the end of flash")
        stream = ReadStream(offset, length, packet_size, md5=hashlib.md5())

        def start() -> None:
            self.stream = stream
            self.pump()

        return Reply(after=start)

    def spi_flash_md5(self, req: Request) -> Reply:
        address, size, _, _ = req.words(4)
        if address + size > self.chip.flash.size:
            raise CommandError(StubError.FAILED_SPI_OP, "MD5 past the end of flash")
        return super().spi_flash_md5(req)

    def pump(self) -> None:
        """Send READ_FLASH packets while fewer than IN_FLIGHT are un-acked; digest at the end."""
        s = self.stream
        if s is None:
            return
        while s.sent < s.length and s.sent - s.acked < IN_FLIGHT * s.packet_size:
            n = min(s.packet_size, s.length - s.sent)
            data = self.chip.flash.read(s.offset + s.sent, n)
            self.spend(read=n, md5=n)  # read over SPI, hashed for the closing digest
            s.md5.update(data)
            s.sent += n
            self.sent_flash(data)
            self.chip.send_frame(data)
        if s.acked >= s.length:
            self.stream = None
            self.chip.send_frame(s.md5.digest())

    # -- helpers ------------------------------------------------------------------------------
    def _session(self, compressed: bool) -> FlashWrite:
        fw = self.flash_write
        if fw is None or (fw.inflater is not None) != compressed:
            raise CommandError(StubError.NOT_IN_FLASH_MODE, "data outside a flash write")
        return fw

    def _write(self, fw: FlashWrite, data: bytes) -> None:
        """Program at the running position, erasing each sector the first time it is reached."""
        if not data:
            return
        start = fw.offset + fw.position
        end = start + len(data)
        if end > fw.erased_upto:
            upto = end + (-end) % SECTOR_SIZE
            self._erase(fw.erased_upto, upto - fw.erased_upto, deferred=True)
            fw.erased_upto = upto
        try:
            self.chip.flash.program(start, data)
        except FlashRangeError:
            self.pending_error = StubError.FAILED_SPI_OP
            return
        fw.position += len(data)

    def _erase(self, offset: int, size: int, deferred: bool = False) -> None:
        try:
            self.chip.flash.erase(offset, size)
        except FlashRangeError as err:
            if deferred:
                self.pending_error = StubError.FAILED_SPI_OP
                return
            raise CommandError(StubError.FAILED_SPI_OP, str(err)) from err
