"""``rig labgrid``: a station as part of a labgrid lab (docs/lab.md).

* ``rig labgrid exporter-config [--station FILE]`` - the exporter YAML of the station's slots;
* ``rig labgrid exporter ARGS...`` - labgrid's exporter with the rig's gated export class;
* ``rig labgrid places --station FILE -c HOST:PORT`` - one place per slot, tagged and matched.

labgrid is an optional extra, and the core rig never imports it (an import-linter contract):
this module names the implementations in :mod:`rig.labgrid` as strings and imports them when a
command runs (:func:`lab`), so ``rig`` without the extra still works and says what to install.
``rig flash --lg-coordinator`` uses :func:`lab` too.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from rig.cli.common import RigCommand, load_station
from rig.errors import BadInput
from rig.install import install_hint

__all__ = ["COMMANDS", "lab", "labgrid_group"]


def lab(name: str) -> Any:
    """``"module:attribute"`` of :mod:`rig.labgrid`, imported now; without labgrid: bad input."""
    module, _, attribute = name.partition(":")
    try:
        found = importlib.import_module(f"rig.labgrid.{module}")
    except ImportError as err:
        if err.name is None or not err.name.startswith(("labgrid", "grpc", "attr")):
            raise
        raise BadInput(
            f"this needs labgrid, the lab extra: {install_hint('labgrid')} ({err})"
        ) from err
    return getattr(found, attribute)


def _station_path(path: str | None) -> Path:
    """The station file (``--station``, ``RIG_STATION``, else the embedded simulated one)."""
    from rig import config

    chosen = path or os.environ.get("RIG_STATION")
    return Path(chosen) if chosen else config.builtin_configs_dir() / "stations" / "sim.yaml"


@click.group("labgrid", context_settings={"help_option_names": ["-h", "--help"]})
def labgrid_group() -> None:
    """Run this station's slots as part of a labgrid lab (docs/lab.md)."""


@labgrid_group.command("exporter-config", cls=RigCommand)
@click.option("--station", "station_path", type=click.Path(dir_okay=False), envvar="RIG_STATION")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Where rig serve listens.")
@click.option(
    "--backup",
    "backup_mode",
    type=click.Choice(["auto", "require"]),
    default="auto",
    show_default=True,
    help="rig serve's backup policy before a client gets a board.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
def exporter_config_command(station_path, bind, backup_mode, output):
    """The labgrid exporter YAML of the station: per slot, its rig serve port (started only
    while a place holds the slot) and its facts (board type, relay roles, MAC)."""
    path = _station_path(station_path)
    station = load_station(str(path))
    text = lab("config:exporter_config")(station, path, bind=bind, backup=backup_mode)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@labgrid_group.command(
    "exporter",
    cls=RigCommand,
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],  # --help is labgrid-exporter's
    },
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def exporter_command(args):
    """labgrid's exporter with the rig's RigServePort class (labgrid-exporter's options:
    -c COORDINATOR, -n NAME, --hostname, --isolated, CONFIG)."""
    lab("export:main")(list(args))


@labgrid_group.command("places", cls=RigCommand)
@click.option(
    "--station",
    "station_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Station file (repeatable; default: RIG_STATION, else the embedded one).",
)
@click.option(
    "-c",
    "--lg-coordinator",
    "address",
    envvar="LG_COORDINATOR",
    required=True,
    help="labgrid coordinator HOST[:PORT] (env LG_COORDINATOR).",
)
@click.option("--exporter", help="The exporter's name (-n), if not the station's name.")
def places_command(station_paths, address, exporter):
    """Create or update one place per slot: <station>-<slot>, tags board, station and slot,
    matching <exporter>/<slot>/*."""
    specs = []
    for path in station_paths or (None,):
        station = load_station(str(_station_path(path)))
        specs += lab("config:place_specs")(station, exporter)
    with lab("client:Lab")(address) as session:
        changes = session.ensure_places(specs)
    for line in changes or ["places up to date"]:
        click.echo(line)
    for spec in specs:
        tags = " ".join(f"{k}={v}" for k, v in spec.tags.items())
        click.echo(f"place {spec.name}: {tags}; match {' '.join(spec.matches)}")


COMMANDS = [labgrid_group]
