"""The soak matrix runs only when asked (`make soak`, or RIG_SOAK=1): `make test` collects
nothing here. Each case reports its result as a ``soak`` user property; this conftest gathers
them (from every xdist worker) and prints the table at the end, failing the run when an
invariant was violated or fewer than 95% of the transient faults were recovered automatically.
"""

from __future__ import annotations

import json
import os

SOAK = os.environ.get("RIG_SOAK") == "1"
if not SOAK:
    collect_ignore_glob = ["test_*.py"]

_results: list[dict] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "soak":
                _results.append(json.loads(value))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not SOAK or not _results:
        return
    from .fault_matrix import format_table, summarise

    rows, problems = summarise(_results)
    tr = terminalreporter
    tr.section("fault matrix (soak)")
    tr.write_line(format_table(rows))
    bad = [r for r in _results if r["violations"]]
    for r in bad[:20]:
        tr.write_line(f"VIOLATION {r['kind']} seed {r['seed']}: {r['violations']}")
    tr.write_line("soak: " + ("; ".join(problems) if problems else "ok"))
    path = os.environ.get("RIG_SOAK_JSON")
    if path:
        with open(path, "w") as f:
            json.dump(_results, f, indent=1)
    if problems:
        config._soak_failed = True


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "_soak_failed", False) and session.exitstatus == 0:
        session.exitstatus = 1
