"""A simulated board: an ESP32 with its flash, a USB-serial bridge on a pty, and input contacts.

The inputs are *contacts*, exactly what a relay or a finger closes, so the relay layer drives a
simulated board the way it drives a real one:

* ``io0``   closed = GPIO0 shorted to GND (download mode if latched low at reset)
* ``en``    closed = EN (CHIP_PU) shorted to GND: chip held in reset; opening it resets the chip
* ``power`` closed = the board's power button pressed

The variants (``l7x`` with its soft power latch, ``devkit`` powered from USB with the auto-reset
circuit on its bridge, :mod:`rig.sim.bridge`) and their physics are the table
:data:`rig.config.simulated.SIM_VARIANTS` (fact sheet §7, design.md "Board physics").

Injected faults (:mod:`rig.sim.faults`: line noise, drops, stalls, unplug and re-enumeration,
brown-out, bad sectors, a hung chip, slow flash, console garbage) are given as ``inject=[...]``
or added later with :meth:`SimBoard.inject`; ``port_alias`` names a symlink that always points
at the board's current pty (the stable name a rig opens, as ``/dev/serial/by-id`` on a bench).
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rig.config.simulated import SIM_VARIANTS
from rig.esp32 import format_mac, parse_mac

from .bridge import UsbBridge
from .chip.chip import Esp32Chip
from .errors import PowerLost
from .events import EventLog
from .faults import Fault, FaultInjector
from .parts.efuse import UNSECURED, Security, mac_from_seed
from .parts.flash import INSTANT, REALISTIC, NorFlash
from .scheduler import Scheduler
from .transport.pty import PtyUart

BOOT_MODES = ("download", "flash")


class SimBoard:
    """One simulated board. Use as a context manager, or call :meth:`close`."""

    EN_RISE_DELAY = UsbBridge.EN_RISE_DELAY  # EN's RC after the auto-reset lets it go (devkit)

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
        chip_costs: float | None = None,
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
        flash-encryption and secure-boot eFuses burnt on the chip. ``chip_costs``: the scale of
        the loaders' flash-read and MD5 time (rig.sim.loader.costs); default 1 with
        ``realtime``, else 0 (free)."""
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
            chip_costs=(1.0 if realtime else 0.0) if chip_costs is None else chip_costs,
            busy=self._flash_sleep,
        )
        self._contacts = dict.fromkeys(self.variant.inputs, False)
        # DTR/RTS and the auto-reset pulls they make; the USB cable.
        self.bridge = UsbBridge(
            self,
            auto_reset=self.variant.modem_lines,
            usb_powered=self.variant.always_powered,
        )
        self._latched = False
        self._press_while_running = False
        self.events = EventLog(self.name)  # [(monotonic time, what happened), ...]
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
        with self.changing_inputs(self._would_stop_chip(name, closed)):
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

    @contextmanager
    def changing_inputs(self, stops_chip: bool) -> Iterator[None]:
        """The board's lock, for an input change; one that stops the chip first interrupts a
        slow flash operation holding the lock (the chip dies under it, as on a board)."""
        if stops_chip:
            self._cut.set()
        with self.lock:
            self._cut.clear()
            yield

    @property
    def modem_lines(self) -> tuple[bool, bool]:
        """The host's (DTR, RTS), pyserial sense (True = asserted)."""
        return self.bridge.modem_lines

    def set_modem_lines(self, dtr: bool, rts: bool) -> None:
        """The host's DTR/RTS (pyserial sense: True = asserted, line low), e.g. over RFC 2217:
        a devkit's auto-reset circuit pulls EN or IO0 low (:mod:`rig.sim.bridge`); an l7x's
        CH330 has no DTR/RTS, the lines reach nothing."""
        self.bridge.set_modem_lines(dtr, rts)

    def en_pulled_low(self) -> None:
        """The auto-reset transistor pulled EN low (under the lock)."""
        if not self._contacts["en"] and self._supply():
            self.chip.hold_in_reset()

    def en_risen(self) -> None:
        """EN rose after the auto-reset let it go (scheduler, under the lock)."""
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
        self.bridge.unplug(gone)

    def replug(self) -> None:
        self.bridge.replug()

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
        if self._contacts.get("en") or self.bridge.en_low:
            self.chip.powered = True
            self.chip.hold_in_reset()
        else:
            self._reset_chip()

    def usb_supply(self, present: bool) -> None:
        """The USB cable's supply went away or came back (a USB-powered board; scheduler)."""
        if present:
            self.log_event("power on (USB plugged in)")
            self._supply_back()
        else:
            self.log_event("power off (USB unplugged)")
            self.chip.power_off()

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
        io0_low = self._contacts["io0"] or self.bridge.io0_low
        self.chip.reset(io0_low=io0_low)
        if io0_low and self.fail_connects > 0:
            self.fail_connects -= 1
            self.log_event("chip hangs after reset (injected fault)")
            self.chip.hang()

    def _on_en(self, closed: bool) -> None:
        if not self._supply():
            return
        if not closed and self.bridge.en_low:
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
        self.events.record(what)
