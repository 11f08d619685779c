"""The hardware-in-the-loop suite's building blocks, as plain functions (no pytest needed).

The pytest plugin (:mod:`rig.pytest_plugin`) wraps these in fixtures; a script, a notebook or
another test runner can use them directly::

    from rig import hil_core as hil

    sel = hil.select(boards=["l7x"], slots=["l7x-1"])
    with hil.open_station(sel) as station:
        slot = station.open_slot("l7x-1")
        store = hil.backup_store(sel)
        with hil.flasher(slot) as esp:                 # download mode by relays
            dump = hil.dump_backup(esp, store, hil.backup_meta(sel, slot))
            hil.erase_and_check(esp)
            hil.write_verified(esp, hil.catalog_image(slot.board_type, "custom-grbl"))
        check = hil.boot(slot, slot.board_type.firmware_named("custom-grbl").console)
        # put the original back, onto that board only
        hil.ensure_flash(slot, 0, dump.backup.read(), expected_mac=dump.backup.mac)

Everything goes through the same layers as the CLI (station -> board -> flasher -> operations);
nothing here knows or asks whether a slot is simulated.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import esptool

from . import __version__, config
from .backups import Backup, BackupStore
from .board.station import LiveSlot, LiveStation
from .flasher import FlasherSession, Identity, WriteStats
from .operations import (
    GENERIC_BOOT,
    BootCheck,
    Image,
    OperationError,
    boot_check,
    current_backup,
    firmware_in,
    resolve_images,
)

__all__ = [
    "Artifacts",
    "DumpResult",
    "Image",
    "Selection",
    "SelectionError",
    "SlotState",
    "Transfer",
    "WriteResult",
    "backup_meta",
    "backup_store",
    "blank_md5",
    "boot",
    "catalog_image",
    "dump_backup",
    "ensure_flash",
    "erase_and_check",
    "flasher",
    "identity_properties",
    "known_boards",
    "open_station",
    "original_firmware",
    "parse_names",
    "select",
    "split_chip",
    "write_verified",
]


# -- selection -------------------------------------------------------------------------------------
class SelectionError(ValueError):
    """Bad ``--board`` / ``--slot`` / ``--station`` / ``--firmware`` input (nothing touched)."""


@dataclass(frozen=True)
class Selection:
    """The station to use (with ``--backups`` and ``--firmware`` applied) and its chosen slots."""

    station: config.Station
    slots: tuple[config.Slot, ...]
    boards: tuple[str, ...]  # the board types selected (in --board order, else slot order)
    overrides: tuple[tuple[str, str, Path], ...] = ()  # (board type, firmware name, file)

    @property
    def backups(self) -> Path:
        return Path(self.station.backups)

    @property
    def slot_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.slots)

    def board_type(self, slot: config.Slot | str) -> config.BoardType:
        return self.station.board_of(slot)

    def describe(self) -> str:
        where = self.station.source or "embedded"
        slots = ", ".join(f"{s.id} ({s.board})" for s in self.slots)
        return f"station {self.station.name} ({where}); slots: {slots}; backups: {self.backups}"


def parse_names(values: Iterable[str] | None) -> list[str]:
    """``["l7x,esp32-devkitc", "l7x"]`` -> ``["l7x", "esp32-devkitc"]`` (order kept, no repeats)."""
    names: list[str] = []
    for value in values or ():
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def known_boards(station: config.Station) -> list[str]:
    """Every board type this station can name: its own, the shipped ones, a local boards dir."""
    names = set(station.boards)
    with contextlib.suppress(config.ConfigError):
        names |= set(config.load_boards(config.board_dirs_for(station.source)))
    return sorted(names)


def _slot_list(station: config.Station) -> str:
    return ", ".join(f"{s.id} ({s.board})" for s in station.slots)


def select(
    *,
    boards: Iterable[str] = (),
    slots: Iterable[str] = (),
    station_path: str | os.PathLike[str] | None = None,
    backups: str | os.PathLike[str] | None = None,
    firmware: Iterable[str] = (),
) -> Selection:
    """Validate a selection: board type names (``"a,b"`` allowed), slot ids, ``NAME=FILE``
    firmware overrides. No board and no slot selects every slot of the station.

    Raises :class:`SelectionError` with a message naming what is known.
    """
    try:
        station = config.station_from_env(station_path)
    except config.ConfigError as err:
        raise SelectionError(f"station config: {err.report()}") from None
    board_names = parse_names(boards)
    slot_ids = parse_names(slots)
    known = known_boards(station)
    for name in board_names:
        if name not in known:
            raise SelectionError(
                f"unknown board {name!r} (known boards: {', '.join(known) or 'none'})"
            )
        if not any(s.board == name for s in station.slots):
            raise SelectionError(
                f"station {station.name} has no {name} slot (slots: {_slot_list(station)})"
            )
    ids = [s.id for s in station.slots]
    for slot_id in slot_ids:
        if slot_id not in ids:
            raise SelectionError(
                f"no slot {slot_id!r} in station {station.name} (slots: {_slot_list(station)})"
            )
        board = station.slot(slot_id).board
        if board_names and board not in board_names:
            raise SelectionError(
                f"slot {slot_id} holds a board of type {board}, not {' or '.join(board_names)}"
            )
    chosen = [
        s
        for s in station.slots
        if (not slot_ids or s.id in slot_ids) and (not board_names or s.board in board_names)
    ]
    chosen_boards = tuple(board_names) or tuple(dict.fromkeys(s.board for s in chosen))
    update: dict[str, Any] = {}
    if backups is not None:
        update["backups"] = Path(os.path.expanduser(os.fspath(backups))).resolve()
    overrides = _firmware_overrides(station, chosen_boards, firmware)
    if overrides:
        update["boards"] = _apply_overrides(station.boards, overrides)
    if update:
        station = station.model_copy(update=update)
    return Selection(station, tuple(chosen), chosen_boards, tuple(overrides))


def _firmware_overrides(
    station: config.Station, boards: Sequence[str], specs: Iterable[str]
) -> list[tuple[str, str, Path]]:
    out: list[tuple[str, str, Path]] = []
    for spec in specs or ():
        name, sep, file = spec.partition("=")
        name, file = name.strip(), file.strip()
        if not sep or not name or not file:
            raise SelectionError(f"--firmware takes NAME=FILE (got {spec!r})")
        path = Path(os.path.expanduser(file)).resolve()
        if not path.is_file():
            raise SelectionError(f"--firmware {name}={file}: no such file")
        hits = [b for b in boards if any(fw.name == name for fw in station.boards[b].firmware)]
        if not hits:
            catalogs = "; ".join(
                f"{b}: {', '.join(fw.name for fw in station.boards[b].firmware) or 'none'}"
                for b in boards
            )
            raise SelectionError(f"--firmware: no firmware {name!r} in the catalog ({catalogs})")
        out += [(board, name, path) for board in hits]
    return out


def _apply_overrides(
    boards: dict[str, config.BoardType], overrides: Sequence[tuple[str, str, Path]]
) -> dict[str, config.BoardType]:
    """Board types whose catalog entries point at the override files (sha256 taken from them;
    offset and console pattern kept)."""
    out = dict(boards)
    for board_name, name, path in overrides:
        board = out[board_name]
        entries = []
        for fw in board.firmware:
            if fw.name == name:
                fields = fw.model_dump()
                fields["file"] = str(path)
                fields["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                fw = config.Firmware.model_validate(fields)
            entries.append(fw)
        out[board_name] = board.model_copy(update={"firmware": tuple(entries)})
    return out


def open_station(selection: Selection) -> LiveStation:
    """A live station over the selection's (overridden) config; close it to release all."""
    return LiveStation(selection.station)


def backup_store(selection: Selection) -> BackupStore:
    return BackupStore(selection.backups)


def backup_meta(selection: Selection, slot: LiveSlot | config.Slot) -> dict[str, Any]:
    cfg = slot.config if isinstance(slot, LiveSlot) else slot
    return {"station": selection.station.name, "slot": cfg.id, "board_type": cfg.board}


# -- per-slot state ----------------------------------------------------------------------------
@dataclass
class SlotState:
    """What a run has learnt about one slot's board."""

    slot_id: str
    identity: Identity | None = None
    dump: DumpResult | None = None  # the session's verified backup
    touched: bool = False  # a test that could change the flash ran since the last restore

    @property
    def backup(self) -> Backup | None:
        return self.dump.backup if self.dump is not None else None


# -- flasher sessions --------------------------------------------------------------------------
@contextlib.contextmanager
def flasher(
    slot: LiveSlot,
    *,
    track: Callable[[FlasherSession], None] | None = None,
    expected_mac: str | None = None,
) -> Iterator[FlasherSession]:
    """A connected flasher session (board put in download mode by its relays).

    ``track`` sees the session before it connects (to collect its esptool log even when the
    connect fails). ``expected_mac`` (default: the slot's configured one) makes the connect
    refuse any other board (:class:`~rig.flasher.WrongBoard`) before anything is read or
    written. On exit - normal, failed connect, exception, signal - the port is closed and every
    relay of the slot is released.
    """
    session = FlasherSession(slot.board, expected_mac=expected_mac or slot.config.expected_mac)
    if track is not None:
        track(session)
    try:
        session.connect()
        yield session
    finally:
        try:
            session.close()
        finally:
            slot.relays.release_all()


def split_chip(description: str) -> tuple[str, str]:
    """``"ESP32-D0WD-V3 (revision v3.0)"`` -> ``("ESP32-D0WD-V3", "v3.0")``."""
    match = re.fullmatch(r"\s*(.*?)\s*\(revision\s+([^)]+)\)\s*", description)
    if match:
        return match.group(1), match.group(2)
    return description.strip(), ""


def identity_properties(identity: Identity) -> dict[str, str]:
    """The JUnit properties of a board's identity."""
    chip, revision = split_chip(identity.chip)
    return {
        "mac": identity.mac,
        "chip": chip,
        "revision": revision,
        "flash_id": f"{identity.flash_id:06x}",
        "flash_size": str(identity.flash_size),
        "baud": str(identity.baud),
    }


# -- measured operations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Transfer:
    size: int  # bytes
    seconds: float

    @property
    def bytes_per_s(self) -> int:
        return round(self.size / self.seconds) if self.seconds > 0 else 0


@dataclass(frozen=True)
class DumpResult:
    backup: Backup
    chip_md5: str  # the chip's MD5 of the whole flash, taken right after the read
    transfer: Transfer
    reused: bool  # identical to the store's latest verified backup of this MAC: not stored twice


@dataclass(frozen=True)
class WriteResult:
    image: Image
    stats: WriteStats
    transfer: Transfer  # bytes actually sent, and the time of the whole verified write


@functools.lru_cache(maxsize=8)
def blank_md5(size: int) -> str:
    return hashlib.md5(b"\xff" * size).hexdigest()


def dump_backup(
    session: FlasherSession,
    store: BackupStore,
    meta: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> DumpResult:
    """Read the whole flash, check it against the chip's own MD5, keep it as a verified backup.

    A dump that a verified backup of this MAC already holds is not stored again (a CI runner
    would otherwise pile up one copy per run): that backup is returned, re-verified by this
    dump. "Already holds" is :func:`~rig.operations.current_backup`, the one rule every
    destructive step applies before it relies on a backup. Raises
    :class:`~rig.operations.OperationError` if the dump does not match the chip.
    """
    ident = session.identity
    size = session.require_flash_size()
    t0 = time.monotonic()
    data = session.read(0, size, progress)
    seconds = time.monotonic() - t0
    chip_md5 = session.md5(0, size)
    if hashlib.md5(data).hexdigest() != chip_md5:
        raise OperationError(
            f"dump of {ident.mac} does not match the chip's MD5 ({chip_md5}): not a backup"
        )
    transfer = Transfer(len(data), seconds)
    existing = current_backup(store, ident.mac, size, chip_md5)
    if existing is not None:
        return DumpResult(existing, chip_md5, transfer, reused=True)
    full = {
        **meta,
        "chip": ident.chip,
        "flash_id": f"{ident.flash_id:06x}",
        "flash_size": size,
        "baud": ident.baud,
        "seconds": round(seconds, 3),
        "rig_version": __version__,
        "esptool_version": esptool.__version__,
    }
    backup = store.save(ident.mac, data, chip_md5, full, flash_size=size)
    return DumpResult(backup, chip_md5, transfer, False)


def erase_and_check(session: FlasherSession) -> tuple[bool, str]:
    """Chip erase, then the chip's MD5 of the whole flash: ``(blank, chip_md5)``."""
    size = session.require_flash_size()
    session.erase_chip()
    chip_md5 = session.md5(0, size)
    return chip_md5 == blank_md5(size), chip_md5


def catalog_image(board_type: config.BoardType, name: str) -> Image:
    """A catalog firmware as a checked image (file, sha256, alignment, fit, chip type)."""
    (image,) = resolve_images([name], board_type)
    return image


def write_verified(
    session: FlasherSession, image: Image, progress: Callable[[int, int], None] | None = None
) -> WriteResult:
    """Verified fast write of ``image``, then a separate verify of it by the chip's MD5."""
    t0 = time.monotonic()
    stats = session.write(image.offset, image.data, progress)
    seconds = time.monotonic() - t0
    if not session.verify(image.offset, image.data):
        raise OperationError(f"{image.name} at {image.offset:#x}: chip MD5 differs after writing")
    return WriteResult(image, stats, Transfer(stats.written, seconds))


def ensure_flash(
    slot: LiveSlot,
    offset: int,
    data: bytes,
    *,
    track: Callable[[FlasherSession], None] | None = None,
    expected_mac: str | None = None,
) -> WriteStats | None:
    """Make the chip hold ``data`` at ``offset``: verify by MD5, write only if it differs.

    Returns None when it already matched, else the stats of the (verified) write. With
    ``expected_mac`` (a backup's MAC when ``data`` is that backup) another board is refused
    before its flash is read or written.
    """
    with flasher(slot, track=track, expected_mac=expected_mac) as session:
        if session.verify(offset, data):
            return None
        return session.write(offset, data)


def original_firmware(flash: bytes, board_type: config.BoardType) -> tuple[Any | None, str]:
    """The catalog firmware a whole-flash backup holds and its console pattern (a generic
    ESP-IDF app start when the backup's app is not in the catalog)."""
    fw = firmware_in(flash, board_type)
    return fw, (fw.console if fw is not None else GENERIC_BOOT)


def boot(slot: LiveSlot, pattern: str, timeout: float | None = None) -> BootCheck:
    """Boot from flash (the board's ``run`` sequence) and wait for ``pattern`` on the console;
    the relays are released afterwards (a booted firmware keeps itself powered)."""
    try:
        return boot_check(slot.board, pattern, timeout)
    finally:
        slot.relays.release_all()


# -- artifacts ---------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(text: str, limit: int = 150) -> str:
    name = _UNSAFE.sub("_", text).strip("_.") or "test"
    if len(name) > limit:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}-{digest}"
    return name


@dataclass
class Artifacts:
    """One test's artifacts directory: ``console.log``, ``esptool.log``, ``relays.log``,
    ``notes.txt`` (the dump's path and other facts). Created on first use."""

    dir: Path
    sessions: list[FlasherSession] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    relay_log: Any = None  # a RelayLog: events after ``relay_start`` go to relays.log
    relay_start: int = 0

    def _ensure(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir

    def track(self, session: FlasherSession) -> None:
        """Collect this flasher session's esptool log lines."""
        self.sessions.append(session)

    def watch_relays(self, relays: Any) -> None:
        """Record the slot's relay actions from now on (``relays``: a RelayBank)."""
        for relay in relays:
            self.relay_log = relay.log
            self.relay_start = len(relay.log.events)
            break

    def console(self, text: str, title: str = "") -> Path:
        path = self._ensure() / "console.log"
        with path.open("a", encoding="utf-8") as f:
            if title:
                f.write(f"----- {title} -----\n")
            f.write(text if text.endswith("\n") or not text else text + "\n")
        return path

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = str(value)
        self.flush()

    def flush(self) -> None:
        """Write what is known so far (safe to call repeatedly)."""
        if not (self.sessions or self.notes or self.relay_log is not None):
            return
        self._ensure()
        if self.sessions:
            parts = []
            for n, session in enumerate(self.sessions, 1):
                parts.append(f"----- flasher session {n} ({session.board.slot_id}) -----")
                parts.extend(session.log_lines)
            (self.dir / "esptool.log").write_text("\n".join(parts) + "\n", encoding="utf-8")
        if self.notes:
            text = "".join(f"{k}: {v}\n" for k, v in self.notes.items())
            (self.dir / "notes.txt").write_text(text, encoding="utf-8")
        if self.relay_log is not None:
            events = self.relay_log.events[self.relay_start :]
            t0 = events[0].t if events else 0.0
            lines = [f"{e.t - t0:9.3f} s  {e.slot}:{e.role} {e.action}" for e in events]
            (self.dir / "relays.log").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def summary(self, tail: int = 12) -> str:
        """What a failure report shows: the directory, notes, and the tails of the logs."""
        self.flush()
        lines = [f"artifacts: {self.dir}"]
        lines += [f"{k}: {v}" for k, v in self.notes.items()]
        for name in ("console.log", "esptool.log", "relays.log"):
            path = self.dir / name
            if not path.is_file():
                continue
            content = path.read_text(encoding="utf-8", errors="replace").splitlines()
            lines.append(f"{name} (last {min(tail, len(content))} of {len(content)} lines):")
            lines += [f"  | {line}" for line in content[-tail:]]
        return "\n".join(lines)
