"""The board tests use the rig pytest plugin's fixtures (rig/pytest_plugin.py).

tests/conftest.py defines a ``board`` fixture of its own (a bare simulated board for unit
tests); below this directory ``board`` is the plugin's slot again.
"""

from __future__ import annotations

import pytest


def pytest_ignore_collect(collection_path, config):
    if not config.pluginmanager.hasplugin("rig"):  # pytest -p no:rig
        return True
    return None


@pytest.fixture(scope="module")
def board(rig_board):
    return rig_board
