"""A flasher session: esptool's loader (through its Python API) on a board in download mode.

The rig owns every reset: esptool runs with ``before=no-reset`` / ``after=no-reset`` and the
board's relay sequences put the chip into download mode first (fact sheet §10). The session
loads the flasher stub, climbs the board's baud ladder to the fastest rate that works (a failed
switch is caught by a register read, and the board is reset and reconnected at the next lower
rate; a rate at which transfers keep failing is given up for the next lower one too), and guards
against flashing the wrong board by checking the MAC on every connect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from esptool.cmds import ADESTO_VENDOR_ID, attach_flash, detect_chip, detect_flash_size, run_stub
from esptool.loader import ESPLoader
from esptool.util import FatalError, flash_size_bytes

from rig.board.board import DownloadModeError
from rig.board.protocols import BoardHandle
from rig.esp32 import MB, ROM_BAUD, format_mac
from rig.operations import fastwrite
from rig.operations.errors import FlasherError, FlashSizeError, Refused, SecurityEnabled, WrongBoard
from rig.operations.esplog import captured
from rig.operations.fastwrite import Progress, WriteStats

__all__ = [
    "FlashSizeError",
    "FlasherError",
    "FlasherSession",
    "Identity",
    "Refused",
    "SecurityEnabled",
    "WrongBoard",
    "megabytes",
    "security_features",
]

READ_CHUNK = 0x40000  # reads are retried per 256 KB chunk
# Transfers that may fail at one rate before the session stops using it. One failure is as
# likely a one-off (a bumped cable, a brown-out) as the rate; a second at the same rate points at
# a link that is marginal there (slow edges on a long cable, a bridge's sampling error: worse the
# shorter the bit cell), which the next lower rung of the ladder usually carries cleanly.
STEP_DOWN_AFTER = 2
# How long the register read after a baud switch waits for its reply. The reply is 12 bytes
# (< 1 ms on the wire at any rung of the ladder), so a link that switched answers at once; one
# that did not (a bridge whose divisor lands off-rate) never answers, and esptool's default of
# 3 s was most of what a 2 Mbaud -> 921600 fallback cost (bench scenario 5). 1 s leaves room
# for a remote slot's round trip.
BAUD_CHECK_TIMEOUT = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    chip: str  # "ESP32-D0WD-V3 (revision v3.0)"
    mac: str  # "24:0a:c4:12:34:56"
    features: tuple[str, ...]
    crystal_mhz: int
    flash_id: int  # RDID as esptool reads it: manufacturer | device << 8
    flash_size: int | None  # bytes, by esptool's RDID size tables; None: not in them
    baud: int  # the rate the session settled on
    security: tuple[str, ...] = ()  # enabled: "flash encryption", "secure boot v1" / "v2"

    @property
    def manufacturer(self) -> str:
        return f"{self.flash_id & 0xFF:02x}"

    @property
    def device(self) -> str:
        return f"{(self.flash_id >> 8) & 0xFF:02x}{(self.flash_id >> 16) & 0xFF:02x}"

    @property
    def size_text(self) -> str:
        return "unknown size" if self.flash_size is None else megabytes(self.flash_size)

    @property
    def size_id(self) -> str:
        """Where esptool found the size in the RDID: Adesto parts carry it in the low 5 bits of
        the device byte, the others in the capacity byte (esptool.cmds._get_flash_info)."""
        if self.flash_id & 0xFF == ADESTO_VENDOR_ID:
            return f"Adesto size id {(self.flash_id >> 8) & 0x1F:#04x}"
        return f"capacity byte {self.flash_id >> 16:#04x}"

    def as_dict(self) -> dict:
        return {**asdict(self), "manufacturer": self.manufacturer, "device": self.device}


def megabytes(size: int) -> str:
    return f"{size / MB:g} MB"


def security_features(esp: ESPLoader) -> tuple[str, ...]:
    """The security features enabled in the chip's eFuses, by esptool's own predicates: flash
    encryption (FLASH_CRYPT_CNT with an odd number of bits set) and secure boot (ABS_DONE_0 =
    v1; ABS_DONE_1 = v2, from chip revision v3.0) - what esptool's erase-flash and erase-region
    refuse to erase without ``force``."""
    found = []
    if esp.get_flash_encryption_enabled():
        found.append("flash encryption")
    if esp.get_secure_boot_enabled():
        found.append("secure boot v1" if esp.get_secure_boot_v1_enabled() else "secure boot v2")
    return tuple(found)


class FlasherSession:
    """Connect, identify, read, MD5, erase, write, verify. Use as a context manager."""

    def __init__(
        self,
        board: BoardHandle,
        *,
        bauds: Sequence[int] | None = None,
        expected_mac: str | None = None,
        connect_attempts: int = 2,
        retries: int = 2,
        backoff: float = 0.5,
        force_erase: bool = False,
    ) -> None:
        """``retries``: how often a failed transfer is resumed after reconnecting (download
        mode by relays again), waiting ``backoff`` seconds, doubled each time. ``force_erase``:
        erase even with flash encryption or secure boot enabled (esptool's ``force``)."""
        self.board = board
        self.force_erase = force_erase
        self.retries = retries
        self.backoff = backoff
        self.recoveries: list[str] = []  # what went wrong and was recovered from
        self._failures_at: dict[int, int] = {}  # baud -> transfers that failed at that rate
        self._reconnect_error: FlasherError | None = None
        self.writing: tuple[int, int] | None = None  # the range of a write not yet verified
        self.bauds = list(bauds if bauds is not None else board.type.serial.bauds)
        self.expected_mac = format_mac(expected_mac) if expected_mac else None
        self.connect_attempts = connect_attempts
        self.esp: ESPLoader | None = None
        self._owns_port = True  # esptool opened the port from its URL (see BoardHandle.loader_port)
        self.identity: Identity | None = None
        self.log_lines: list[str] = []
        self.progress: Progress | None = None

    # -- connection -----------------------------------------------------------------------------
    def __enter__(self) -> FlasherSession:
        """Connect, retried like every other step: a chip that hangs through as many resets
        as the board's download retries gets ``retries`` more rounds, with backoff."""
        for attempt in range(self.retries + 1):
            try:
                self.connect()
                return self
            except WrongBoard:
                raise
            except FlasherError as err:
                if attempt == self.retries:
                    raise
                self.recoveries.append(f"connect: {err}")
                self.board.clock.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> Identity:
        """Download mode by relays, esptool sync + stub, the highest working baud, identity."""
        last: Exception | None = None
        for baud in self._ladder():
            try:
                self._connect_at(baud)
                return self.identity
            except WrongBoard:
                self.close()
                raise
            except (FatalError, OSError, DownloadModeError) as err:
                last = err
                self.close()
                if isinstance(err, DownloadModeError):
                    break  # the board never entered download mode: another baud will not help
        raise FlasherError(f"{self.board.slot_id}: cannot connect: {last}") from last

    def _ladder(self) -> list[int]:
        ladder = sorted({b for b in self.bauds if b >= ROM_BAUD}, reverse=True) or [ROM_BAUD]
        return ladder if ROM_BAUD in ladder else [*ladder, ROM_BAUD]

    def _connect_at(self, baud: int) -> None:
        attempts = 0
        while True:
            attempts += 1
            self.board.download_mode()
            port = self.board.loader_port()
            self._owns_port = isinstance(port, str)
            try:
                with self._esptool():
                    esp = detect_chip(port, connect_mode="no-reset", connect_attempts=3)
                break
            except FatalError:
                if attempts >= self.connect_attempts:
                    raise
        self.esp = esp
        with self._esptool():
            mac = format_mac(bytes(esp.read_mac()))
            if self.expected_mac and mac != self.expected_mac:
                raise WrongBoard(
                    f"{self.board.slot_id}: the board on {self.port} has MAC {mac}, expected "
                    f"{self.expected_mac} - refusing to touch it"
                )
            chip = esp.get_chip_description()
            features = tuple(esp.get_chip_features())
            crystal = esp.get_crystal_freq()
            self.esp = esp = run_stub(esp)
            if baud != ROM_BAUD:
                esp.change_baud(baud)
                # a garbled link fails here, not mid-transfer
                esp.read_reg(0x40001000, timeout=BAUD_CHECK_TIMEOUT)
            attach_flash(esp)
            flash_id = esp.flash_id()
            size = flash_size_bytes(detect_flash_size(esp))
            security = security_features(esp)
        self.identity = Identity(chip, mac, features, crystal, flash_id, size, baud, security)
        self.expected_mac = mac  # a reconnect must find the same board

    def close(self) -> None:
        """Close the port esptool opened; a port the board holds (a remote slot's connection)
        stays open: the board closes it when its slot releases the board."""
        if self.esp is not None:
            if self._owns_port:
                try:
                    self.esp._port.close()
                except OSError:
                    pass
            self.esp = None

    @property
    def port(self) -> str:
        return self.board.port.resolve()

    @contextlib.contextmanager
    def _esptool(self):
        """esptool's logger captured into this session (its progress goes to ours)."""

        def progress(done: int, total: int, _prefix: str) -> None:
            if self.progress is not None:
                self.progress(done, total)

        with captured(progress) as logger:
            try:
                yield logger
            finally:
                self.log_lines.extend(logger.lines)

    def _require(self) -> ESPLoader:
        if self.esp is None:
            if self._reconnect_error is not None:  # say why, not just that
                raise FlasherError(
                    f"{self.board.slot_id}: reconnect failed: {self._reconnect_error}"
                )
            raise FlasherError(f"{self.board.slot_id}: not connected")
        return self.esp

    # -- recovery -------------------------------------------------------------------------------
    def reconnect(self) -> None:
        """Relays into download mode again, esptool, stub, the same baud ladder, same MAC."""
        self.close()
        try:
            self.connect()
        except FlasherError as err:
            self._reconnect_error = err
            raise
        self._reconnect_error = None

    def _recovering(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; after a transient failure reconnect (with backoff) and run it again."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except WrongBoard:
                raise
            except FlasherError as err:
                if attempt == self.retries:
                    raise
                self.recover(f"{what}: {err}", attempt, err)
        raise AssertionError("unreachable")

    def recover(self, what: str, attempt: int, err: FlasherError) -> None:
        """Note the failure, wait (``backoff``, doubled per attempt), reconnect - one rung down
        the baud ladder if transfers keep failing at this rate. A failed reconnect is noted too
        (and named by the next attempt); a wrong board is fatal."""
        self.recoveries.append(what)
        self._step_down_if_marginal(err)
        self.board.clock.sleep(self.backoff * 2**attempt)
        try:
            self.reconnect()
        except WrongBoard:
            raise
        except FlasherError as again:
            self.recoveries.append(f"reconnect: {again}")

    def _step_down_if_marginal(self, err: FlasherError) -> None:
        """Count a transfer that failed on a live link at its rate; at the
        :data:`STEP_DOWN_AFTER`-th, drop that rate and the faster ones from the ladder, so the
        reconnect starts one rung lower. Not counted: a write that went through but did not
        verify (the link was fine) and a failure without a connection (a failed reconnect)."""
        if fastwrite.is_verify_mismatch(err) or self.esp is None or self.identity is None:
            return
        baud = self.identity.baud
        failures = self._failures_at[baud] = self._failures_at.get(baud, 0) + 1
        lower = [b for b in self._ladder() if b < baud]
        if failures < STEP_DOWN_AFTER or not lower:
            return
        self.bauds = lower
        self.recoveries.append(
            f"baud: {failures} transfers failed at {baud} baud; reconnecting at {lower[0]}"
        )

    def call(self, what: str, fn: Callable[[ESPLoader], T]) -> T:
        """One esptool call, its errors turned into FlasherError naming the board."""
        esp = self._require()
        try:
            with self._esptool():
                return fn(esp)
        except (FatalError, OSError) as err:
            raise FlasherError(f"{self.board.slot_id}: {what}: {err}") from err

    # -- guards ---------------------------------------------------------------------------------
    def require_flash_size(self) -> int:
        """The size every whole-flash operation (dump, erase, write, restore) relies on.

        It is the size esptool decodes from the chip's RDID, and it must be the board type's
        ``flash.size``; otherwise :class:`FlashSizeError`. An unknown size would give a 0-byte
        "backup", a blank check that proves nothing and a restore that writes nothing; a chip
        that reports less than the board has would get a partial backup.
        """
        ident = self.identity
        if ident is None:
            raise FlasherError(f"{self.board.slot_id}: not connected")
        board_type = self.board.type
        expected = f"the {board_type.name} board type has {megabytes(board_type.flash_size)}"
        if ident.flash_size is None:
            raise FlashSizeError(
                f"{self.board.slot_id}: flash size is unknown: the chip's RDID {ident.flash_id:06x}"
                f" has {ident.size_id}, which esptool's size tables do not know ({expected}) - "
                "refusing to dump, erase or write a flash of unknown size"
            )
        if ident.flash_size != board_type.flash_size:
            raise FlashSizeError(
                f"{self.board.slot_id}: the flash chip reports {megabytes(ident.flash_size)} "
                f"(RDID {ident.flash_id:06x}) but {expected} - refusing: a backup of what the "
                "chip reports would not be the whole flash (another board, or a remarked chip?)"
            )
        return ident.flash_size

    def _check_erasable(self, what: str) -> None:
        """Before any erase: the flash size, and the eFuses read again (esptool's check)."""
        self.require_flash_size()
        if self.force_erase:
            return
        found = self._recovering("eFuses", lambda: self.call("eFuses", security_features))
        if found:
            raise SecurityEnabled(
                f"{self.board.slot_id}: {what} refused: "
                + " and ".join(f"{feature} is enabled" for feature in found)
                + " (eFuses): erased, the chip can be left unable to boot (it runs only images "
                "encrypted or signed for it), so esptool refuses this erase too; --force erases "
                "anyway"
            )

    # -- operations -----------------------------------------------------------------------------
    def read(self, offset: int, length: int, progress: Progress | None = None) -> bytes:
        """Read in chunks; a chunk that fails is read again after a reconnect."""
        parts: list[bytes] = []
        for start in range(offset, offset + length, READ_CHUNK):
            size = min(READ_CHUNK, offset + length - start)
            base = start - offset

            def on_block(done: int, _total: int, _offset: int, base: int = base) -> None:
                if progress is not None:
                    progress(base + done, length)

            what = f"read {start:#x}+{size:#x}"
            parts.append(
                self._recovering(
                    what,
                    lambda s=start, n=size, w=what, cb=on_block: self.call(
                        w, lambda esp: esp.read_flash(s, n, cb)
                    ),
                )
            )
        return b"".join(parts)

    def md5(self, offset: int, length: int) -> str:
        what = f"MD5 {offset:#x}+{length:#x}"
        return self._recovering(
            what, lambda: self.call(what, lambda esp: esp.flash_md5sum(offset, length))
        )

    def erase_chip(self) -> None:
        self._check_erasable("chip erase")
        self._recovering(
            "chip erase", lambda: self.call("chip erase", lambda esp: esp.erase_flash())
        )

    def erase_region(self, offset: int, size: int) -> None:
        what = f"erase {offset:#x}+{size:#x}"
        self._check_erasable(what)
        self._recovering(what, lambda: self.call(what, lambda esp: esp.erase_region(offset, size)))

    # -- the verified fast write (rig.operations.fastwrite) -------------------------------------
    def write(self, offset: int, data: bytes, progress: Progress | None = None) -> WriteStats:
        """Verified fast write: MD5 the chip per block, write only what differs, verify all
        (:func:`rig.operations.fastwrite.write`)."""
        return fastwrite.write(self, offset, data, progress)

    def differing_runs(self, offset: int, data: bytes) -> list[tuple[int, bytes]]:
        """Contiguous runs of ``data`` whose chip content differs (by chip-side MD5)."""
        return fastwrite.differing_runs(self, offset, data)

    def verify(self, offset: int, data: bytes) -> bool:
        """The chip's MD5 of the range equals the MD5 of ``data``."""
        return fastwrite.verify(self, offset, data)
