"""``rig flash`` (every matching slot of a station at once) and ``rig quarantine``.

``rig flash --board l7x --firmware custom-grbl [--slots all|ID,ID] [--jobs N] [--retries N]
[--backoff S] [--json]`` checks its input before a relay moves (exit 2 if it is wrong), shows one
live progress line per board on stderr (phase, bytes, rate, ETA; plain lines when stderr is not
a terminal), then prints a table (or the same report as JSON with ``--json``) and exits 0 only if
every board succeeded; 1 otherwise; 128+N when stopped by signal N (after reporting).

``rig quarantine`` lists the slots a batch run quarantined; ``--clear ID`` (repeatable, or
``all``) takes them out again.

``COMMANDS`` is registered by :mod:`rig.cli`; ``python -m rig.cli.batch`` runs them standalone.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column
from rich.text import Text

from rig.cli.common import (
    command,
    json_option,
    listing_options,
    load_station,
    options,
    output_format,
    station_option,
)
from rig.cli.render import RESULT_STYLE, print_batch
from rig.cli.render.html import write_batch_html
from rig.cli.render.tables import Col, emit_rows, station_line
from rig.errors import BadInput

__all__ = ["COMMANDS", "flash_command", "quarantine_command"]
BYTE_PHASES = ("dump", "write")


class _IfBytes(ProgressColumn):
    """A byte column (size, rate, ETA) shown only while a board moves bytes."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self.column = column

    def render(self, task):
        if not task.fields.get("bytes"):
            return Text("")
        return self.column.render(task)


class _Phase(ProgressColumn):
    """The board's phase (connect, dump, write, ..., then its result), coloured."""

    def render(self, task):
        return Text(task.fields["phase"], style=task.fields.get("style", "bold"))


class LiveDisplay:
    """One rich progress line per board (stderr, a terminal)."""

    def __init__(self, console: Console, width: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.fields[slot]}", table_column=Column(width=width, no_wrap=True)),
            TextColumn("{task.fields[mac]}", style="dim", table_column=Column(width=17)),
            _Phase(table_column=Column(width=11, no_wrap=True)),
            BarColumn(bar_width=24),
            _IfBytes(DownloadColumn()),
            _IfBytes(TransferSpeedColumn()),
            _IfBytes(TimeRemainingColumn()),
            TextColumn("{task.fields[note]}", style="dim"),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _task(self, slot: str) -> int:
        if slot not in self.tasks:
            self.tasks[slot] = self.progress.add_task(
                slot, total=None, slot=slot, mac="", phase="queued", note="", bytes=False
            )
        return self.tasks[slot]

    def handle(self, event) -> None:
        if event.kind == "stopping":
            self.console.print(
                f"[yellow]{event.data['reason']}[/]: stopping - every board stops at its next "
                "safe point and releases its relays (again to stop at once)"
            )
            return
        task = self._task(event.slot)
        data = event.data
        update = self.progress.update
        if event.kind == "skipped":
            update(task, phase="skipped", style="yellow", note="quarantined", total=1, completed=0)
        elif event.kind == "started":
            update(task, phase="starting")
        elif event.kind == "phase":
            phase = data["phase"]
            note = ""
            if phase == "connect" and data.get("attempt", 1) > 1:
                note = f"attempt {data['attempt']}"
            if phase in BYTE_PHASES:
                self.progress.reset(task, total=data.get("total"), completed=0)
                update(task, phase=phase, bytes=True, note=note)
            elif phase == "retry":
                update(task, phase="retry", bytes=False, total=None)
            else:
                update(task, phase=phase, bytes=False, total=None, note=note)
        elif event.kind == "progress":
            update(task, total=data["total"] or None, completed=data["done"])
        elif event.kind == "identified":
            update(task, mac=data["mac"])
        elif event.kind == "retry":
            note = f"attempt {data['attempt']} failed, retry in {data['wait']:.1f} s"
            update(task, note=note)
        elif event.kind == "result":
            result = data["result"]
            style = RESULT_STYLE.get(result["result"], "")
            update(
                task,
                phase=result["result"],
                style=style,
                mac=result.get("mac") or "",
                bytes=False,
                total=1,
                completed=1 if result["result"] == "ok" else 0,
                note=_short(result.get("error", "")),
            )


class PlainDisplay:
    """One line per event that matters (stderr is a log file or a pipe: CI)."""

    def __init__(self, console: Console, width: int) -> None:
        self.console = console
        self.width = width

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def say(self, slot: str, text: str) -> None:
        self.console.print(f"{slot + ':':<{self.width + 1}} {text}", markup=False, soft_wrap=True)

    def handle(self, event) -> None:
        data = event.data
        if event.kind == "stopping":
            self.console.print(
                f"{data['reason']}: stopping - every board stops at its next safe point",
                markup=False,
            )
        elif event.kind == "phase":
            extra = ""
            if data.get("total"):
                extra = f" ({data['total']} bytes)"
            if data.get("attempt", 1) > 1:
                extra += f" (attempt {data['attempt']})"
            if data["phase"] == "retry":
                return
            self.say(event.slot, f"{data['phase']}{extra}")
        elif event.kind == "identified":
            self.say(event.slot, f"MAC {data['mac']}, {data['baud']} baud")
        elif event.kind == "retry":
            self.say(
                event.slot,
                f"attempt {data['attempt']} failed: {data['error']}; retry in {data['wait']:.1f} s",
            )
        elif event.kind == "result":
            r = data["result"]
            detail = f"wrote {r['bytes_written']} B, skipped {r['bytes_skipped']} B"
            if r.get("error"):
                detail = r["error"]
            self.say(event.slot, f"{r['result'].upper()} in {r['seconds']:.1f} s: {detail}")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@command("flash")
@station_option
@click.option("--board", "board_name", required=True, help="Board type to flash.")
@click.option(
    "--firmware", "firmware_name", required=True, help="Firmware from that board type's catalog."
)
@click.option(
    "--slots",
    default="all",
    show_default=True,
    help="Slots to flash: all (of that board type) or ids separated by commas.",
)
@click.option("--jobs", type=int, help="Boards flashed at once (default: all of them).")
@click.option(
    "--retries",
    type=int,
    default=2,
    show_default=True,
    help="Extra attempts for a board after a transient failure (no download mode, no sync, "
    "timeout, lost port); a board that still fails is quarantined.",
)
@click.option(
    "--backoff",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds before the first retry; doubled for each further one.",
)
@click.option(
    "--lg-coordinator",
    "lab_address",
    metavar="HOST[:PORT]",
    help="Flash a labgrid lab's places instead of a station: every place tagged board=BOARD "
    "(--slots all) or the places named in --slots, reserved and acquired first (docs/lab.md).",
)
@click.option(
    "--lab-timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait in the coordinator's queue for the places.",
)
@json_option
def flash_command(
    station_path,
    board_name,
    firmware_name,
    slots,
    jobs,
    retries,
    backoff,
    lab_address,
    lab_timeout,
    as_json,
):
    """Re-flash every matching slot at once: per board lock, connect, make sure a verified
    backup of its MAC exists (dump one if not), verified fast write, verify, boot check.

    One failing board never stops the others. Boards that keep failing are quarantined and
    skipped by later runs (see `rig quarantine`). Ctrl-C / SIGTERM stops every board at a safe
    point with its relays released; the report says what was done and what was not. With
    --lg-coordinator the boards are a labgrid lab's, across its Pis: the places are released
    whatever happens.
    """
    args = (board_name, firmware_name, slots, jobs, retries, backoff, as_json)
    if not lab_address:
        return _flash(load_station(station_path), *args)
    if station_path:
        raise BadInput("--station and --lg-coordinator exclude each other (the lab is the station)")
    import tempfile
    from pathlib import Path

    from rig.cli.lab import lab
    from rig.hardware.safety import install_safety_net

    if "@" not in firmware_name:  # FILE@OFFSET is refused by the plan, which names why
        lab("station:check_lab_firmware")(board_name, firmware_name)  # before any lease
    install_safety_net()  # SIGTERM/SIGHUP: the lease is released on the way out
    console = Console(stderr=True)
    leased_places = lab("station:leased_places")
    directory = Path(tempfile.gettempdir()) / "rig-lab"
    with leased_places(
        lab_address,
        board_name,
        slots,
        directory,
        timeout=lab_timeout,
        progress=lambda line: console.print(f"rig {line}", soft_wrap=True, highlight=False),
    ) as path:
        return _flash(load_station(str(path)), board_name, firmware_name, "all", *args[3:])


def _flash(station, board_name, firmware_name, slots, jobs, retries, backoff, as_json):
    from rig.operations.batch import plan_batch, run_batch

    plan = plan_batch(
        station, board_name, firmware_name, slots, jobs=jobs, retries=retries, backoff=backoff
    )
    if not as_json:
        click.echo(station_line(station))
    console = Console(stderr=True)
    for slot, entry in plan.quarantined.items():
        console.print(
            f"[yellow]note:[/] skipping {slot}: quarantined since {entry.since_text}: "
            f"{entry.reason} - after checking it: rig quarantine --clear {slot}",
            soft_wrap=True,
        )
    width = max(len(s) for s in plan.slots)
    display_cls = LiveDisplay if console.is_terminal else PlainDisplay
    with display_cls(console, width) as display:
        report = run_batch(plan, on_event=display.handle)
    html = write_batch_html(report)
    if as_json:
        click.echo(report.to_json())
        click.echo(f"report: {html}", err=True)
    else:
        out = Console()
        print_batch(report)
        click.echo(f"report: {html}")
        style = "green" if report.ok else ("yellow" if report.interrupted else "red")
        out.print(f"[{style}]{report.summary()}[/]", soft_wrap=True)
        for note in report.notes:
            out.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    if report.exit_code:
        raise SystemExit(report.exit_code)


QUARANTINE_COLS = (
    Col("slot", kind="id"),
    Col("mac", "MAC", kind="id"),
    Col("since", kind="id", drop=2, show=lambda t: t[:19].replace("T", " ")),
    Col("attempts", kind="num", drop=3),
    Col("reason"),
    Col("run_dir", "run", drop=1),
)


@command("quarantine")
@options(listing_options)
@click.option(
    "--clear",
    "clear_ids",
    multiple=True,
    metavar="ID",
    help="Take slot ID out of quarantine (repeatable; `all` for every slot).",
)
def quarantine_command(station_path, as_json, fmt, clear_ids):
    """List the slots `rig flash` quarantined (skipped until cleared), or clear them."""
    from rig.operations.batch.quarantine import StateError, StationState
    from rig.operations.selection import check_slot_ids

    station = load_station(station_path)
    state = StationState.of(station)
    try:
        entries = state.quarantined()
        if clear_ids:
            wanted = list(entries) if "all" in clear_ids else list(dict.fromkeys(clear_ids))
            check_slot_ids(station, wanted, also=entries)
            removed = state.clear(wanted)
            err = Console(stderr=True)
            for slot in wanted:
                if slot in removed:
                    err.print(
                        f"{slot}: out of quarantine (was: {removed[slot].reason})", soft_wrap=True
                    )
                else:
                    err.print(f"{slot}: was not quarantined", soft_wrap=True)
            entries = state.quarantined()
    except StateError as err:
        raise BadInput(str(err)) from err
    rows = [
        {
            "slot": e.slot,
            "mac": e.mac,
            "since": e.since,
            "attempts": e.attempts,
            "reason": e.reason,
            "run_dir": e.run_dir,
        }
        for e in entries.values()
    ]
    emit_rows(
        station,
        "quarantined",
        f"quarantined slots of station {station.name} ({state.path})",
        QUARANTINE_COLS,
        rows,
        output_format(as_json, fmt),
        empty=f"no quarantined slots in station {station.name} ({state.path})",
    )


COMMANDS = [flash_command, quarantine_command]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def _standalone() -> None:
    """rig flash / rig quarantine, standalone (`python -m rig.cli.batch`)."""


for _command in COMMANDS:
    _standalone.add_command(_command)


if __name__ == "__main__":
    _standalone()
