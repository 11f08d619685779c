"""What a station looks like to labgrid: the exporter config of its slots, and its places.

One resource group per slot, named after the slot:

* ``RigServePort`` - the slot's ``rig serve`` RFC 2217 port, started only while a place holds the
  slot (the gated export class of :mod:`rig.labgrid.export`); clients see a stock
  ``NetworkSerialPort`` whose ``extra`` carries the rig's facts;
* ``RigSlot`` - the slot's facts (station, slot, board type, relay roles, expected MAC), passed
  through as they are: the labgrid drivers (:mod:`rig.labgrid.drivers`) and the rig's own client
  (:mod:`rig.labgrid.client`) build the board from them.

And one place per slot, ``<station>-<slot>``, matching ``<exporter>/<slot>/*`` (the exporter is
named after the station) and tagged ``board=<type> station=<name> slot=<id>``, so a job reserves
``board=l7x`` and gets any free L7X of the lab.

labgrid renders an exporter config as a Jinja2 template whose line statements start with ``#``
and whose comments start with ``##`` (labgrid.remote.config.ResourceConfig): a YAML ``# comment``
there is a Jinja syntax error, and a value holding ``{{``, ``{%`` or ``##`` would be rendered or
cut. So comments are written with ``##``, and every value is a YAML double-quoted scalar in which
``{``, ``}`` and ``#`` are escaped (``\\x7b``, ``\\x7d``, ``\\x23``): Jinja sees plain text, YAML
reads the value back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rig import config

__all__ = ["PlaceSpec", "exporter_config", "place_name", "place_specs", "yaml_scalar"]

SERVE_CLASS = "RigServePort"  # the export class name (rig.labgrid.export registers it)
SLOT_CLASS = "RigSlot"


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML double-quoted scalar that Jinja2 leaves alone (see the module doc)."""
    text = json.dumps(str(value))  # ASCII, with \\ \" and \\uXXXX escapes: all valid in YAML
    return text.replace("{", "\\x7b").replace("}", "\\x7d").replace("#", "\\x23")


def place_name(station: str, slot: str) -> str:
    return f"{station}-{slot}"


@dataclass(frozen=True)
class PlaceSpec:
    """One place of the lab: a slot of a station, its tags and its resource match."""

    name: str
    tags: dict[str, str]
    matches: tuple[str, ...] = field(default=())


def place_specs(station: config.Station, exporter: str | None = None) -> list[PlaceSpec]:
    """One place per slot; ``exporter``: the exporter's name (default: the station's)."""
    exporter = exporter or station.name
    return [
        PlaceSpec(
            place_name(station.name, slot.id),
            {"board": slot.board, "station": station.name, "slot": slot.id},
            (f"{exporter}/{slot.id}/*",),
        )
        for slot in station.slots
    ]


def _slot_facts(station: config.Station, slot: config.Slot) -> dict[str, str]:
    facts = {
        "station": station.name,
        "slot": slot.id,
        "board": slot.board,
        "relays": ",".join(slot.relays),  # labgrid carries scalars only
    }
    if slot.expected_mac:
        facts["expected_mac"] = slot.expected_mac
    return facts


def exporter_config(
    station: config.Station, station_path: Path, *, bind: str = "127.0.0.1", backup: str = "auto"
) -> str:
    """The exporter YAML for ``station`` (loaded from ``station_path``, which the exporter's
    ``rig serve`` processes load again). ``bind``: where each ``rig serve`` listens (loopback,
    with labgrid's ``--isolated`` SSH forwarding: docs/lab.md); ``backup``: its backup policy."""
    path = Path(station_path).resolve()
    lines = [
        f"## labgrid exporter config for station {station.name}, from {path}",
        "## written by `rig labgrid exporter-config`; run it with",
        f"##   rig labgrid exporter -c COORDINATOR:20408 -n {station.name} --hostname 127.0.0.1 "
        "--isolated THIS_FILE",
        "## (the export class RigServePort is the rig's: stock labgrid-exporter does not know it).",
        "## labgrid renders this file with Jinja2: comments start with '##', and the values are",
        "## double-quoted YAML with {, } and # escaped.",
        f"## places: rig labgrid places --station {path.name} -c COORDINATOR:20408",
    ]
    for slot in station.slots:
        lines.append(f"{yaml_scalar(slot.id)}:")
        lines.append(f"  {SERVE_CLASS}:")
        serve = {"station": path, "slot": slot.id, "bind": bind, "backup": backup}
        lines += [f"    {key}: {yaml_scalar(value)}" for key, value in serve.items()]
        lines.append(f"  {SLOT_CLASS}:")
        facts = _slot_facts(station, slot)
        lines += [f"    {key}: {yaml_scalar(value)}" for key, value in facts.items()]
    return "\n".join(lines) + "\n"
