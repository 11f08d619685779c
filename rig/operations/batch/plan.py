"""Planning a batch run: everything checked before a relay moves (bad input: exit 2); the slots
by :func:`rig.operations.selection.board_slots`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rig import config
from rig.errors import BadInput
from rig.operations.backups import BackupStore
from rig.operations.batch.quarantine import QuarantineEntry, StateError, StationState
from rig.operations.images import FlashImage, check_placement, layout_table, resolve_images
from rig.operations.safeguards import prepare_backups
from rig.operations.selection import board_slots

__all__ = ["BatchPlan", "Job", "plan_batch"]


@dataclass(frozen=True)
class Job:
    """What one worker does (pickled to the worker process)."""

    station: config.Station
    slot_id: str
    firmware: str
    images: tuple[FlashImage, ...]
    console: str | None  # the firmware's console regex (boot check; None: the default check)
    retries: int
    backoff: float
    run_dir: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchPlan:
    station: config.Station
    board: str
    firmware: config.CatalogFirmware
    images: tuple[FlashImage, ...]
    slots: tuple[str, ...]  # selected, in station order (quarantined ones included)
    quarantined: dict[str, QuarantineEntry]  # selected slots skipped because of the quarantine
    jobs: int
    retries: int
    backoff: float
    state: StationState

    @property
    def to_flash(self) -> list[str]:
        return [s for s in self.slots if s not in self.quarantined]


def plan_batch(
    station: config.Station,
    board: str,
    firmware: str,
    slots: str | list[str] = "all",
    *,
    jobs: int | None = None,
    retries: int = 2,
    backoff: float = 1.0,
) -> BatchPlan:
    """Check everything a batch needs; raise :class:`~rig.errors.BadInput` if anything is
    wrong. Nothing is opened: no lock taken, no relay moved, no port opened."""
    selected = board_slots(station, board, slots).slot_ids
    board_type = station.boards[board]
    if "@" in firmware:
        raise BadInput(
            f"{firmware!r}: name a firmware of the {board} catalog (`rig firmware add FILE` "
            "imports a file into the station's catalog)"
        )
    try:
        fw = board_type.firmware_named(firmware)
    except KeyError as err:
        raise BadInput(err.args[0]) from None
    images = tuple(resolve_images([firmware], board_type))
    check_placement(images, layout_table(board_type) or None)
    if jobs is not None and jobs < 1:
        raise BadInput(f"--jobs must be at least 1 (got {jobs})")
    if retries < 0:
        raise BadInput(f"--retries must not be negative (got {retries})")
    if backoff < 0:
        raise BadInput(f"--backoff must not be negative (got {backoff})")
    prepare_backups(BackupStore(station.backups), "auto", False)
    state = StationState.of(station)
    try:
        state.check_writable()
        quarantine = state.quarantined()
    except StateError as err:
        raise BadInput(str(err)) from err
    skipped = {s: quarantine[s] for s in selected if s in quarantine}
    count = len(selected) - len(skipped)
    return BatchPlan(
        station=station,
        board=board,
        firmware=fw,
        images=images,
        slots=tuple(selected),
        quarantined=skipped,
        jobs=max(1, jobs if jobs is not None else count),
        retries=retries,
        backoff=backoff,
        state=state,
    )
