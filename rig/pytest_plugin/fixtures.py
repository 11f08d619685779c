"""The plugin's fixtures: ``rig_*`` and their short aliases (see :mod:`rig.pytest_plugin`)."""

from __future__ import annotations

from typing import Any

import pytest

from rig.operations import hil
from rig.operations.session import WrongBoard
from rig.pytest_plugin.state import NO_BOARD, RECORD, hil_state, record_of

__all__ = [
    "_rig_hil",
    "artifacts",
    "backup",
    "backup_store",
    "board",
    "catalog_firmware",
    "esp",
    "firmware",
    "rig_artifacts",
    "rig_backup",
    "rig_board",
    "rig_dump",
    "rig_esp",
    "rig_firmware",
    "rig_fw_name",
    "rig_record",
    "rig_station",
    "station",
]


def _board_item(request: pytest.FixtureRequest) -> bool:
    return "rig_board" in request.fixturenames


@pytest.fixture(autouse=True)
def _rig_hil(request: pytest.FixtureRequest):
    """For board tests: artifacts, the backup guarantee, and the JUnit properties."""
    if not _board_item(request):
        yield
        return
    state = hil_state(request.config)
    item = request.node
    slot = request.getfixturevalue("rig_board")
    slot_state = state.slot(slot.id)
    record = record_of(item)
    artifacts = _artifacts_for(request, item)
    artifacts.watch_relays(slot.relays)
    # Any test holding the slot can change the flash (esp, or a session of its own on the
    # slot): the verified backup comes first, and the slot is checked when the module is done.
    backup = request.getfixturevalue("rig_backup")
    slot_state.touched = True
    artifacts.note("dump", backup.path)
    artifacts.note("dump_sha256", backup.sha256)
    try:
        yield
    finally:
        props = {"slot": slot.id, "board_type": slot.board_type.name}
        if slot_state.identity is not None:
            props.update(hil.identity_properties(slot_state.identity))
        props.update(record.properties)
        item.user_properties.extend(props.items())
        artifacts.flush()


def _artifacts_for(request: pytest.FixtureRequest, item: pytest.Item) -> hil.Artifacts:
    record = record_of(item)
    if record.artifacts is None:
        root = hil_state(request.config).root(request)
        record.artifacts = hil.Artifacts(root / hil.safe_name(item.nodeid))
    return record.artifacts


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rig_station(request: pytest.FixtureRequest):
    """The live station of the selection (closing it releases every relay it drove)."""
    state = hil_state(request.config)
    if state.selection is None:
        pytest.skip(NO_BOARD)
    state.root(request)  # the artifacts directory, known before any slot is used
    station = hil.open_station(state.selection)
    try:
        yield station
    finally:
        station.close()


@pytest.fixture(scope="module")
def rig_board(request: pytest.FixtureRequest, rig_station):
    """One selected slot, opened (locked, relays at rest) for a module's tests that use it and
    closed (relays released, lock dropped) after them."""
    slot_id = getattr(request, "param", None)
    if slot_id is None:
        pytest.skip(NO_BOARD)
    state = hil_state(request.config)
    slot = rig_station.open_slot(slot_id)
    try:
        yield slot
        slot_state = state.slot(slot_id)
        if slot_state.touched and slot_state.backup is not None and not state.keep_flash:
            _leave_as_found(request, slot, slot_state)
    finally:
        slot.close()


def _leave_as_found(request: pytest.FixtureRequest, slot, slot_state: hil.SlotState) -> None:
    """Put the session backup back if the flash no longer matches it (chip MD5).

    Only onto the board the backup was taken from: the session connects expecting the backup's
    MAC, so a board swapped into the slot meanwhile is refused before anything is read or
    written, and the refusal is this module's error (never a silent skip).
    """
    state = hil_state(request.config)
    backup = slot_state.backup
    artifacts = hil.Artifacts(state.root(request) / hil.safe_name(slot.id) / "restore")
    artifacts.watch_relays(slot.relays)
    try:
        hil.ensure_flash(slot, 0, backup.read(), track=artifacts.track, expected_mac=backup.mac)
        slot_state.touched = False
    except WrongBoard as err:
        raise pytest.fail.Exception(
            f"rig: the session backup of {backup.mac} was not put back: {err}; the board was "
            f"left alone (its flash not written). Backup of {backup.mac}: {backup.path}",
            pytrace=False,
        ) from None
    finally:
        artifacts.flush()


@pytest.fixture(scope="session")
def backup_store(request: pytest.FixtureRequest):
    state = hil_state(request.config)
    if state.selection is None:
        pytest.skip(NO_BOARD)
    store = state.selection.store()
    store.check_writable()
    return store


@pytest.fixture(scope="module")
def rig_dump(request: pytest.FixtureRequest, rig_board, backup_store) -> hil.DumpResult:
    """The session's dump of this board, verified against the chip's MD5 and stored."""
    state = hil_state(request.config)
    slot_state = state.slot(rig_board.id)
    if slot_state.dump is None:
        where = state.root(request) / hil.safe_name(rig_board.id) / "session-backup"
        artifacts = hil.Artifacts(where)
        artifacts.watch_relays(rig_board.relays)
        try:
            with hil.flasher(rig_board, track=artifacts.track) as session:
                slot_state.identity = session.identity
                meta = state.selection.backup_meta(rig_board.id)
                slot_state.dump = hil.take_backup(session, backup_store, meta, reuse=True)
            artifacts.note("dump", slot_state.dump.backup.path)
        finally:
            artifacts.flush()
        item = state.current
        if item is not None and item.stash.get(RECORD, None) is not None:
            record = item.stash[RECORD]
            if record.artifacts is not None:
                record.artifacts.note("session_backup_log", where)
    _pin(rig_board, slot_state.dump.backup.mac)
    return slot_state.dump


def _pin(slot, mac: str) -> None:
    """Pin the slot to the board the session backed up: every flasher session opened on it
    through its config (the esp fixture, hil.flasher / hil.ensure_flash on ``board``) then
    refuses a board with another MAC. Each module opens the slot afresh: pinned again here."""
    slot.config = slot.config.model_copy(update={"expected_mac": mac})


@pytest.fixture(scope="module")
def rig_backup(rig_dump: hil.DumpResult):
    """The session's verified backup of this board (a rig.operations.backups.Backup)."""
    return rig_dump.backup


@pytest.fixture
def rig_esp(request: pytest.FixtureRequest, rig_board, rig_backup):
    """A flasher session on this board in ROM download mode, after the session's backup of it
    and only on the board that backup is of; relays released at teardown."""
    state = hil_state(request.config)
    artifacts = _artifacts_for(request, request.node)
    with hil.flasher(rig_board, track=artifacts.track, expected_mac=rig_backup.mac) as session:
        state.slot(rig_board.id).identity = session.identity
        yield session
    artifacts.flush()


@pytest.fixture(scope="module")
def rig_firmware(rig_board) -> dict[str, Any]:
    """The board type's firmware catalog, by name (``--firmware`` overrides applied)."""
    return {fw.name: fw for fw in rig_board.board_type.firmware}


@pytest.fixture(scope="session")
def rig_fw_name(request: pytest.FixtureRequest) -> str:
    """Parametrised by the plugin with catalog names (see ``catalog_firmware``)."""
    pytest.skip(NO_BOARD if hil_state(request.config).selection is None else "empty catalog")


@pytest.fixture
def catalog_firmware(rig_board, rig_fw_name, rig_record):
    """One firmware of the board's catalog (tests using it run for every entry)."""
    fw = rig_board.board_type.firmware_named(rig_fw_name)
    rig_record("firmware", fw.name)
    rig_record("firmware_sha256", fw.sha256)
    return fw


@pytest.fixture
def rig_artifacts(request: pytest.FixtureRequest) -> hil.Artifacts:
    """This test's artifacts directory (console log, esptool log, relay actions, notes)."""
    return _artifacts_for(request, request.node)


@pytest.fixture
def rig_record(request: pytest.FixtureRequest):
    """``rig_record(name, value)``: a JUnit property of this test (like record_property,
    without its xunit2 warning; a later value for the same name replaces the earlier one)."""
    record = record_of(request.node)
    uses_board = _board_item(request)

    def add(name: str, value: Any) -> None:
        if uses_board:
            record.properties[name] = str(value)  # written with the board's at teardown
        else:
            request.node.user_properties.append((name, str(value)))

    return add


# Short names. A conftest that defines one of them for its own purposes shadows the alias, not
# the rig_ fixture.
@pytest.fixture(scope="session")
def station(rig_station):
    return rig_station


@pytest.fixture(scope="module")
def board(rig_board):
    return rig_board


@pytest.fixture
def esp(rig_esp):
    return rig_esp


@pytest.fixture(scope="module")
def backup(rig_backup):
    return rig_backup


@pytest.fixture(scope="module")
def firmware(rig_firmware):
    return rig_firmware


@pytest.fixture
def artifacts(rig_artifacts):
    return rig_artifacts
