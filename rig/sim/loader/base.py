"""What the ROM loader and the flasher stub have in common: dispatch, replies, registers, RAM.

A loader runs on a :class:`LoaderHost` (the chip, as the loader sees it: its flash through SPI1,
its registers, its RAM, its UART) and answers one decoded request at a time. A handler returns
a :class:`Reply` (value, data, and optional work to run *after* the reply is on the wire, which
is how the stub orders "reply, then switch baud" or "reply, then send OHAI") or raises
:class:`CommandError` / :class:`MalformedRequest`; the loader turns those into the status bytes
of its personality.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..parts.flash import FlashRangeError, NorFlash
from ..parts.registers import RegisterBus
from ..parts.spi import Spi1
from . import costs
from .protocol import CommandError, MalformedRequest, Op, Request, data_checksum, response

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32  # esptool ESPLoader.sync()


class LoaderHost(Protocol):
    """What a loader needs of the chip it runs on (:class:`~rig.sim.chip.chip.Esp32Chip`)."""

    flash: NorFlash  # the array behind SPI1
    spi: Spi1  # attached or not: a loader reads the flash through it
    registers: RegisterBus  # READ_REG / WRITE_REG
    chip_costs: float  # scale of the chip-side costs (rig.sim.loader.costs); 0: free
    flash_sent: int  # flash bytes the loaders sent the host (READ_FLASH*): what crossed the wire

    def busy(self, seconds: float) -> None:
        """The CPU works ``seconds`` (a power cut ends it early)."""

    def send_frame(self, payload: bytes) -> None:
        """SLIP-frame ``payload`` and transmit it."""

    def set_baud(self, baud: int) -> None:
        """Switch the UART once what is queued has been sent (CHANGE_BAUDRATE)."""

    def execute_ram(self, entry: int, segments: dict[int, bytes]) -> None:
        """MEM_END with a jump: run what was uploaded (the flasher stub, or silence)."""

    def is_ram(self, address: int, size: int) -> bool:
        """Whether MEM_BEGIN may load ``size`` bytes at ``address``."""

    def run_user_code(self) -> None:
        """Leave the loader and boot from flash without a reset."""

    def software_reset(self) -> None:
        """Reset, keeping the latched strapping."""

    def rom_clock_estimate(self) -> float:
        """The APB frequency as the ROM believes it (its baud divider is computed from it)."""


@dataclass
class Reply:
    value: int = 0
    data: bytes = b""
    after: Callable[[], None] | None = None
    count: int = 1  # SYNC answers 8 times


@dataclass
class RamDownload:
    """A MEM_BEGIN..MEM_END session: where the blocks go in the chip's RAM."""

    address: int
    size: int
    block_size: int
    received: int = 0


@dataclass
class FlashWrite:
    """A FLASH_BEGIN or FLASH_DEFL_BEGIN session."""

    offset: int
    size: int  # bytes the host will deliver (uncompressed)
    block_size: int
    position: int = 0  # bytes written so far (relative to offset)
    inflater: object | None = None  # zlib decompressobj for FLASH_DEFL_*
    erased_upto: int = 0  # stub: absolute address up to which sectors have been erased
    errors: list[str] = field(default_factory=list)


class Loader:
    """Base class. Subclasses set the status format and the per-opcode handlers."""

    name = "loader"
    STATUS_LEN = 4
    SYNC_VALUE_ZERO = False
    BAD_FORMAT = 0  # code for MalformedRequest
    UNKNOWN_COMMAND = 0
    BAD_CHECKSUM = 0
    RANGE_ERROR = 0
    NOT_IN_FLASH_MODE = 0
    COSTS = costs.FREE  # what reading and hashing flash costs this loader

    def __init__(self, chip: LoaderHost) -> None:
        self.chip = chip
        self.ram_download: RamDownload | None = None
        self.ram_segments: dict[int, bytearray] = {}
        self.flash_write: FlashWrite | None = None
        self.flash_size = chip.flash.size
        self.handlers: dict[int, Callable[[Request], Reply]] = {
            Op.SYNC: self.sync,
            Op.READ_REG: self.read_reg,
            Op.WRITE_REG: self.write_reg,
            Op.MEM_BEGIN: self.mem_begin,
            Op.MEM_DATA: self.mem_data,
            Op.MEM_END: self.mem_end,
            Op.SPI_SET_PARAMS: self.spi_set_params,
            Op.SPI_ATTACH: self.spi_attach,
            Op.SPI_FLASH_MD5: self.spi_flash_md5,
            Op.CHANGE_BAUDRATE: self.change_baudrate,
        }

    # -- plumbing ---------------------------------------------------------------------------
    def status(self, code: int) -> bytes:
        raise NotImplementedError

    def handle(self, req: Request) -> None:
        handler = self.handlers.get(req.op)
        try:
            if handler is None:
                raise CommandError(self.UNKNOWN_COMMAND, f"opcode 0x{req.op:02x} not supported")
            reply = handler(req)
        except MalformedRequest:
            self.send_error(req.op, self.BAD_FORMAT)
            return
        except CommandError as err:
            self.send_error(req.op, err.code)
            return
        self.send_reply(req.op, reply)

    def send_reply(self, op: int, reply: Reply) -> None:
        values = reply.value if isinstance(reply.value, (list, tuple)) else [reply.value]
        for i in range(reply.count):
            value = values[min(i, len(values) - 1)]
            self.chip.send_frame(response(op, value, reply.data, self.status(0)))
        if reply.after is not None:
            reply.after()

    def send_error(self, op: int, code: int) -> None:
        self.chip.send_frame(response(op, 0, b"", self.status(code)))

    def checked_payload(self, req: Request) -> tuple[int, bytes]:
        """The (seq, payload) of a _DATA request after length and checksum checks."""
        length, seq, _, _ = req.words(4)
        payload = req.data[16:]
        if length != len(payload):
            raise MalformedRequest(f"data length {length} but {len(payload)} bytes sent")
        if data_checksum(payload) != req.checksum & 0xFF:
            raise CommandError(self.BAD_CHECKSUM, "data checksum mismatch")
        return seq, payload

    # -- commands both personalities answer the same way --------------------------------------
    def sync(self, req: Request) -> Reply:
        if req.data != SYNC_PAYLOAD:
            raise MalformedRequest("not a SYNC pattern")
        if self.SYNC_VALUE_ZERO:
            return Reply(value=0, count=8)
        # Real ROM traces carry the first SYNC bytes in the value field, shifted by one per
        # reply (07 07 12 20, 07 12 20 55, 07 20 55 55, ...): never zero, which is what matters.
        values = [int.from_bytes(b"\x07" + SYNC_PAYLOAD[i + 1 : i + 4], "little") for i in range(8)]
        return Reply(value=values, count=8)

    def read_reg(self, req: Request) -> Reply:
        (address,) = req.words(1)
        return Reply(value=self.chip.registers.read(address))

    def write_reg(self, req: Request) -> Reply:
        if not req.data or len(req.data) % 16:
            raise MalformedRequest("WRITE_REG takes 16-byte entries")
        for address, value, mask, _delay_us in struct.iter_unpack("<IIII", req.data):
            self.chip.registers.write(address, value, mask)
        return Reply()

    def spi_set_params(self, req: Request) -> Reply:
        _fl_id, total_size, _block, _sector, _page, _status_mask = req.words(6)
        self.flash_size = total_size
        return Reply()

    def spi_attach(self, req: Request) -> Reply:
        req.words(1)
        self.chip.spi.attached = True
        return Reply()

    def mem_begin(self, req: Request) -> Reply:
        size, _blocks, block_size, address = req.words(4)
        if not self.chip.is_ram(address, size):
            raise CommandError(self.RANGE_ERROR, f"MEM_BEGIN to non-RAM address {address:#x}")
        self.ram_download = RamDownload(address, size, block_size)
        self.ram_segments[address] = bytearray(size)
        return Reply()

    def mem_data(self, req: Request) -> Reply:
        seq, payload = self.checked_payload(req)
        dl = self.ram_download
        if dl is None:
            raise CommandError(self.NOT_IN_FLASH_MODE, "MEM_DATA without MEM_BEGIN")
        start = seq * dl.block_size
        if start + len(payload) > dl.size:
            raise CommandError(self.RANGE_ERROR, "MEM_DATA past the announced size")
        self.ram_segments[dl.address][start : start + len(payload)] = payload
        dl.received += len(payload)
        return Reply()

    def mem_end(self, req: Request) -> Reply:
        flag, entry = req.words(2)
        self.ram_download = None
        if flag != 0:  # esptool: flag = int(entry == 0), i.e. "do not jump"
            return Reply()
        segments = {addr: bytes(data) for addr, data in self.ram_segments.items()}
        return Reply(after=lambda: self.chip.execute_ram(entry, segments))

    def spi_flash_md5(self, req: Request) -> Reply:
        address, size, _, _ = req.words(4)
        data = self.read_flash(address, size)
        self.spend(read=size, md5=size)
        return Reply(data=self.format_md5(hashlib.md5(data).digest()))

    def change_baudrate(self, req: Request) -> Reply:
        new_baud, _old = req.words(2)
        actual = self.effective_baud(new_baud)
        if actual <= 0:
            raise CommandError(self.BAD_FORMAT, "baud rate 0")
        return Reply(after=lambda: self.chip.set_baud(actual))

    # -- personality hooks --------------------------------------------------------------------
    def format_md5(self, digest: bytes) -> bytes:
        raise NotImplementedError

    def effective_baud(self, requested: int) -> int:
        return requested

    # -- flash helpers ------------------------------------------------------------------------
    def spend(self, *, read: int = 0, md5: int = 0) -> None:
        """The chip-side time of reading ``read`` flash bytes and hashing ``md5`` bytes."""
        seconds = self.COSTS.seconds(read=read, md5=md5, scale=self.chip.chip_costs)
        if seconds > 0:
            self.chip.busy(seconds)

    def sent_flash(self, data: bytes) -> None:
        """Flash content goes to the host (counted: a test can see what was read)."""
        self.chip.flash_sent += len(data)

    def read_flash(self, address: int, size: int) -> bytes:
        """Flash as this loader sees it: through SPI1, so 0xFF while the flash is not attached."""
        if address + size > self.chip.flash.size:
            raise CommandError(self.RANGE_ERROR, f"read {address:#x}+{size:#x} past the chip")
        if not self.chip.spi.attached:
            return b"\xff" * size
        try:
            return self.chip.flash.read(address, size)
        except FlashRangeError as err:
            raise CommandError(self.RANGE_ERROR, str(err)) from err

    def new_inflater(self):
        return zlib.decompressobj()
