"""A live handle on one board position: its relays, its serial port, its boot sequences.

``download_mode()`` is the operation the whole rig exists for: on boards without DTR/RTS the
relays must strap GPIO0 low across a reset. It is confirmed, not assumed - by the ROM's banner
(``boot:0x3 (DOWNLOAD_BOOT...``, ``waiting for download``; fact sheet §7) captured on the console,
or failing that by a SYNC answered in SLIP - and retried; when it keeps failing, the error names
the likely cause from what the port did show.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import serial

from rig import config
from rig.board.protocols import RelayLike
from rig.board.sequences import run_sequence
from rig.clock import SYSTEM, Clock
from rig.errors import OperationError, Transient
from rig.esp32 import DOWNLOAD_BANNER, SPI_BOOT, SYNC_FRAME, SYNC_REPLY
from rig.hardware.ports import PortNotFound, PortSpec

__all__ = ["Board", "DownloadEvidence", "DownloadModeError"]


class DownloadModeError(OperationError, Transient):
    """The board did not enter ROM download mode; the message names the likely cause. Worth
    another attempt: the download sequence is run again (a bumped cable, a slow power-up)."""


@dataclass(frozen=True)
class DownloadEvidence:
    attempt: int
    how: str  # "banner" or "sync"
    text: str  # what the console showed


class Board:
    """One slot's board. Relays come from the station; the port is opened only when needed."""

    def __init__(
        self,
        slot_id: str,
        board_type: config.BoardType,
        relays: Mapping[str, RelayLike],
        port: PortSpec,
        *,
        clock: Clock = SYSTEM,
        banner_timeout: float = 1.0,
        sync_timeout: float = 0.3,
        settle: float = 0.1,
    ) -> None:
        self.slot_id = slot_id
        self.type = board_type
        self.relays = relays
        self.port = port
        self.clock = clock
        self.banner_timeout = banner_timeout
        self.sync_timeout = sync_timeout
        self.settle = settle

    @property
    def console_baud(self) -> int:
        return self.type.serial.console_baud

    # -- sequences ------------------------------------------------------------------------------
    def _sequence(self, name: str) -> None:
        steps = getattr(self.type.sequences, name)
        run_sequence(steps, self.relays, self.clock, name=f"{self.slot_id}:{name}")

    def off(self) -> None:
        self._sequence("off")

    def run(self) -> None:
        """Boot the firmware from flash (IO0 released, power/reset per the board's sequence)."""
        self._sequence("run")

    def download_mode(self, retries: int | None = None) -> DownloadEvidence:
        """Power-cycle into ROM download mode, confirm it, retry; raise with the likely cause."""
        attempts = retries or self.type.download_retries
        seen: list[bytes] = []
        for attempt in range(1, attempts + 1):
            try:
                with self._open(self.console_baud) as ser:
                    self.off()
                    self.clock.sleep(self.settle)
                    ser.reset_input_buffer()
                    self._sequence("download")
                    text = self._read_for(ser, self.banner_timeout, DOWNLOAD_BANNER)
                    if DOWNLOAD_BANNER.search(text):
                        return DownloadEvidence(attempt, "banner", text.decode(errors="replace"))
                    if self._sync(ser):
                        return DownloadEvidence(attempt, "sync", text.decode(errors="replace"))
                    seen.append(text)
            except (PortNotFound, serial.SerialException, OSError) as err:
                raise DownloadModeError(
                    f"{self.slot_id}: cannot open serial port {self.port}: {err} "
                    "(wrong port, USB cable unplugged, or board absent)"
                ) from err
        raise DownloadModeError(self._diagnose(seen, attempts))

    def loader_port(self) -> str | serial.SerialBase:
        """What esptool's loader talks through once :meth:`download_mode` returned: the port's
        URL or device path, which the loader opens (and its session closes). The relays hold the
        board in download mode whether the port is open or not."""
        return self.port.resolve()

    # -- console --------------------------------------------------------------------------------
    @contextmanager
    def console(self, baud: int | None = None) -> Iterator[serial.SerialBase]:
        """The board's UART at console baud (the port is closed again on exit)."""
        with self._open(baud or self.console_baud) as ser:
            yield ser

    def expect(self, ser: serial.SerialBase, pattern: str, timeout: float) -> tuple[bool, str]:
        """Read the console until ``pattern`` (regex) shows up or ``timeout``; return the text."""
        rx = re.compile(pattern.encode())
        text = self._read_for(ser, timeout, rx)
        return rx.search(text) is not None, text.decode(errors="replace")

    # -- helpers --------------------------------------------------------------------------------
    @contextmanager
    def _open(self, baud: int) -> Iterator[serial.SerialBase]:
        ser = serial.serial_for_url(self.port.resolve(), baudrate=baud, timeout=0.05)
        try:
            yield ser
        finally:
            ser.close()

    @staticmethod
    def _read_for(ser: serial.SerialBase, timeout: float, stop: re.Pattern) -> bytes:
        """Serial I/O runs on wall time (the port's own timeout), whatever the relay clock is."""
        deadline = time.monotonic() + timeout
        text = b""
        while time.monotonic() < deadline:
            chunk = ser.read(ser.in_waiting or 1)
            if chunk:
                text += chunk
                if stop.search(text):
                    break
        return text

    def _sync(self, ser: serial.SerialBase) -> bool:
        ser.reset_input_buffer()
        ser.write(SYNC_FRAME)
        reply = self._read_for(ser, self.sync_timeout, re.compile(re.escape(SYNC_REPLY)))
        return SYNC_REPLY in reply

    def _diagnose(self, seen: list[bytes], attempts: int) -> str:
        text = b"".join(seen)
        where = f"{self.slot_id}: no ROM download mode after {attempts} attempts on {self.port}"
        boot = SPI_BOOT.search(text)
        if boot:
            return (
                f"{where}: the chip booted from flash ({boot.group(1).decode()}), so GPIO0 was "
                "high at reset - check the io0 relay (wiring, pin number, active_low polarity)"
            )
        if not text.strip(b"\x00"):
            return (
                f"{where}: the port stayed silent - the power/reset relay does not switch the "
                "board, the port belongs to another board, or no board is connected"
            )
        return (
            f"{where}: unexpected console output {text[:80]!r} - wrong console baud "
            f"({self.console_baud}) or a different board on this port"
        )
