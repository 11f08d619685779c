"""The simulated ESP32 chip: power and reset behaviour, boot mode, and who answers the UART.

At a reset (power-on or EN rising) the chip latches its strapping pins. GPIO0 low selects the
ROM's UART download mode: the ROM prints its banner and serves the serial protocol (RomLoader).
GPIO0 high selects SPI boot: the ROM and the firmware print their console log and nothing on the
UART answers SLIP any more (fact sheet §0, §7). A flasher stub uploaded in download mode takes
over the protocol (StubLoader) until the next reset. Everything the chip knows lives here and is
lost on reset or power loss, except the flash and the eFuses.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping
from importlib import resources

from ..loader import slip
from ..loader.base import Loader
from ..loader.protocol import Request
from ..loader.rom import RomLoader
from ..loader.stub import StubLoader
from ..parts.efuse import UNSECURED, Efuses, Security
from ..parts.flash import NorFlash
from ..parts.registers import RTC_CALI_VALUE, RegisterBus
from ..parts.spi import Spi1
from . import boot

ROM_BAUD = 115200
POWERON_RESET, SW_RESET = 0x1, 0x3
# Internal SRAM ranges the ROM accepts for MEM_BEGIN (ESP32 TRM §3.3.2, esptool MEMORY_MAP).
RAM_RANGES = ((0x3FFAE000, 0x40000000), (0x40070000, 0x400C2000), (0x50000000, 0x50002000))
ANSWER_DELAY = 0.002  # seconds before a running firmware's answer starts


class Uart:
    """What the chip needs from its UART: transmit, and rate changes in transmit order."""

    def send(self, data: bytes) -> None: ...
    def set_baud(self, baud: int) -> None: ...
    def reset_baud(self, baud: int) -> None: ...
    def wait_sent(self, timeout: float = 5.0) -> bool: ...

    baud: int  # current line rate
    autobaud: bool  # follow the host's rate (the ROM loader's SYNC detection)


class Timers:
    """Deferred work (console lines): ``call_later(delay, fn)``."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...


@functools.cache
def known_stubs() -> dict[int, tuple[int, bytes]]:
    """entry -> (text_start, text) of the ESP32 flasher stubs bundled with esptool.

    Read once per process, when the first chip is built (:class:`Esp32Chip`): finding the files
    imports the esptool package, ~60 ms. A real chip sends the stub's OHAI a few ms after its
    MEM_END reply and pytest-embedded gives up after 50 ms, so this cannot wait for the first
    stub start."""
    stubs = {}
    base = resources.files("esptool") / "targets" / "stub_flasher"
    for version in ("1", "2"):
        try:
            spec = json.loads((base / version / "esp32.json").read_text())
        except (FileNotFoundError, OSError):
            continue
        stubs[spec["entry"]] = (spec["text_start"], base64.b64decode(spec["text"]))
    return stubs


class Esp32Chip:
    """One ESP32-D0WD-V3 (rev v3.0, 40 MHz crystal) with its flash and factory MAC."""

    def __init__(
        self,
        flash: NorFlash,
        mac: bytes,
        uart: Uart,
        timers: Timers,
        *,
        on_firmware_started: Callable[[], None] | None = None,
        security: Security = UNSECURED,
        chip_costs: float = 0.0,
        busy: Callable[[float], None] = time.sleep,
    ) -> None:
        """``security``: the flash-encryption and secure-boot eFuses as burnt on this chip.
        ``chip_costs``: how much of the loaders' chip-side time (flash reads, MD5:
        rig.sim.loader.costs) is spent, 0 (free) to 1 (the estimates) or more; ``busy`` spends
        it (the board's, which a power cut interrupts)."""
        self.chip_costs = chip_costs
        self.busy = busy
        self.flash_sent = 0  # flash bytes sent to the host by READ_FLASH / READ_FLASH_SLOW
        self.flash = flash
        self.mac = mac
        self.uart = uart
        self.timers = timers
        self.on_firmware_started = on_firmware_started
        self.stubs = known_stubs()  # at start-up: the first stub start must not pay for it
        self.efuses = Efuses(mac, security=security)
        self.spi = Spi1(flash)
        self.registers = RegisterBus(
            self.efuses, self.spi, uart_clkdiv=self._uart_clkdiv, strap=lambda: self.strap
        )
        self.powered = False
        self.mode = "off"  # off | reset | download | stub | firmware | halted | hung
        self.loader: Loader | None = None
        self.strap = 0
        self.apb_hz = 40_000_000
        self.epoch = 0  # bumped at every reset/power event; stale timers check it
        self.console: collections.deque[str] = collections.deque(maxlen=4096)  # recent lines
        self._decoder = slip.SlipDecoder()
        # What the running firmware answers (a known firmware behaviour), and its input line.
        self.answers: Mapping[str, tuple[str, ...]] = {}
        self._line = ""
        self.resets = 0
        # Called at every power-on / EN reset, before the ROM boots (fault injection: garbage
        # on the console before the banner).
        self.on_reset: Callable[[], None] | None = None

    # -- power and reset ----------------------------------------------------------------------
    def power_off(self) -> None:
        """Supply gone: the chip and all its RAM state vanish mid-whatever (brown-out)."""
        self._stop("off")
        self.powered = False

    def hold_in_reset(self) -> None:
        """EN (CHIP_PU) low: the chip is held in reset, silent."""
        self._stop("reset")

    def reset(self, io0_low: bool, reason: int = POWERON_RESET) -> None:
        """Rising edge of power or EN: latch GPIO0 and boot accordingly."""
        self._stop("reset")
        self.powered = True
        self.resets += 1
        self.strap = boot.STRAP_DOWNLOAD if io0_low else boot.STRAP_SPI
        if self.on_reset is not None:
            self.on_reset()
        self._boot(reason)

    def hang(self) -> None:
        """A hung chip (flaky supply, ESD, a bad crystal start): powered, silent until reset."""
        self._stop("hung")

    def software_reset(self) -> None:
        """A software reset keeps the latched strapping: same boot mode, ``rst:0x3``."""
        self.uart.wait_sent(1.0)  # the reply that asked for it leaves the FIFO first
        self._stop("reset")
        self._boot(SW_RESET)

    def _stop(self, mode: str) -> None:
        self.epoch += 1
        self.mode = mode
        self.loader = None
        self.answers, self._line = {}, ""
        self._decoder.reset()
        self.registers.reset()
        self.apb_hz = 40_000_000
        self.uart.reset_baud(ROM_BAUD)
        self.uart.autobaud = False

    def _boot(self, reason: int) -> None:
        if self.strap == boot.STRAP_DOWNLOAD:
            self.mode = "download"
            self.uart.autobaud = True
            self._play(boot.download_boot(reason))  # the banner goes out first...
            self.loader = RomLoader(self)  # ...then the ROM's download loop reads the UART
        else:
            self.mode = "firmware"
            self._play(boot.spi_boot(self.flash.read, reason))

    def run_user_code(self) -> None:
        """ROM "run user code" (FLASH_END flag 1), stub RUN_USER_CODE: boot from flash, no reset."""
        self.uart.wait_sent(1.0)
        self._stop("firmware")
        script = boot.spi_boot(self.flash.read, POWERON_RESET)
        lines = list(script.lines)
        for i, (_, text) in enumerate(lines):
            if text.startswith("rst:"):
                lines = lines[i + 1 :]  # the ROM banner belongs to a reset, not to a jump
                break
        self._play(dataclasses.replace(script, lines=tuple(lines)))

    def execute_ram(self, entry: int, segments: dict[int, bytes]) -> None:
        """MEM_END with "jump": the flasher stub if the upload is esptool's, else a RAM app."""
        stub = self.stubs.get(entry)
        if stub is not None and segments.get(stub[0]) == stub[1]:
            self.mode = "stub"
            self.loader = StubLoader(self)
            self.uart.autobaud = False
            self.apb_hz = 80_000_000  # the stub switches the CPU to the PLL (240 MHz, APB 80)
            self.send_frame(b"OHAI")
            return
        # Any other code: the chip runs it and the loader is gone; we cannot execute Xtensa code,
        # so the chip goes quiet, as a RAM app that does not talk SLIP would be.
        self._stop("halted")

    # -- console ------------------------------------------------------------------------------
    def _play(self, script: boot.BootScript) -> None:
        """Print ``script``: the lines it starts with at once (the ROM prints its banner before
        it does anything else, so nothing the chip answers may overtake it), the later ones on
        the board's timer thread at their times."""
        epoch = self.epoch
        delay = 0.0
        for pause, text in script.lines:
            delay += pause
            if delay == 0.0:
                self._print(epoch, text)
                continue
            self.timers.call_later(delay, functools.partial(self._print, epoch, text))
        self.timers.call_later(delay, functools.partial(self._after_script, epoch, script))

    def _print(self, epoch: int, text: str) -> None:
        if epoch == self.epoch:
            self.console.append(text)
            self.uart.send(text.encode() + b"\r\n")

    def _after_script(self, epoch: int, script: boot.BootScript) -> None:
        if epoch != self.epoch:
            return
        if script.then == "run":
            self.answers = script.answers
            if self.on_firmware_started is not None:
                self.on_firmware_started()
        elif script.next_reset_reason is not None:
            # The RTC watchdog (ROM invalid-header loop), the IDF bootloader giving up or a
            # crashing firmware resets the chip; strapping stays latched, so SPI boot starts
            # over.
            self.epoch += 1
            self.registers.reset()
            self._play(boot.spi_boot(self.flash.read, script.next_reset_reason))

    # -- UART ---------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the host. A loader listens; a running firmware answers what its known
        behaviour says it answers (:mod:`.firmware`); anything else ignores them."""
        if self.loader is None:
            if self.mode == "firmware" and self.answers:
                self._firmware_input(data)
            return
        for packet in self._decoder.feed(data):
            loader = self.loader  # a packet may change personality (stub start, reset)
            if loader is None:
                return
            if packet is None:
                continue  # bad escape: the ROM drops the frame
            if isinstance(loader, StubLoader) and loader.handle_packet(packet):
                continue
            req = Request.parse(packet)
            if req is not None:
                loader.handle(req)

    def _firmware_input(self, data: bytes) -> None:
        """A one-byte key (GRBL's realtime commands: 0x18 soft reset, ``?`` status) is answered
        at once; other input is collected into a line and answered at its end."""
        for char in data.decode("latin-1"):
            if char in self.answers:
                self._say(self.answers[char])
            elif char in "\r\n":
                line, self._line = self._line, ""
                if line in self.answers:
                    self._say(self.answers[line])
            else:
                self._line += char

    def _say(self, lines: tuple[str, ...]) -> None:
        epoch = self.epoch
        for text in lines:
            self.timers.call_later(ANSWER_DELAY, functools.partial(self._print, epoch, text))

    def send_frame(self, payload: bytes) -> None:
        self.uart.send(slip.encode(payload))

    @property
    def baud(self) -> int:
        """The UART's current rate (after the ROM's autobaud or a CHANGE_BAUDRATE)."""
        return self.uart.baud

    def set_baud(self, baud: int) -> None:
        self.uart.autobaud = False
        self.uart.set_baud(baud)

    # -- register helpers -----------------------------------------------------------------------
    def _uart_clkdiv(self) -> int:
        return round(self.apb_hz / self.baud) & 0xFFFFF

    def rom_clock_estimate(self) -> float:
        """APB frequency as the ROM computes it from RTC calibration x CK8M (esptool §5.10)."""
        return RTC_CALI_VALUE * 15625 * self.efuses.ck8m_freq / 40

    @staticmethod
    def is_ram(address: int, size: int) -> bool:
        return any(lo <= address and address + size <= hi for lo, hi in RAM_RANGES)
