"""pytest plugin: ``pytest --board l7x`` runs hardware-in-the-loop tests on a station's slots.

Registered through the ``pytest11`` entry point (``rig``); disable with ``-p no:rig``.

Options (group ``rig``)::

    --board NAME[,NAME]   board types to test (repeatable); unknown names are a usage error
    --station FILE        station config (default: $RIG_STATION, else the simulated station)
    --slot ID             only these slots (repeatable)
    --backups DIR         where session backups go (default: the station's backups directory)
    --firmware NAME=FILE  use FILE for the catalog firmware NAME (repeatable)
    --no-destructive      skip tests marked ``destructive``
    --keep-flash          do not put the session backup back when a slot is done
    --artifacts DIR       per-test artifacts (default: <pytest basetemp>/rig-artifacts)

Without ``--board`` or ``--slot`` every test that uses a board fixture is skipped with a reason.

Fixtures (each ``rig_*`` name also has the short alias; a project whose own conftest defines
one of the short names can use the ``rig_`` one or alias it back)::

    station  / rig_station   (session)   the LiveStation; closing it releases everything
    board    / rig_board     (module, parametrised over the selected slots, ids = slot ids)
                                         a LiveSlot: .board, .relays, .board_type, .config;
                                         a module's tests run slot by slot, each slot opened
                                         (locked) for them and closed after them
    esp      / rig_esp       (function)  a connected FlasherSession (download mode by relays)
                                         on the backed-up board only; relays released at
                                         teardown, also after a failure
    backup   / rig_backup    (module)    the session's verified backup of the board (taken
                                         once per session, before the board's first test)
    firmware / rig_firmware  (module)    the board type's catalog {name: CatalogFirmware}
    catalog_firmware         one catalog entry; tests using it run once per slot and entry
                             (put write/boot steps in a class so each entry's steps run together)
    rig_dump                 the session dump: backup, chip MD5, bytes/s
    artifacts / rig_artifacts (function) this test's Artifacts directory
    rig_record               record_property for rig: rig_record("bytes_per_s", 123456)
    backup_store             the BackupStore the session backups go to

Markers: ``board(name, ...)`` runs a test only on slots of those board types (skipped when none
is selected); ``destructive`` says a test changes the flash: it is skipped with
``--no-destructive`` (which does not make the other board tests read-only: they keep the backup
guarantee below). With pytest-xdist, every test of a slot goes to one worker (the plugin
schedules ``--dist load`` by slot: see rig/pytest_plugin/xdist.py).

JUnit XML: each board test carries the properties slot, board_type, mac, chip, revision,
flash_id (and what the test measured: firmware, firmware_sha256, bytes_per_s...). On failure the
test's artifacts (console log, esptool log, relay actions, the dump's path) are printed.

Backup guarantee. A test that holds a slot can change its flash whether or not it is marked
``destructive``: through ``esp``, or through a session of its own on ``board`` (``hil.flasher``,
``hil.ensure_flash``). So every test that uses the slot - any fixture built on ``rig_board``:
``board``, ``esp``, ``backup``, ``firmware``, ``catalog_firmware``, ``rig_dump`` - runs only
once the session's verified backup of the board in that slot exists (taken before the slot's
first test; a test whose backup cannot be taken errors instead of running). The backup's MAC
then pins the slot: ``esp`` and every flasher session opened through the slot's config
(``hil.flasher``, ``hil.ensure_flash``) refuse a board with another MAC, so a board swapped into
the slot mid-session is never written by a test. When a module is done with the slot, the chip
is compared with the backup by the chip's MD5 and the backup is written back if they differ
(``--keep-flash`` to leave it); that session too expects the backup's MAC, and a swapped board
makes it a reported error that names both MACs, the board left alone. Out of reach: a
``FlasherSession`` a test builds on ``board.board`` without passing it
``board.config.expected_mac``, and a slot a test opens itself through ``station``.

The package, as labgrid's ``pytestplugin``: :mod:`~rig.pytest_plugin.hooks`,
:mod:`~rig.pytest_plugin.fixtures`, :mod:`~rig.pytest_plugin.state` and
:mod:`~rig.pytest_plugin.xdist`; this module re-exports the hooks and fixtures, which is where
pytest looks for them (``pytest11`` entry point ``rig = "rig.pytest_plugin"``).
"""

from rig.pytest_plugin import fixtures, hooks
from rig.pytest_plugin.fixtures import *  # noqa: F403 - pytest finds fixtures here
from rig.pytest_plugin.hooks import *  # noqa: F403 - and hooks

__all__ = [*fixtures.__all__, *hooks.__all__]
