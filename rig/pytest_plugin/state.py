"""The plugin's state: the selection and per-slot facts (on the pytest config's stash) and what
each test records (on its item's stash)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.operations import hil

__all__ = [
    "BOARD_TEST_TIMEOUT",
    "MARKERS",
    "NO_BOARD",
    "RECORD",
    "STATE",
    "HilState",
    "ItemRecord",
    "hil_state",
    "record_of",
    "slot_of",
]

# Board tests get at least this long under pytest-timeout unless --timeout is given: a 4 MB dump
# at 115200 baud alone takes over 6 minutes.
BOARD_TEST_TIMEOUT = 900.0
NO_BOARD = "board test: no board selected (run pytest --board NAME, e.g. --board l7x)"

MARKERS = (
    "board(name, ...): run only on slots of these board types; skipped unless one is selected",
    "destructive: changes a board's flash; skipped with --no-destructive (every board test, "
    "marked or not, runs after the session's verified backup of the board)",
)


@dataclass
class ItemRecord:
    """Per-test data: its artifacts and the properties it recorded."""

    artifacts: hil.Artifacts | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class HilState:
    selection: hil.Selection | None
    no_destructive: bool = False
    keep_flash: bool = False
    artifacts_option: str | None = None
    slots: dict[str, hil.SlotState] = field(default_factory=dict)
    current: pytest.Item | None = None
    net_installed_here: bool = False
    artifacts_root: Path | None = None

    def slot(self, slot_id: str) -> hil.SlotState:
        return self.slots.setdefault(slot_id, hil.SlotState(slot_id))

    def root(self, request: pytest.FixtureRequest) -> Path:
        if self.artifacts_root is None:
            if self.artifacts_option:
                root = Path(self.artifacts_option).expanduser().resolve()
            else:
                factory = request.getfixturevalue("tmp_path_factory")
                root = factory.getbasetemp() / "rig-artifacts"
            root.mkdir(parents=True, exist_ok=True)
            self.artifacts_root = root
        return self.artifacts_root


STATE = pytest.StashKey[HilState]()
RECORD = pytest.StashKey[ItemRecord]()


def hil_state(config: pytest.Config) -> HilState:
    return config.stash[STATE]


def record_of(item: pytest.Item) -> ItemRecord:
    record = item.stash.get(RECORD, None)
    if record is None:
        record = item.stash[RECORD] = ItemRecord()
    return record


def slot_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("rig_board") if callspec is not None else None
