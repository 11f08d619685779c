"""The board tests use the rig pytest plugin's fixtures (:mod:`rig.pytest_plugin`); without the
plugin (``pytest -p no:rig``) this directory is not collected."""

from __future__ import annotations


def pytest_ignore_collect(collection_path, config):
    if not config.pluginmanager.hasplugin("rig"):  # pytest -p no:rig
        return True
    return None
