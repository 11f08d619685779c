"""Helpers shared by the config tests. (A helper module, not a conftest: the tests import it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.config import ConfigError, check_files, load_board, load_station

LOADERS = {"stations": load_station, "boards": load_board}  # by the folder a file lies in


def only_error(path: Path, line: int) -> ConfigError:
    """check_files finds exactly one problem, at ``path:line:``; loading a station or board file
    raises the same one (a firmware catalog is read when its station uses it: check_files only)."""
    errors = check_files([path])
    assert len(errors) == 1, "\n".join(map(str, errors))
    (error,) = errors
    assert str(error).startswith(f"{path}:{line}:"), str(error)
    assert (error.file, error.line) == (path, line)
    loader = LOADERS.get(path.parent.name)
    if loader is not None:
        with pytest.raises(ConfigError) as raised:
            loader(path)
        assert str(raised.value) == str(error)
    return error
