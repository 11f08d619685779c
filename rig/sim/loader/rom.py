"""The ESP32 ROM serial loader (download mode, GPIO0 low at reset).

Differences from the stub that esptool depends on (fact sheet §1.3, §2, §5):
four status bytes; MD5 as 32 lowercase hex characters; FLASH_BEGIN erases the whole range before
replying; FLASH_DEFL_* supported but with an up-front erase; READ_FLASH_SLOW (64 bytes per call);
no ERASE_FLASH / ERASE_REGION / READ_FLASH; flash access needs SPI_ATTACH first; GET_SECURITY_INFO
is not implemented on the ESP32 ROM (error 0x05, which esptool swallows while connecting).
"""

from __future__ import annotations

from ..parts.flash import BLOCK_SIZE, FlashRangeError
from . import costs
from .base import FlashWrite, Loader, LoaderHost, Reply
from .protocol import CommandError, Op, Request, RomError

XTAL_HZ = 40_000_000
# The ROM believes a 2 MB flash until SPI_SET_PARAMS (esptool's flash_set_parameters comment).
ROM_DEFAULT_FLASH_SIZE = 0x200000


class RomLoader(Loader):
    name = "rom"
    STATUS_LEN = 4
    BAD_FORMAT = RomError.BAD_FORMAT
    UNKNOWN_COMMAND = RomError.BAD_FORMAT  # fact sheet §2, choice A: echo the opcode, 01 05
    BAD_CHECKSUM = RomError.CHECKSUM
    RANGE_ERROR = RomError.INVALID_PARAM
    NOT_IN_FLASH_MODE = RomError.RESULT_WRONG
    COSTS = costs.ROM

    def __init__(self, chip: LoaderHost) -> None:
        super().__init__(chip)
        self.flash_size = ROM_DEFAULT_FLASH_SIZE
        self.handlers.update(
            {
                Op.FLASH_BEGIN: self.flash_begin,
                Op.FLASH_DATA: self.flash_data,
                Op.FLASH_END: self.flash_end,
                Op.FLASH_DEFL_BEGIN: self.flash_defl_begin,
                Op.FLASH_DEFL_DATA: self.flash_defl_data,
                Op.FLASH_DEFL_END: self.flash_end,
                Op.READ_FLASH_SLOW: self.read_flash_slow,
                Op.GET_SECURITY_INFO: self.get_security_info,
            }
        )

    def status(self, code: int) -> bytes:
        return bytes([1 if code else 0, code & 0xFF, 0, 0])

    def format_md5(self, digest: bytes) -> bytes:
        return digest.hex().encode()

    def effective_baud(self, requested: int) -> int:
        """The rate the UART really runs at after the ROM programs its divider.

        The ROM computes the divider from its own estimate of the APB clock (RTC calibration x
        CK8M, §5.10), which is slightly off 40 MHz; esptool compensates by sending a "false"
        baud. The real line rate is therefore ``requested * 40 MHz / rom_estimate``.
        """
        rom_hz = self.chip.rom_clock_estimate()
        if rom_hz <= 0:
            return requested
        valid = 40_000_000 if rom_hz > 33_000_000 else 26_000_000
        return round(requested * valid / rom_hz)

    def check_range(self, offset: int, size: int) -> None:
        if offset + size > self.flash_size:
            raise CommandError(
                RomError.INVALID_PARAM,
                f"{offset:#x}+{size:#x} beyond the configured {self.flash_size:#x}-byte flash",
            )

    def get_security_info(self, req: Request) -> Reply:
        raise CommandError(RomError.BAD_FORMAT, "GET_SECURITY_INFO is not in the ESP32 ROM")

    def read_flash_slow(self, req: Request) -> Reply:
        offset, length = req.words(2)
        if length > 64:
            raise CommandError(RomError.FLASH_READ_LENGTH, "at most 64 bytes per READ_FLASH_SLOW")
        self.check_range(offset, length)
        data = self.read_flash(offset, length)
        self.spend(read=length)
        self.sent_flash(data)
        return Reply(data=data + b"\xff" * (64 - len(data)))  # the ROM always sends 64 bytes

    def flash_begin(self, req: Request) -> Reply:
        erase_size, _blocks, block_size, offset = req.words(4)
        if erase_size:  # FLASH_BEGIN(0, 0) is esptool's no-op prelude to a "run user code" END
            self.require_attached()
        self.check_range(offset, erase_size)
        self.erase(offset, erase_size)
        self.flash_write = FlashWrite(offset=offset, size=erase_size, block_size=block_size)
        return Reply()

    def flash_defl_begin(self, req: Request) -> Reply:
        size, _blocks, block_size, offset = req.words(4)
        self.require_attached()
        self.check_range(offset, size)
        # The ROM erases up front and over-erases: esptool's sources note that `--no-stub -z`
        # writes lose neighbouring data; erasing whole 64 KB blocks reproduces that [fact sheet
        # §5.6, exact rule unverified]. A rig that survives this survives the real ROM.
        if size:
            first = offset - offset % BLOCK_SIZE
            last = offset + size + (-(offset + size)) % BLOCK_SIZE
            self.erase(first, min(last, self.chip.flash.size) - first)
        self.flash_write = FlashWrite(
            offset=offset, size=size, block_size=block_size, inflater=self.new_inflater()
        )
        return Reply()

    def flash_data(self, req: Request) -> Reply:
        seq, payload = self.checked_payload(req)
        fw = self.flash_write
        if fw is None or fw.inflater is not None:
            raise CommandError(RomError.RESULT_WRONG, "FLASH_DATA outside FLASH_BEGIN")
        # The ROM writes the whole (0xFF-padded) block at offset + seq * block_size.
        self.program(fw.offset + seq * fw.block_size, payload)
        fw.position = max(fw.position, (seq * fw.block_size) + len(payload))
        return Reply()

    def flash_defl_data(self, req: Request) -> Reply:
        _seq, payload = self.checked_payload(req)
        fw = self.flash_write
        if fw is None or fw.inflater is None:
            raise CommandError(RomError.RESULT_WRONG, "FLASH_DEFL_DATA outside FLASH_DEFL_BEGIN")
        try:
            out = fw.inflater.decompress(payload)
        except Exception as err:  # zlib.error
            raise CommandError(RomError.DEFLATE, f"inflate failed: {err}") from err
        if fw.position + len(out) > fw.size:
            raise CommandError(RomError.DEFLATE_PARAM, "inflated past the announced size")
        self.program(fw.offset + fw.position, out)
        fw.position += len(out)
        return Reply()

    def flash_end(self, req: Request) -> Reply:
        (flag,) = req.words(1)
        self.flash_write = None
        # flag 0 = reboot, 1 = run user code (esptool sends int(not reboot)); both leave the ROM
        # loader, after the reply is on the wire.
        if flag == 0:
            return Reply(after=self.chip.software_reset)
        return Reply(after=self.chip.run_user_code)

    # -- helpers ------------------------------------------------------------------------------
    def require_attached(self) -> None:
        if not self.chip.spi.attached:
            raise CommandError(RomError.FLASH_WRITE, "flash not attached (SPI_ATTACH first)")

    def erase(self, offset: int, size: int) -> None:
        try:
            self.chip.flash.erase(offset, size)
        except FlashRangeError as err:
            raise CommandError(RomError.INVALID_PARAM, str(err)) from err

    def program(self, address: int, data: bytes) -> None:
        data = data[: max(0, self.chip.flash.size - address)]
        try:
            self.chip.flash.program(address, data)
        except FlashRangeError as err:
            raise CommandError(RomError.FLASH_WRITE, str(err)) from err
