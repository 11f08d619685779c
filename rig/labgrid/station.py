"""A lab station: the places a lease acquired, as a station file of remote slots.

Everything the rig does with a station - ``rig flash``, ``pytest --board``, a flasher session -
then runs unchanged over the lab: each slot is ``remote: rfc2217://...`` (the Pi's ``rig serve``,
:mod:`rig.board.remote`), named after its place, with its board type and expected MAC from the
place's resources. Backups taken on this side go to the lab station's backup store; the Pi's
``rig serve`` keeps its own (it vouches for the board before every connect).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rig import config
from rig.errors import BadInput
from rig.labgrid.client import Lab, Leased, Progress, lease
from rig.labgrid.config import yaml_scalar

__all__ = [
    "DEFAULT_BACKUPS",
    "board_places",
    "check_lab_firmware",
    "lab_board_type",
    "lab_catalog",
    "lab_station_text",
    "leased_places",
    "leased_station",
]

# Where a lab client keeps the backups it takes (the Pi keeps its own): beside a developer's
# other rig backups, overridable per run (--backups, RIG_LAB_BACKUPS).
DEFAULT_BACKUPS = "${RIG_LAB_BACKUPS:-~/.local/share/rig/lab-backups}"
DEFAULT_LOCKS = "${XDG_RUNTIME_DIR:-/tmp}/rig-locks"
# The lab client's firmware catalog (catalog.yaml + files, `rig firmware add --station` on a lab
# station file imports into it): the firmware this side writes to the lab's boards. A lab of
# simulated Pis (CI) points it at the simulated station's synthetic catalog.
FIRMWARE_ENV, FIRMWARE_HOME = "RIG_LAB_FIRMWARE", "~/.local/share/rig/lab-firmware"
DEFAULT_FIRMWARE = f"${{{FIRMWARE_ENV}:-{FIRMWARE_HOME}}}"


def lab_catalog(board: str) -> list[config.CatalogFirmware]:
    """The lab client's catalog entries for ``board`` (from :data:`DEFAULT_FIRMWARE`), read
    before any place is leased: a name that is not there is bad input, and leasing would
    already have the Pis check (and maybe dump) their boards."""
    directory = Path(os.environ.get(FIRMWARE_ENV) or FIRMWARE_HOME).expanduser()
    boards = config.load_boards(config.board_dirs_for(None))
    return [fw for fw in config.load_catalogs([directory], boards) if fw.board == board]


def lab_board_type(slot: Leased) -> config.BoardType:
    """The board type of a leased slot as this side knows it - with the lab client's catalog
    (:data:`DEFAULT_FIRMWARE`), never the simulated station's synthetic images."""
    with tempfile.TemporaryDirectory(prefix="rig-lab-") as directory:
        path = Path(directory) / "lab.yaml"
        path.write_text(lab_station_text([slot], backups=directory, locks=directory))
        return config.load_station(path).boards[slot.board]


def check_lab_firmware(board: str, name: str) -> None:
    """``name`` is a firmware of ``board`` in the lab client's catalog; else :class:`BadInput`
    naming the catalog's directory and its entries."""
    known = [fw.name for fw in lab_catalog(board)]
    if name not in known:
        where = os.environ.get(FIRMWARE_ENV) or FIRMWARE_HOME
        raise BadInput(
            f"board {board} has no firmware {name!r} in the lab's catalog ({where}; "
            f"entries: {', '.join(known) or 'none'}; set {FIRMWARE_ENV} to another firmware "
            "directory)"
        )


def lab_station_text(
    leased: list[Leased], *, name: str = "lab", backups: str | None = None, locks: str | None = None
) -> str:
    """The station YAML of ``leased`` places, one remote slot each (the place's name)."""
    lines = [
        f"# the lab's places leased by this run ({len(leased)}); written by rig.labgrid",
        f"name: {yaml_scalar(name)}",
        f"backups: {yaml_scalar(backups or DEFAULT_BACKUPS)}",
        f"locks: {yaml_scalar(locks or DEFAULT_LOCKS)}",
        f"firmware: [{yaml_scalar(DEFAULT_FIRMWARE)}]",
        "slots:",
    ]
    for slot in leased:
        lines.append(f"  - id: {yaml_scalar(slot.place)}")
        lines.append(f"    board: {yaml_scalar(slot.board)}")
        lines.append(f"    remote: {yaml_scalar(slot.url)}")
        if slot.expected_mac:
            lines.append(f"    expected_mac: {yaml_scalar(slot.expected_mac)}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def leased_station(
    address: str,
    filters: list[dict[str, str]],
    directory: Path,
    *,
    timeout: float = 600.0,
    backups: str | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[Path, list[Leased]]]:
    """Lease one place per entry of ``filters``; yield the lab station's file (in ``directory``,
    checked by the config loader) and the leases; release them on exit."""
    with lease(address, filters, timeout=timeout, progress=progress) as leased:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"lab-{os.getpid()}.yaml"
        path.write_text(lab_station_text(leased, backups=backups))
        try:
            config.load_station(path)  # a board type this side does not know fails here, clearly
            yield path, leased
        finally:
            path.unlink(missing_ok=True)


def board_places(address: str, board: str, slots: str = "all") -> list[str]:
    """``rig flash``'s places: every place tagged ``board=<board>``, or those named in
    ``slots`` (ids separated by commas), which must be such places."""
    with Lab(address) as lab:
        places = lab.places()
    tagged = sorted(name for name, place in places.items() if place.tags.get("board") == board)
    if slots == "all":
        if not tagged:
            raise BadInput(f"no place tagged board={board} at {address} (see rig labgrid places)")
        return tagged
    wanted = [name.strip() for name in slots.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in tagged]
    if unknown:
        raise BadInput(
            f"not a place tagged board={board}: {', '.join(unknown)} "
            f"(places tagged board={board}: {', '.join(tagged) or 'none'})"
        )
    return wanted


@contextlib.contextmanager
def leased_places(
    address: str,
    board: str,
    slots: str,
    directory: Path,
    *,
    timeout: float = 600.0,
    progress: Progress | None = None,
) -> Iterator[Path]:
    """``rig flash --lg-coordinator``: the lab station of ``board_places``, leased."""
    filters = [{"board": board, "name": name} for name in board_places(address, board, slots)]
    with leased_station(address, filters, directory, timeout=timeout, progress=progress) as (
        path,
        _,
    ):
        yield path
