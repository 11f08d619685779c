"""Step-by-step reports: what ran, how long it took, what it found; data and JSON.

Data only, as labgrid keeps ``step.py`` apart from its reporters: the command line renders a
report as a table (:func:`rig.cli.render.finish`); the pytest plugin and the batch runner
keep its steps as dicts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReportStep:
    """One step: its name, whether it completed, its time, a line for people, data for JSON."""

    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """What an operation on one slot did, step by step (``ok``: it completed)."""

    operation: str
    slot: str
    mac: str = ""
    ok: bool = False
    error: str = ""
    steps: list[ReportStep] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    station: str = ""  # the station's name
    simulated: bool = False  # the station's boards are simulated (config.Station.simulated)

    @contextmanager
    def step(self, name: str) -> Iterator[ReportStep]:
        """Time a step; an exception marks it failed (and propagates)."""
        step = ReportStep(name)
        self.steps.append(step)
        t0 = time.monotonic()
        try:
            yield step
        except BaseException as err:
            step.detail = step.detail or f"{type(err).__name__}: {err}"
            raise
        else:
            step.ok = True
        finally:
            step.seconds = round(time.monotonic() - t0, 3)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)
