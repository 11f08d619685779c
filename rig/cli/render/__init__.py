"""Rendering for people (rich tables, plain text, TSV, progress bars, the HTML run report). The
operations layer keeps data (``as_dict`` / ``to_json``) and imports no UI library; these modules
turn it into a view, as labgrid's reporters render its steps."""

from rig.cli.render.reports import (
    RESULT_STYLE,
    boot_consoles,
    finish,
    print_batch,
    progress_display,
)
from rig.cli.render.tables import Col, emit_rows, station_fields, station_line

__all__ = [
    "RESULT_STYLE",
    "Col",
    "print_batch",
    "boot_consoles",
    "emit_rows",
    "finish",
    "progress_display",
    "station_fields",
    "station_line",
]
