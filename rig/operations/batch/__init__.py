"""Batch re-flashing: every matching slot of a station at once, one worker process per board
(:mod:`~rig.operations.batch.plan`, :mod:`~rig.operations.batch.runner`,
:mod:`~rig.operations.batch.worker`, :mod:`~rig.operations.batch.attempt`,
:mod:`~rig.operations.batch.results`, :mod:`~rig.operations.batch.quarantine`)."""

from rig.operations.batch.plan import BatchPlan, Job, plan_batch
from rig.operations.batch.results import STEPS, BatchReport, BoardResult, Event
from rig.operations.batch.runner import GRACE, BatchControl, run_batch
from rig.operations.batch.worker import flash_board

__all__ = [
    "GRACE",
    "STEPS",
    "BatchControl",
    "BatchPlan",
    "BatchReport",
    "BoardResult",
    "Event",
    "Job",
    "flash_board",
    "plan_batch",
    "run_batch",
]
