"""A test's artifact directory: console, esptool and relay logs, and notes.

What a failed board test shows (:meth:`Artifacts.summary`) and what CI keeps: the console the
board printed, every esptool line of its flasher sessions, the relay actions with their times,
and facts such as the path of the session's dump.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.hardware.relays import RelayBank, RelayLog
from rig.operations.session import FlasherSession

__all__ = ["Artifacts", "safe_name"]

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
    relay_log: RelayLog | None = None  # events after ``relay_start`` go to relays.log
    relay_start: int = 0

    def _ensure(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir

    def track(self, session: FlasherSession) -> None:
        """Collect this flasher session's esptool log lines."""
        self.sessions.append(session)

    def watch_relays(self, relays: RelayBank) -> None:
        """Record the slot's relay actions from now on."""
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
