"""The ESP32 serial bootloader protocol, as the ROM and the flasher stub speak it.

Wire format and SLIP framing (:mod:`.protocol`, :mod:`.slip`), the common dispatch and the
:class:`~.base.LoaderHost` a loader runs on (:mod:`.base`), and the two personalities
(:mod:`.rom`, :mod:`.stub`). Chip-agnostic: the chip is a :class:`~.base.LoaderHost`.
"""
