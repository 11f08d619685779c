"""Before the HIL suite runs on the bench (.github/workflows/hil.yml, job ``bench``): the station
must be a real one, and its catalog must hold the firmware the suite will write.

    python .ci/bench_preflight.py STATION BOARD

Exit 0 with the catalog entries for BOARD listed; 1 if the station has simulated slots (a
bench job that "passes" on simulated boards tests nothing), has no BOARD slot, or its catalog
has no usable firmware for BOARD (no entry, a file missing or changed since it was added);
2 if the station file does not load. The firmware comes from the station's own catalog
(``firmware:`` directories, ``rig firmware add``), never from the repository's synthetic images.
"""

from __future__ import annotations

import sys

from rig import config


def main(station_path: str, board: str) -> int:
    try:
        station = config.load_station(station_path)
    except config.ConfigError as err:
        print(err.report(), file=sys.stderr)
        return 2
    simulated = [slot.id for slot in station.slots if slot.simulated is not None]
    if simulated:
        print(
            f"refusing: station {station.name} has simulated slots ({', '.join(simulated)}); "
            "the bench job runs on real boards only",
            file=sys.stderr,
        )
        return 1
    if not any(slot.board == board for slot in station.slots):
        print(f"refusing: station {station.name} has no {board} slot", file=sys.stderr)
        return 1
    entries = station.boards[board].firmware
    dirs = ", ".join(str(d) for d in station.firmware_dirs)
    if not entries:
        print(
            f"refusing: the catalog of station {station.name} ({dirs}) has no firmware for "
            f"{board}: import the files with `rig firmware add FILE --board {board}`",
            file=sys.stderr,
        )
        return 1
    problems = [str(problem) for fw in entries for problem in fw.file_problems()]
    if problems:
        print("refusing:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    for fw in entries:
        console = fw.console or "default boot check"
        print(f"{fw.name}: {fw.describe()} sha256 {fw.sha256} ({console})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
