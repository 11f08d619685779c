"""The ESP32 address space as READ_REG / WRITE_REG see it (fact sheet §3.5, §3.6).

A sparse 32-bit memory (anything written can be read back, as esptool's own tests expect of RTC
RAM) overlaid with the registers esptool reads to identify the chip: the ROM magic word, the
eFuse controller (its read registers identify the chip; espefuse burns through it), the APB date
register, UART0's clock divider (crystal detection), the RTC calibration register (ROM baud
workaround), the strapping register, and the SPI1 peripheral.
"""

from __future__ import annotations

from collections.abc import Callable

from .efuse import Efuses
from .spi import Spi1

ROM_MAGIC_ADDR = 0x40001000
ESP32_MAGIC = 0x00F01D83  # esptool ESP32ROM.MAGIC_VALUE
APB_CTL_DATE = 0x3FF6607C
APB_CTL_DATE_VALUE = 0x96042000  # bit 31 set: chip revision bit 2 (rev v3)
UART0_CLKDIV = 0x3FF40014
RTCCALICFG1 = 0x3FF5F06C
RTC_CALI_VALUE = 1896  # with CK8M 0x36 the ROM computes 39.99 MHz, so esptool picks 40 MHz
GPIO_STRAP = 0x3FF44038
RTC_CNTL_SDIO_CONF = 0x3FF48074


class RegisterBus:
    """Registers of one chip. ``uart_clkdiv`` and ``strap`` are read live from the chip state."""

    def __init__(
        self,
        efuses: Efuses,
        spi: Spi1,
        *,
        uart_clkdiv: Callable[[], int],
        strap: Callable[[], int],
    ) -> None:
        self.spi = spi
        self.efuses = efuses
        self._fixed = {
            ROM_MAGIC_ADDR: ESP32_MAGIC,
            APB_CTL_DATE: APB_CTL_DATE_VALUE,
            RTCCALICFG1: RTC_CALI_VALUE << 7,
        }
        self._live = {UART0_CLKDIV: uart_clkdiv, GPIO_STRAP: strap}
        self._ram: dict[int, int] = {RTC_CNTL_SDIO_CONF: 0}

    def reset(self) -> None:
        """A chip reset clears RAM and peripheral state; eFuses and ROM stay."""
        self._ram = {RTC_CNTL_SDIO_CONF: 0}
        self.spi.reset()
        self.efuses.reset()

    def read(self, address: int) -> int:
        address &= 0xFFFFFFFC
        if address in self._fixed:
            return self._fixed[address]
        if address in self._live:
            return self._live[address]() & 0xFFFFFFFF
        if self.efuses.owns(address):
            return self.efuses.read(address)
        if self.spi.owns(address):
            return self.spi.read(address)
        return self._ram.get(address, 0)

    def write(self, address: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        address &= 0xFFFFFFFC
        if address in self._fixed or address in self._live:
            return  # read-only: ROM, status registers
        new = (value & mask) | (self.read(address) & ~mask & 0xFFFFFFFF)
        if self.efuses.owns(address):
            self.efuses.write(address, new)
        elif self.spi.owns(address):
            self.spi.write(address, new)
        else:
            self._ram[address] = new
