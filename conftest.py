"""Repository-level pytest configuration: say what the suite runs against in every report header.

CI logs on a self-hosted runner are read long after the run; the versions of the rig and of
esptool, and which station the rig would use, belong at the top of each one.
"""

from __future__ import annotations

import os


def pytest_report_header(config) -> list[str]:
    import esptool

    import rig

    station = os.environ.get("RIG_STATION") or "embedded simulated station"
    return [f"rig {rig.__version__}, esptool {esptool.__version__}, station: {station}"]
