"""The backup store: every dump, keyed by the chip's MAC, with sha256 and metadata.

A vendor firmware dump is often the only way back to it, so a dump becomes a *verified backup*
only after it has been written to a temp file, fsynced, checked against the chip's own MD5 of the
same range and atomically renamed into place; its JSON sidecar (written the same way, last)
records that. Files are never overwritten: the name carries the UTC time and the sha256 prefix,
and creation uses exclusive links.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rig.errors import OperationError


class BackupError(OperationError):
    """A backup cannot be stored, found or read back intact; the message says which and where."""


@dataclass(frozen=True)
class Backup:
    id: str  # "<mac>/<stem>", unique in the store
    mac: str
    path: Path
    meta: dict[str, Any]

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def size(self) -> int:
        return self.meta["size"]

    @property
    def created(self) -> str:
        return self.meta["created"]

    def read(self) -> bytes:
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise BackupError(f"backup {self.id}: file no longer matches its sha256")
        return data

    def intact(self) -> bool:
        try:
            self.read()
        except (OSError, BackupError):
            return False
        return True


def mac_dir(mac: str) -> str:
    return mac.lower().replace(":", "-")


class BackupStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    def check_writable(self) -> None:
        """Refuse before the board is touched if dumps could not be stored: the directory must
        take new files and hard links (:func:`_write_new` links every finished file into place,
        which fails if the name exists; FAT, exFAT and SMB shares have no hard links, and
        finding that out after a 4 MB dump would lose the dump)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".probe-")
            os.close(fd)
        except OSError as err:
            raise BackupError(f"backups directory {self.root} is not writable: {err}") from err
        try:
            os.link(probe, f"{probe}.link")
            os.unlink(f"{probe}.link")
        except OSError as err:
            raise BackupError(
                f"backups directory {self.root} cannot hold hard links ({err.strerror or err}), "
                "which the store needs to never overwrite a backup (FAT, exFAT and SMB shares "
                "have none): put the backups on a Linux filesystem such as ext4"
            ) from err
        finally:
            os.unlink(probe)

    # -- queries --------------------------------------------------------------------------------
    def list(self, mac: str | None = None) -> list[Backup]:
        """Verified backups (sidecar present, verified), oldest first; with ``mac``, those whose
        sidecar says they are of that MAC - wherever they lie (a file copied into another
        board's folder is still of the board its sidecar names)."""
        found = []
        for d in sorted(self.root.glob("*-*-*-*-*-*")):
            for sidecar in sorted(d.glob("*.json")):
                try:
                    meta = json.loads(sidecar.read_text())
                except (OSError, ValueError):
                    continue
                if not isinstance(meta, dict) or not meta.get("verified") or "mac" not in meta:
                    continue
                if mac is not None and mac_dir(str(meta["mac"])) != mac_dir(mac):
                    continue
                path = sidecar.with_suffix(".bin")
                found.append(Backup(f"{d.name}/{path.stem}", meta["mac"], path, meta))
        return sorted(found, key=lambda b: (b.created, b.id))

    def latest(self, mac: str) -> Backup | None:
        intact = [b for b in self.list(mac) if b.intact()]
        return intact[-1] if intact else None

    def get(self, ident: str) -> Backup:
        """A backup by id (``<mac>/<stem>``), stem, or sha256 prefix; a prefix that fits more
        than one backup is an error naming them (two boards with the same content, e.g. erased
        ones, share a sha256)."""
        backups = self.list() if ident else []
        exact = [b for b in backups if ident in (b.id, b.path.stem)]
        matches = exact or [b for b in backups if b.sha256.startswith(ident.lower())]
        if len(matches) > 1:
            raise BackupError(
                f"backup {ident!r} is ambiguous in {self.root}: it matches "
                f"{', '.join(b.id for b in matches)}; give the whole id"
            )
        if not matches:
            raise BackupError(f"no backup {ident!r} in {self.root}")
        return matches[0]

    # -- storing --------------------------------------------------------------------------------
    def save(
        self, mac: str, data: bytes, chip_md5: str, meta: dict[str, Any], *, flash_size: int
    ) -> Backup:
        """Store a dump as a verified backup, or raise (nothing then counts as a backup).

        A backup is the whole flash: a dump of any other length than ``flash_size`` (the
        chip's flash size, which the caller has checked) would restore only part of it.
        """
        if flash_size <= 0 or len(data) != flash_size:
            raise BackupError(
                f"dump of {mac} is {len(data)} bytes, the flash is {flash_size}: not stored "
                "(a backup must hold the whole flash)"
            )
        md5 = hashlib.md5(data).hexdigest()
        if md5 != chip_md5.lower():
            raise BackupError(
                f"dump of {mac} does not match the chip's MD5 ({md5} != {chip_md5}): not stored"
            )
        sha = hashlib.sha256(data).hexdigest()
        now = datetime.now(timezone.utc)
        stem = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{sha[:12]}"
        directory = self.root / mac_dir(mac)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}.bin"
        full_meta = {
            **meta,
            "mac": mac,
            "size": len(data),
            "sha256": sha,
            "md5": md5,
            "created": now.isoformat(),
            "verified": True,
        }
        try:
            _write_new(path, data)
            try:
                sidecar = json.dumps(full_meta, indent=2).encode() + b"\n"
                _write_new(path.with_suffix(".json"), sidecar)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        except OSError as err:  # disk full, I/O error: nothing was stored
            raise BackupError(f"dump of {mac} not stored in {self.root}: {err}") from err
        return Backup(f"{directory.name}/{stem}", mac, path, full_meta)


def _write_new(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, then link into place - failing if it exists."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing file
        except FileExistsError:
            raise BackupError(f"{path} exists; backups are never overwritten") from None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
