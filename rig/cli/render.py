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
from rich.table import Table

if TYPE_CHECKING:
    from rig.operations.batch.results import BatchReport
    from rig.operations.report import Report

__all__ = [
    "RESULT_STYLE",
    "batch_table",
    "boot_consoles",
    "finish",
    "progress_display",
    "report_table",
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


def report_table(report: Report) -> Table:
    """One row per step: name, ok/FAILED, time, detail."""
    title = f"{report.operation} {report.slot}" + (f" ({report.mac})" if report.mac else "")
    table = Table(title=title)
    table.add_column("step", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail")
    for step in report.steps:
        table.add_row(
            step.name,
            "[green]ok[/]" if step.ok else "[red]FAILED[/]",
            f"{step.seconds:.2f} s",
            step.detail,
        )
    return table


def boot_consoles(report: Report, console: Console, lines: int = 4) -> None:
    """The end of the board's console in each boot check of ``report``."""
    for step in report.steps:
        if step.name.startswith("boot check") and step.data.get("console"):
            console.print(f"[bold]{step.name}[/]: the board's console ends with")
            for line in step.data["console"].splitlines()[-lines:]:
                console.print(f"  [dim]|[/] {line}")


def batch_table(report: BatchReport) -> Table:
    """One row per board: slot, MAC, result, bytes written and skipped, time, error."""
    title = (
        f"rig flash {report.firmware['name']} - station {report.station}, "
        f"{len(report.boards)} {report.board} slot(s)"
    )
    table = Table(title=title)
    for name, justify in (
        ("slot", "left"),
        ("MAC", "left"),
        ("result", "left"),
        ("written", "right"),
        ("skipped", "right"),
        ("time", "right"),
        ("error", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "error")
    colour = {r: RESULT_STYLE[r] for r in ("ok", "failed", "quarantined", "stopped")}
    for b in report.boards:
        result = b.result
        if result in colour:
            result = f"[{colour[result]}]{result}[/]"
        table.add_row(
            b.slot,
            b.mac or "-",
            result,
            str(b.bytes_written),
            str(b.bytes_skipped),
            f"{b.seconds:.1f} s",
            b.error,
        )
    return table


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
        console.print(report_table(report))
        if report.error:
            console.print(f"[red]{report.operation} failed:[/] {report.error}")
    if not report.ok:
        raise SystemExit(1)
