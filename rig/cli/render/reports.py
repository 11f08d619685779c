"""Rendering for people: rich tables of reports, progress bars. The operations layer keeps data
(``as_dict`` / ``to_json``) and imports no UI library; this module turns it into a terminal view,
as labgrid's reporters render its steps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from rig.cli.render.tables import Col, print_rows

if TYPE_CHECKING:
    from rig.operations.batch.results import BatchReport
    from rig.operations.report import Report

__all__ = [
    "RESULT_STYLE",
    "STEP_COLS",
    "print_batch",
    "boot_consoles",
    "finish",
    "progress_display",
]

# How a batch result looks (the table, the live display).
RESULT_STYLE = {
    "ok": "green",
    "failed": "red",
    "quarantined": "red",
    "stopped": "yellow",
    "not started": "yellow",
    "skipped": "yellow",
}


def _ok_style(ok: bool) -> str:
    return "green" if ok else "red"


STEP_COLS = (
    Col("name", "step", kind="id"),
    Col("ok", "result", kind="id", show=lambda ok: "ok" if ok else "FAILED", style=_ok_style),
    Col("seconds", "time", kind="num", show=lambda s: f"{s:.2f} s"),
    Col("detail"),
)


def report_title(report: Report) -> str:
    return f"{report.operation} {report.slot}" + (f" ({report.mac})" if report.mac else "")


def report_rows(report: Report) -> list[dict]:
    return [
        {"name": s.name, "ok": s.ok, "seconds": s.seconds, "detail": s.detail} for s in report.steps
    ]


def boot_consoles(report: Report, console: Console, lines: int = 4) -> None:
    """The end of the board's console in each boot check of ``report``."""
    for step in report.steps:
        if step.name.startswith("boot check") and step.data.get("console"):
            console.print(f"[bold]{step.name}[/]: the board's console ends with")
            for line in step.data["console"].splitlines()[-lines:]:
                console.print(f"  [dim]|[/] {line}")


BOARD_COLS = (
    Col("slot", kind="id"),
    Col("mac", "MAC", kind="id"),
    Col("result", kind="id", style=lambda r: RESULT_STYLE.get(r, "")),
    Col("bytes_written", "written", kind="num", drop=2),
    Col("bytes_skipped", "skipped", kind="num", drop=3),
    Col("seconds", "time", kind="num", show=lambda s: f"{s:.1f} s", drop=1),
    Col("error"),
)


def batch_title(report: BatchReport) -> str:
    return (
        f"rig flash {report.firmware['name']} - station {report.station}, "
        f"{len(report.boards)} {report.board} slot(s)"
    )


def print_batch(report: BatchReport, fmt: str = "auto") -> None:
    """One row per board: slot, MAC, result, bytes written and skipped, time, error."""
    print_rows(batch_title(report), BOARD_COLS, [b.as_dict() for b in report.boards], fmt)


@contextlib.contextmanager
def progress_display(as_json: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar per phase (phase, bytes, rate, ETA) on stderr."""
    if as_json:
        yield None
        return
    bars = Progress(
        TextColumn("[bold]{task.description:<8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def finish(report: Report, as_json: bool) -> None:
    """The report as a table (or JSON); exit 1 if it failed."""
    if as_json:
        click.echo(report.to_json())
    else:
        console = Console()
        print_rows(report_title(report), STEP_COLS, report_rows(report), "auto")
        if report.error:
            console.print(f"[red]{report.operation} failed:[/] {report.error}")
    if not report.ok:
        raise SystemExit(1)
