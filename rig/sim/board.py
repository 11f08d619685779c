"""A simulated board: an ESP32 with its flash, a USB-serial bridge on a pty, and input contacts.

The inputs are *contacts*, exactly what a relay or a finger closes, so the relay layer drives a
simulated board the way it drives a real one:

* ``io0``   closed = GPIO0 shorted to GND (download mode if latched low at reset)
* ``en``    closed = EN (CHIP_PU) shorted to GND: chip held in reset; opening it resets the chip
* ``power`` closed = the board's power button pressed

Variants (:data:`rig.config.simulated.SIM_VARIANTS`; fact sheet §7, design.md "Board physics"):

* ``l7x`` - Vigotech VG-L7X: CH330 bridge without DTR/RTS, soft power latch. Pressing the button
  powers the ESP32; a firmware that boots latches the supply on, so its board stays on after the
  button is released (a later press-and-release switches it off, as the firmware's button
  handler does). The ROM does not latch: in download mode the board is powered only while the
  button is held, and releasing it browns the chip out (silence, RAM state lost).
* ``devkit`` - ESP32-DevKitC style: powered from USB all the time, EN and IO0 inputs, and the
  classic two-transistor auto-reset circuit on its bridge's DTR/RTS
  (:meth:`SimBoard.set_modem_lines`, driven over RFC 2217 by :mod:`rig.sim.rfc2217`): EN is
  pulled low while RTS is asserted and DTR is not, IO0 while DTR is asserted and RTS is not. The
  pull-downs are wired-OR with the relay contacts. EN rises through its RC
  (:attr:`SimBoard.EN_RISE_DELAY`) once nothing pulls it.

Injected faults (:mod:`rig.sim.faults`: line noise, drops, stalls, unplug and re-enumeration,
brown-out, bad sectors, a hung chip, slow flash, console garbage) are given as ``inject=[...]``
or added later with :meth:`SimBoard.inject`; ``port_alias`` names a symlink that always points
at the board's current pty (the stable name a rig opens, as ``/dev/serial/by-id`` on a bench).
"""

from __future__ import annotations

import os
import re
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

from rig.config.simulated import SIM_VARIANTS
from rig.esp32 import format_mac, parse_mac

from .chip.chip import Esp32Chip
from .errors import PowerLost
from .faults import Fault, FaultInjector
from .parts.efuse import UNSECURED, Security, mac_from_seed
from .parts.flash import INSTANT, REALISTIC, NorFlash
from .scheduler import Scheduler
from .transport.pty import PtyUart

BOOT_MODES = ("download", "flash")


class SimBoard:
    """One simulated board. Use as a context manager, or call :meth:`close`."""

    # Seconds from the auto-reset transistor letting EN go until EN crosses the chip's threshold
    # (EN pull-up and capacitor; 10 kOhm with the usual 10 uF "auto-reset fix" gives ~0.14 s).
    # Over RFC 2217 each DTR/RTS change costs the client at least 50 ms (pyserial polls for the
    # server's acknowledgement), so esptool's ClassicReset passes through (DTR, RTS) = (1, 1) for
    # ~50 ms before IO0 goes low and keeps IO0 low for >= 150 ms after: an EN that rose faster
    # than ~0.1 s would boot from flash, one slower than ~0.2 s would miss the IO0 strap.
    EN_RISE_DELAY = 0.15

    def __init__(
        self,
        variant: str = "l7x",
        *,
        mac: str | bytes | None = None,
        seed: str | int = 0,
        flash_size: int = 0x400000,
        flash_id: int | None = None,
        security: Security = UNSECURED,
        flash_image: str | Path | bytes | None = None,
        realtime: bool = False,
        on_close: str = "keep",
        boot: str | None = None,
        name: str | None = None,
        fail_connects: int = 0,
        max_baud: int | None = None,
        inject: Iterable[Fault] = (),
        inject_seed: str | int | None = None,
        port_alias: str | Path | None = None,
    ) -> None:
        """``flash_id``: the flash chip's RDID answer as esptool's ``flash_id()`` reads it
        (manufacturer | memory type << 8 | capacity << 16); default the Winbond W25Q part of
        ``flash_size``. It models another part (an Adesto id encodes the size differently), one
        whose capacity byte esptool does not know, or one that reports less than the array
        holds (a remarked chip): the array stays ``flash_size`` bytes. ``security``: the
        flash-encryption and secure-boot eFuses burnt on the chip."""
        if variant not in SIM_VARIANTS:
            known = ", ".join(SIM_VARIANTS)
            raise ValueError(f"unknown board variant {variant!r} (known: {known})")
        if on_close not in ("keep", "reset"):
            raise ValueError(f"on_close must be 'keep' or 'reset', not {on_close!r}")
        if boot is not None and boot not in BOOT_MODES:
            raise ValueError(f"boot must be one of {BOOT_MODES}, not {boot!r}")
        self.variant = SIM_VARIANTS[variant]
        self.name = name or f"{variant}-{seed}"
        if isinstance(mac, str):
            mac = parse_mac(mac)
        self.mac: bytes = mac if mac is not None else mac_from_seed(f"{variant}:{seed}")
        self.on_close = on_close
        # A fault benches show: a chip that hangs silently after its first N resets into
        # download mode, then works (a flaky contact, a marginal supply).
        self.fail_connects = fail_connects
        self.default_boot = boot or "download"
        self.lock = threading.RLock()
        self._cut = threading.Event()  # set while a power cut / reset waits for the lock
        # Internal errors of the simulator itself (a bug, never a protocol error): kept so tests
        # can insist there are none, while the board keeps serving like a chip would.
        self.faults: list[str] = []
        self.flash = NorFlash(
            flash_size,
            jedec_id=flash_id,
            timing=REALISTIC if realtime else INSTANT,
            sleep=self._flash_sleep,
        )
        if isinstance(flash_image, bytes):
            self.flash.preload(0, flash_image)
        elif flash_image is not None:
            self.flash.load(flash_image)
        self.uart = PtyUart(
            self._on_receive,
            on_host_close=self._on_host_close,
            pacing=realtime,
            name=self.name,
            max_baud=max_baud,
            alias=port_alias,
        )
        self.scheduler = Scheduler(self.lock, name=self.name, on_error=self.faults.append)
        self.chip = Esp32Chip(
            self.flash,
            self.mac,
            self.uart,
            self.scheduler,
            on_firmware_started=self._firmware_started,
            security=security,
        )
        self._contacts = dict.fromkeys(self.variant.inputs, False)
        # The host's DTR/RTS (pyserial sense, True = asserted) and the auto-reset pulls they make.
        self.modem_lines: tuple[bool, bool] = (False, False)
        self._modem_en_low = False
        self._modem_io0_low = False
        self._en_rise = 0  # generation of the pending EN rise (a newer pull cancels it)
        self._latched = False
        self._press_while_running = False
        self.events: list[tuple[float, str]] = []  # (monotonic time, what happened)
        # RIG_SIM_TRACE=FILE: every event is also appended there ("<time> <board> <event>"), so
        # a test can follow a simulated board living inside another process (rig CLI).
        self._trace = os.environ.get("RIG_SIM_TRACE") or None
        self._inject_seed = seed if inject_seed is None else inject_seed
        self._injector: FaultInjector | None = None
        for fault in inject:  # before the board powers up: garbage at its first reset
            self.injector.add(fault)
        if self.variant.always_powered:
            with self.lock:
                self.log_event("power on (USB)")
                self.chip.reset(io0_low=False)
        if boot is not None:
            self.boot_into(boot)

    # -- identity -------------------------------------------------------------------------------
    @property
    def port(self) -> str:
        """The serial port path (the pty slave) a host opens."""
        return self.uart.path

    @property
    def port_alias(self) -> str:
        """The stable name of the port (the alias symlink if there is one, else the pty)."""
        return self.uart.port

    @property
    def mac_str(self) -> str:
        return format_mac(self.mac)

    @property
    def powered(self) -> bool:
        return self.chip.powered

    @property
    def mode(self) -> str:
        """off | reset | download | stub | firmware | halted"""
        return self.chip.mode

    # -- inputs ---------------------------------------------------------------------------------
    def contact(self, name: str) -> bool:
        self._check_input(name)
        return self._contacts[name]

    def set_contact(self, name: str, closed: bool) -> None:
        """Close or open one input contact (what a relay does)."""
        self._check_input(name)
        if self._would_stop_chip(name, closed):
            self._cut.set()  # interrupt a slow flash operation holding the lock
        with self.lock:
            self._cut.clear()
            if self._contacts[name] == closed:
                return
            self._contacts[name] = closed
            self.log_event(f"{name} {'closed' if closed else 'open'}")
            getattr(self, f"_on_{name}")(closed)

    def press(self, name: str) -> None:
        self.set_contact(name, True)

    def release(self, name: str) -> None:
        self.set_contact(name, False)

    def pulse(self, name: str, seconds: float = 0.1) -> None:
        self.press(name)
        time.sleep(seconds)
        self.release(name)

    def set_modem_lines(self, dtr: bool, rts: bool) -> None:
        """The host's DTR/RTS (pyserial sense: True = asserted, line low), e.g. over RFC 2217.

        devkit: the two-transistor auto-reset circuit - EN pulled low while ``rts and not dtr``,
        IO0 pulled low while ``dtr and not rts``; when EN is let go it rises after
        :attr:`EN_RISE_DELAY` and the chip samples IO0 then. l7x: its CH330 has no DTR/RTS, the
        lines reach nothing.
        """
        self.modem_lines = (dtr, rts)
        if not self.variant.modem_lines:
            return
        en_low, io0_low = rts and not dtr, dtr and not rts
        if en_low and not self._modem_en_low:
            self._cut.set()  # interrupt a slow flash operation holding the lock
        with self.lock:
            self._cut.clear()
            if io0_low != self._modem_io0_low:
                self._modem_io0_low = io0_low
                self.log_event(f"io0 {'pulled low' if io0_low else 'released'} (DTR/RTS)")
            if en_low == self._modem_en_low:
                return
            self._modem_en_low = en_low
            self._en_rise += 1
            self.log_event(f"en {'pulled low' if en_low else 'released'} (DTR/RTS)")
            if en_low:
                if not self._contacts["en"] and self._supply():
                    self.chip.hold_in_reset()
            elif not self._contacts["en"]:
                rise = self._en_rise
                self.scheduler.call_later(self.EN_RISE_DELAY, lambda: self._en_risen(rise))

    def _en_risen(self, rise: int) -> None:
        """EN crossed the threshold after the auto-reset let it go (scheduler, under the lock)."""
        if rise != self._en_rise or self._modem_en_low or self._contacts["en"]:
            return
        if self._supply():
            self.log_event("en high (auto-reset)")
            self._reset_chip()

    def boot_into(self, mode: str) -> None:
        """Reset the board into ``download`` or ``flash`` boot, as a person with a jumper would.

        l7x: power off, IO0 set, press power and keep it pressed (the ROM never latches the
        supply, and a firmware latches it only once it has booted). devkit: EN low, IO0 set,
        EN high. IO0 is released afterwards: the strapping is latched at reset.
        """
        if mode not in BOOT_MODES:
            raise ValueError(f"boot mode must be one of {BOOT_MODES}, not {mode!r}")
        with self.lock:
            if "power" in self._contacts and not self.variant.always_powered:
                self.set_contact("power", False)
                self._power_off_now()  # even a latched firmware: unplug it
                self.set_contact("io0", mode == "download")
                self.set_contact("power", True)
                self.set_contact("io0", False)
            else:
                self.set_contact("en", True)
                self.set_contact("io0", mode == "download")
                self.set_contact("en", False)
                self.set_contact("io0", False)

    # -- faults -----------------------------------------------------------------------------------
    @property
    def injector(self) -> FaultInjector:
        """The board's fault injector (created on first use)."""
        if self._injector is None:
            self._injector = FaultInjector(self, seed=self._inject_seed)
        return self._injector

    def inject(self, fault: Fault, *, from_now: bool = True) -> Fault:
        """Arm ``fault``; with ``from_now`` its ``after`` counts from the current byte."""
        if from_now:
            return self.injector.add_after_now(fault)
        return self.injector.add(fault)

    def unplug(self, gone: float | None = 1.0) -> None:
        """The USB cable comes out (and goes back in after ``gone`` seconds, unless None). A
        USB-powered board (devkit) loses power with it; an L7X has its own supply."""
        usb_powered = self.variant.always_powered
        back = (lambda: self.scheduler.call_later(0, self._usb_back)) if usb_powered else None
        self.uart.unplug(gone, on_replug=back)
        self.log_event("USB unplugged")
        if usb_powered:
            self.scheduler.call_later(0, self._usb_gone)

    def replug(self) -> None:
        self.uart.replug()

    def brown_out(self, off: float = 0.05) -> None:
        """The supply sags under the chip: it dies mid-whatever and, if the supply is still
        there ``off`` seconds later, boots again from its straps."""
        with self.lock:
            self.log_event("brown-out")
            self._latched = False  # the firmware's latch drops with its chip
            self.chip.power_off()
            self.scheduler.call_later(off, self._supply_back)

    def _supply_back(self) -> None:
        if self.chip.powered or not self._supply():
            return
        self.log_event("supply back")
        if self._contacts.get("en") or self._modem_en_low:
            self.chip.powered = True
            self.chip.hold_in_reset()
        else:
            self._reset_chip()

    def _usb_gone(self) -> None:
        self.log_event("power off (USB unplugged)")
        self.chip.power_off()

    def _usb_back(self) -> None:
        self.log_event("power on (USB plugged in)")
        self._supply_back()

    # -- console ----------------------------------------------------------------------------------
    def console_lines(self) -> list[str]:
        with self.lock:
            return list(self.chip.console)

    def wait_for_console(self, pattern: str, timeout: float = 5.0) -> re.Match | None:
        """Wait until a console line printed so far matches ``pattern`` (regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.console_lines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self.scheduler.close()
        self.uart.close()

    def __enter__(self) -> SimBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- physics ----------------------------------------------------------------------------------
    def _check_input(self, name: str) -> None:
        if name not in self._contacts:
            raise ValueError(
                f"board {self.variant.name} has no input {name!r} "
                f"(inputs: {', '.join(self.variant.inputs)})"
            )

    def _supply(self) -> bool:
        if self.variant.always_powered:
            return True
        return self._contacts.get("power", False) or self._latched

    def _would_stop_chip(self, name: str, closed: bool) -> bool:
        if name == "en":
            return closed
        return name == "power" and not closed and not self._latched

    def _on_io0(self, closed: bool) -> None:
        pass  # sampled only at reset

    def _reset_chip(self) -> None:
        """Rising edge of EN or of the supply: the chip samples GPIO0 and boots."""
        io0_low = self._contacts["io0"] or self._modem_io0_low
        self.chip.reset(io0_low=io0_low)
        if io0_low and self.fail_connects > 0:
            self.fail_connects -= 1
            self.log_event("chip hangs after reset (injected fault)")
            self.chip.hang()

    def _on_en(self, closed: bool) -> None:
        if not self._supply():
            return
        if not closed and self._modem_en_low:
            return  # the auto-reset transistor still holds EN low
        if closed:
            self.chip.hold_in_reset()
        else:
            self._reset_chip()

    def _on_power(self, pressed: bool) -> None:
        was_powered = self.chip.powered
        if pressed:
            if self._latched:
                self._press_while_running = True  # the firmware sees a new press
                return
            if not was_powered:
                self.log_event("power on")
                if self._contacts.get("en"):
                    self.chip.powered = True
                    self.chip.hold_in_reset()
                else:
                    self._reset_chip()
            return
        if self._latched:
            if self._press_while_running:
                self.log_event("firmware releases the power latch")
                self._power_off_now()
            return
        self._power_off_now()

    def _power_off_now(self) -> None:
        self._latched = False
        self._press_while_running = False
        if self.chip.powered:
            self.log_event("power off")
            self.chip.power_off()

    def _firmware_started(self) -> None:
        if self.variant.soft_power_latch and self.chip.powered:
            self._latched = True
            self.log_event("firmware latches power on")

    def _flash_sleep(self, seconds: float) -> None:
        if seconds > 0 and self._cut.wait(seconds):
            raise PowerLost()

    def _on_receive(self, data: bytes) -> None:
        with self.lock:
            try:
                self.chip.receive(data)
            except PowerLost:
                pass  # the chip died mid-operation; the contact change finishes the job
            except Exception:  # a simulator bug: record it, keep the board alive
                self.faults.append(traceback.format_exc())

    def _on_host_close(self) -> None:
        if self.on_close == "reset":
            self.log_event("host closed the port: reset")
            self.boot_into(self.default_boot)

    def log_event(self, what: str) -> None:
        """Record what happened to the board (``events``, and ``RIG_SIM_TRACE`` if set)."""
        now = time.monotonic()
        self.events.append((now, what))
        if len(self.events) > 10000:
            del self.events[:5000]
        if self._trace is not None:
            try:
                with open(self._trace, "a") as f:
                    f.write(f"{now:.3f} {self.name} {what}\n")
            except OSError:
                self._trace = None
