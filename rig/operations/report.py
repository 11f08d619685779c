"""Step-by-step reports: what ran, how long it took, what it found; as a table or as JSON."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    operation: str
    slot: str
    mac: str = ""
    ok: bool = False
    error: str = ""
    steps: list[Step] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str):
        """Time a step; an exception marks it failed (and propagates)."""
        step = Step(name)
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

    def table(self):
        from rich.table import Table

        title = f"{self.operation} {self.slot}" + (f" ({self.mac})" if self.mac else "")
        table = Table(title=title)
        table.add_column("step", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("detail")
        for step in self.steps:
            table.add_row(
                step.name,
                "[green]ok[/]" if step.ok else "[red]FAILED[/]",
                f"{step.seconds:.2f} s",
                step.detail,
            )
        return table
