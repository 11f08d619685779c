"""The simulated ESP32: power, reset and strapping (:mod:`.chip`), what its ROM prints
(:mod:`.boot`) and its second-stage bootloader (:mod:`.bootloader`).
"""
