"""How to install an optional extra, as a command that works where the rig came from.

The project is not on PyPI: ``pip install 'esp-flash-rig[gpiod]'`` names a package no index
has. What always works is installing the extra's own requirements (read from the installed
metadata, so the hint follows pyproject.toml) into the rig's environment; from a checkout
(an editable install, PEP 660, recorded in the dist-info's ``direct_url.json``, PEP 610) the
extra itself, ``pip install -e '<checkout>[gpiod]'``; from a wheel file,
``pip install '<wheel>[gpiod]'``.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import metadata
from urllib.parse import unquote, urlparse

__all__ = ["DISTRIBUTION", "extra_requirements", "install_hint"]

DISTRIBUTION = "esp-flash-rig"


def extra_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` (``gpiod>=2``), from the installed metadata."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""extra\s*==\s*['"]{re.escape(extra)}['"]""")
    return [r.split(";")[0].strip() for r in requires if ";" in r and marker.search(r)]


def _origin() -> tuple[str, str] | None:
    """(``checkout`` | ``wheel``, path) of the installed distribution, when pip recorded it."""
    try:
        text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    data = json.loads(text)
    url = urlparse(data.get("url", ""))
    if url.scheme != "file":
        return None
    path = unquote(url.path)
    if "dir_info" in data:
        return "checkout", path
    if path.endswith(".whl"):
        return "wheel", path
    return None


def install_hint(extra: str) -> str:
    """One pip command that installs ``extra`` into the rig's environment."""
    reqs = " ".join(shlex.quote(r) for r in extra_requirements(extra))
    origin = _origin()
    if origin is None:
        return f"pip install {reqs}" if reqs else f"pip install -e '.[{extra}]' (from a checkout)"
    kind, path = origin
    editable = "-e " if kind == "checkout" else ""
    own = f"pip install {editable}{shlex.quote(f'{path}[{extra}]')}"
    return f"{own} (or: pip install {reqs})" if reqs else own
