"""The simulated board's passive parts: NOR flash, the SPI1 engine, eFuses, the register bus.

They know nothing of loaders or of the serial protocol; the chip and the loaders drive them.
"""
