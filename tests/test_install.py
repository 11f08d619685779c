"""Install hints name a command that works: the extra of the checkout or wheel the rig came from,
or the extra's own requirements (the project is on no index: ``esp-flash-rig[...]`` is not)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rig
from rig import install

ROOT = Path(rig.__file__).resolve().parent.parent


def test_the_requirements_of_an_extra_come_from_the_installed_metadata():
    assert install.extra_requirements("gpiod") == ["gpiod>=2"]
    assert install.extra_requirements("nope") == []


def test_from_a_checkout_the_hint_installs_that_checkouts_extra(tmp_path):
    """`make test` installs this checkout editable: outside it (no egg-info on sys.path)."""
    code = "from rig.install import install_hint; print(install_hint('gpiod'))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    assert out == f"pip install -e '{ROOT}[gpiod]' (or: pip install 'gpiod>=2')"


def test_from_a_wheel_the_hint_installs_that_wheels_extra(monkeypatch):
    wheel = "/home/pi/esp_flash_rig-0.1.0-py3-none-any.whl"
    origin = json.dumps({"url": f"file://{wheel}", "archive_info": {}})

    class Dist:
        requires = install.metadata.distribution(install.DISTRIBUTION).requires

        def read_text(self, name):
            return origin if name == "direct_url.json" else None

    monkeypatch.setattr(install.metadata, "distribution", lambda name: Dist())
    hint = install.install_hint("gpiod")
    assert hint == f"pip install '{wheel}[gpiod]' (or: pip install 'gpiod>=2')"


@pytest.mark.parametrize("where", ["rig", "README.md", "docs"])
def test_no_hint_names_the_package_on_an_index(where):
    path = ROOT / where
    files = [path] if path.is_file() else sorted(path.rglob("*.py")) + sorted(path.rglob("*.md"))
    found = [
        f"{f.relative_to(ROOT)}:{n}"
        for f in files
        if f.name != "install.py"  # its docstring names the wrong hint
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if re.search(r"install[^\n]*esp-flash-rig\[", line)
    ]
    assert not found, "pip install 'esp-flash-rig[...]' names a package on no index"
