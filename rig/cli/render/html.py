"""``report.html``: a batch run to look at, beside its ``report.json``.

Self-contained (inline CSS and SVG, no script, no network: it opens from a CI artifact or a
mail attachment): a summary, one timeline per board (its steps as bars on the run's time axis,
from the board's start; a step that failed is red), its throughput, and retries and quarantines
highlighted. Built from :class:`~rig.operations.batch.results.BatchReport` data only.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.operations.batch.results import BatchReport, BoardResult

__all__ = ["batch_html", "write_batch_html"]

CSS = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-variant-numeric:tabular-nums}
.ok{color:#17702a}.failed,.quarantined{color:#b3261e;font-weight:bold}
.stopped,.skipped,.not-started{color:#8a6100}
tr.quarantined td,tr.retried td{background:#fdecea} tr.retried td{background:#fff6dd}
.mono{font-family:ui-monospace,monospace} svg text{font:11px ui-monospace,monospace}
"""
BAR, GAP, LABEL, WIDTH = 16, 6, 170, 900
COLOURS = ("#4e79a7", "#59a14f", "#9c755f", "#f28e2b", "#76b7b2", "#edc948", "#b07aa1")


def _time(iso: str) -> datetime | None:
    try:
        return datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None


def _offset(board: BoardResult, start: datetime | None) -> float:
    began = _time(board.started)
    return max((began - start).total_seconds(), 0.0) if began and start else 0.0


def throughput(board: BoardResult) -> str:
    """Bytes written per second of the write step (or of the board, with no write step)."""
    write = next((s for s in board.steps if s["name"] == "write"), None)
    seconds = write["seconds"] if write else board.seconds
    if not board.bytes_written or not seconds:
        return "-"
    return f"{board.bytes_written / seconds / 1024:.1f} KiB/s"


def timeline(report: BatchReport) -> str:
    """One row per board: its steps as bars, on one axis (seconds since the run started)."""
    start = _time(report.started)
    span = max(
        [_offset(b, start) + sum(s["seconds"] for s in b.steps) for b in report.boards]
        + [report.seconds, 0.001]
    )
    scale = (WIDTH - LABEL - 10) / span
    height = len(report.boards) * (BAR + GAP) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}">']
    for row, board in enumerate(report.boards):
        y = row * (BAR + GAP) + 5
        label = f"{board.slot} ({board.result})"
        out.append(
            f'<text x="0" y="{y + BAR - 4}" class="{_cls(board.result)}">{escape(label)}</text>'
        )
        x = LABEL + _offset(board, start) * scale
        for n, step in enumerate(board.steps):
            w = max(step["seconds"] * scale, 1.0)
            fill = COLOURS[n % len(COLOURS)] if step["ok"] else "#b3261e"
            tip = f"{step['name']}: {step['seconds']:.2f} s {'ok' if step['ok'] else 'FAILED'}"
            tip += f" - {step['detail']}" if step.get("detail") else ""
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR}" fill="{fill}" '
                f'data-step="{escape(step["name"])}"><title>{escape(tip)}</title></rect>'
            )
            if w > 7 * len(step["name"]):
                name = escape(step["name"])
                out.append(f'<text x="{x + 3:.1f}" y="{y + BAR - 4}" fill="#fff">{name}</text>')
            x += w
    axis_y = len(report.boards) * (BAR + GAP) + 20
    out.append(f'<text x="{LABEL}" y="{axis_y}">0 s</text>')
    out.append(f'<text x="{WIDTH - 60}" y="{axis_y}">{span:.1f} s</text>')
    out.append("</svg>")
    return "\n".join(out)


def _hex(offset: object) -> str:
    return f"{offset:#x}" if isinstance(offset, int) else escape(str(offset))


def _cls(result: str) -> str:
    return result.replace(" ", "-")


def board_rows(report: BatchReport) -> str:
    rows = []
    for b in report.boards:
        retried = b.attempts > 1 or b.attempt_errors
        cls = "quarantined" if b.result == "quarantined" else ("retried" if retried else "")
        retries = "; ".join(b.attempt_errors) or "-"
        steps = ", ".join(f"{s['name']} {s['seconds']:.2f} s" for s in b.steps) or "-"
        cells = (
            f'<td class="mono">{escape(b.slot)}</td>',
            f'<td class="mono">{escape(b.mac or "-")}</td>',
            f'<td class="{_cls(b.result)}">{escape(b.result)}</td>',
            f"<td>{b.attempts}</td>",
            f"<td>{escape(retries)}</td>",
            f"<td>{b.bytes_written}</td><td>{b.bytes_skipped}</td>",
            f"<td>{escape(throughput(b))}</td><td>{b.seconds:.1f} s</td>",
            f"<td>{escape(steps)}</td><td>{escape(b.error or '-')}</td>",
        )
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return "\n".join(rows)


def batch_html(report: BatchReport) -> str:
    fw = report.firmware
    head = (
        "<th>slot</th><th>MAC</th><th>result</th><th>attempts</th><th>retried after</th>"
        "<th>written (B)</th><th>skipped (B)</th><th>throughput</th><th>time</th>"
        "<th>steps</th><th>error</th>"
    )
    simulated = " - SIMULATED boards" if report.simulated else ""
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rig flash {escape(fw["name"])} - {escape(report.station)}</title>
<style>{CSS}</style></head><body>
<h1>rig flash {escape(fw["name"])} on station {escape(report.station)}{simulated}</h1>
<p class="{"ok" if report.ok else "failed"}">{escape(report.summary())}</p>
<p>started {escape(report.started)}; firmware sha256
<span class="mono">{escape(fw["sha256"])}</span>, {fw["size"]} bytes at {_hex(fw.get("offset"))};
{report.jobs} at once, {report.retries} retries</p>
<h2>Timeline</h2>
{timeline(report)}
<h2>Boards</h2>
<table><thead><tr>{head}</tr></thead><tbody>
{board_rows(report)}
</tbody></table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def write_batch_html(report: BatchReport) -> Path:
    """``report.html`` in the run directory, beside ``report.json``."""
    path = Path(report.run_dir) / "report.html"
    path.write_text(batch_html(report))
    return path
