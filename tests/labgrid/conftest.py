"""The lab tests: a labgrid farm of two simulated Pis on loopback (lab_farm.Farm)."""

from __future__ import annotations

import pytest

STATIONS = {
    "pi-a": [("l7x-1", "l7x"), ("l7x-2", "l7x")],
    "pi-b": [("l7x-1", "l7x"), ("devkitc-1", "esp32-devkitc")],
}


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A coordinator and two exporters (pi-a: two L7X; pi-b: one L7X and a devkit), the places
    created by `rig labgrid places`: three places tagged board=l7x."""
    from lab_farm import Farm

    farm = Farm(tmp_path_factory.mktemp("farm"), STATIONS)
    try:
        yield farm.start()
    finally:
        farm.close()
