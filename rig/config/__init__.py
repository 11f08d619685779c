"""Board types and stations: YAML files -> frozen, typed, cross-checked models.

The config layer imports no other layer of the rig (only its leaf modules, ``rig.errors`` and
``rig.esp32``).

* A **board type** (``configs/boards/<name>.yaml``) says what a kind of board is: chip, flash size,
  serial facts, the relay roles it needs, its boot sequences as data, a firmware catalog and its
  known flash layout -> :class:`BoardType` (:mod:`.board`, :mod:`.sequences`).
* A **station** (``configs/stations/<name>.yaml``) is one physical rig: pin backend, backups,
  firmware and lock directories, and slots (board type, serial port, relay channel per role) ->
  :class:`Station` (:mod:`.station`); a simulated slot's options and injected faults:
  :mod:`.simulated`, :mod:`.faults`.
* A station's **firmware catalogs** (``<firmware dir>/catalog.yaml``) list what it can flash:
  entries of parts (file, offset, sha256) per board type -> :class:`CatalogFirmware`
  (:mod:`.catalog`); each board type the station uses carries its entries.

Files are read by :mod:`.loading` and every problem becomes a :class:`ConfigError` that reads
``file:line:col: where: message``, e.g. ``configs/stations/pi.yaml:14:7: slots[1].relays.io0.pin:
pin 27 is already used by power of slot l7x-1``. Loaders raise the first error with all of them in
``.errors``; :func:`check_files` returns every problem of every file (:mod:`.checking`).

Paths in files (firmware files, backups, locks, simulated flash images) expand ``~``, ``$VAR``,
``${VAR}`` and ``${VAR:-default}`` and are resolved against the directory of the file.
"""

from .board import BoardType, FlashRegion, FlashSpec, Rfc2217Mapping, SerialFacts
from .catalog import (
    CATALOG_FILE,
    Catalog,
    CatalogFirmware,
    FirmwarePart,
    appended_catalog,
    entry_yaml,
    sha256_of,
)
from .checking import check_files, json_schema
from .errors import ConfigError
from .faults import FAULT_KINDS, Fault, FaultSpec, parse_fault
from .loading import (
    STATION_ENV,
    board_dirs_for,
    builtin_configs_dir,
    default_station,
    load_board,
    load_boards,
    load_catalog,
    load_catalogs,
    load_station,
    station_from_env,
)
from .sequences import ACTIONS, MAX_WAIT, Sequences, SequenceStep
from .simulated import SIM_VARIANTS, SimEfuses, SimSlot, SimVariant
from .station import PinsConfig, RelayChannel, Slot, Station
from .types import ROLES

__all__ = [
    "ACTIONS",
    "CATALOG_FILE",
    "FAULT_KINDS",
    "MAX_WAIT",
    "ROLES",
    "SIM_VARIANTS",
    "STATION_ENV",
    "BoardType",
    "Catalog",
    "CatalogFirmware",
    "ConfigError",
    "Fault",
    "FaultSpec",
    "FirmwarePart",
    "FlashRegion",
    "FlashSpec",
    "PinsConfig",
    "RelayChannel",
    "Rfc2217Mapping",
    "SequenceStep",
    "Sequences",
    "SerialFacts",
    "SimEfuses",
    "SimSlot",
    "SimVariant",
    "Slot",
    "Station",
    "appended_catalog",
    "board_dirs_for",
    "builtin_configs_dir",
    "check_files",
    "default_station",
    "entry_yaml",
    "json_schema",
    "load_board",
    "load_boards",
    "load_catalog",
    "load_catalogs",
    "load_station",
    "parse_fault",
    "sha256_of",
    "station_from_env",
]
