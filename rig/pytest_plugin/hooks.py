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
    firmware / rig_firmware  (module)    the board type's firmware catalog {name: Firmware}
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
schedules ``--dist load`` by slot: see rig/hil_xdist.py).

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .hardware.safety import install_safety_net, safety_net_installed, uninstall_safety_net
from .operations import hil
from .operations.session import WrongBoard
from .signals import Terminated

# Board tests get at least this long under pytest-timeout unless --timeout is given: a 4 MB dump
# at 115200 baud alone takes over 6 minutes.
BOARD_TEST_TIMEOUT = 900.0
NO_BOARD = "board test: no board selected (run pytest --board NAME, e.g. --board l7x)"

MARKERS = (
    "board(name, ...): run only on slots of these board types; skipped unless one is selected",
    "destructive: changes a board's flash; skipped with --no-destructive (every board test, "
    "marked or not, runs after the session's verified backup of the board)",
)


# -- state -----------------------------------------------------------------------------------------
@dataclass
class ItemRecord:
    """Per-test data: its artifacts and the properties it recorded."""

    artifacts: hil.Artifacts | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class HilState:
    selection: hil.Selection | None
    no_destructive: bool = False
    keep_flash: bool = False
    artifacts_option: str | None = None
    slots: dict[str, hil.SlotState] = field(default_factory=dict)
    current: pytest.Item | None = None
    net_installed_here: bool = False
    artifacts_root: Path | None = None

    def slot(self, slot_id: str) -> hil.SlotState:
        return self.slots.setdefault(slot_id, hil.SlotState(slot_id))

    def root(self, request: pytest.FixtureRequest) -> Path:
        if self.artifacts_root is None:
            if self.artifacts_option:
                root = Path(self.artifacts_option).expanduser().resolve()
            else:
                factory = request.getfixturevalue("tmp_path_factory")
                root = factory.getbasetemp() / "rig-artifacts"
            root.mkdir(parents=True, exist_ok=True)
            self.artifacts_root = root
        return self.artifacts_root


STATE = pytest.StashKey[HilState]()
RECORD = pytest.StashKey[ItemRecord]()


def hil_state(config: pytest.Config) -> HilState:
    return config.stash[STATE]


def _record(item: pytest.Item) -> ItemRecord:
    record = item.stash.get(RECORD, None)
    if record is None:
        record = item.stash[RECORD] = ItemRecord()
    return record


def _slot_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("rig_board") if callspec is not None else None


# -- options and configuration ---------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "ESP32 flash rig (hardware-in-the-loop tests)")
    group.addoption(
        "--board",
        action="append",
        dest="rig_board",
        metavar="NAME[,NAME]",
        help="run board tests on the slots of these board types (repeatable)",
    )
    group.addoption(
        "--station",
        dest="rig_station",
        metavar="FILE",
        help="station config (default: $RIG_STATION, else the simulated station)",
    )
    group.addoption(
        "--slot",
        action="append",
        dest="rig_slot",
        metavar="ID",
        help="only these slots (repeatable; also selects their board types)",
    )
    group.addoption(
        "--backups",
        dest="rig_backups",
        metavar="DIR",
        help="backups directory for the session's dumps (default: the station's)",
    )
    group.addoption(
        "--firmware",
        action="append",
        dest="rig_firmware",
        metavar="NAME=FILE",
        help="use FILE for the catalog firmware NAME (repeatable)",
    )
    group.addoption(
        "--no-destructive",
        action="store_true",
        dest="rig_no_destructive",
        help="skip tests marked destructive (the others still get the backup first)",
    )
    group.addoption(
        "--keep-flash",
        action="store_true",
        dest="rig_keep_flash",
        help="leave each board's flash as the tests left it (no restore of the session backup)",
    )
    group.addoption(
        "--artifacts",
        dest="rig_artifacts",
        metavar="DIR",
        help="per-test artifacts directory (default: <basetemp>/rig-artifacts)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    option = config.option
    selection = None
    if getattr(option, "rig_board", None) or getattr(option, "rig_slot", None):
        try:
            selection = hil.select(
                boards=option.rig_board or (),
                slots=option.rig_slot or (),
                station_path=option.rig_station,
                backups=option.rig_backups,
                firmware=option.rig_firmware or (),
            )
        except hil.SelectionError as err:
            raise pytest.UsageError(f"rig: {err}") from None
    elif option.rig_firmware:
        raise pytest.UsageError("rig: --firmware needs --board or --slot")
    state = HilState(
        selection,
        no_destructive=bool(option.rig_no_destructive),
        keep_flash=bool(option.rig_keep_flash),
        artifacts_option=option.rig_artifacts,
    )
    config.stash[STATE] = state
    if selection is None:
        return
    if getattr(option, "dist", "no") == "each":
        raise pytest.UsageError("rig: --dist each would run every slot's tests on every worker")
    state.net_installed_here = not safety_net_installed()
    install_safety_net()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller: every test of a slot goes to one worker (the slot lock allows no
    sharing); other tests are spread one by one as with ``--dist load``."""
    state = config.stash.get(STATE, None)
    if state is None or state.selection is None:
        return None
    if config.getvalue("dist") not in ("load", "worksteal"):
        return None  # loadscope / loadfile keep a module together: safe as they are
    from .hil_xdist import SlotScheduling

    return SlotScheduling(config, log, state.selection.slot_ids)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.net_installed_here:
        uninstall_safety_net()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or state.selection is None:
        return ["rig: no board selected, board tests are skipped (use --board NAME)"]
    lines = [f"rig: boards {', '.join(state.selection.boards)}; {state.selection.describe()}"]
    for board, name, path in state.selection.overrides:
        lines.append(f"rig: {board} firmware {name} from {path}")
    if state.no_destructive:
        lines.append("rig: --no-destructive: destructive tests are skipped")
    return lines


# -- collection ------------------------------------------------------------------------------------
def _marker_boards(definition: Any) -> list[str] | None:
    names: list[str] = []
    found = False
    for mark in definition.iter_markers("board"):
        found = True
        names += hil.parse_names(str(a) for a in (*mark.args, *mark.kwargs.values()))
    return names if found else None


def _explicitly_parametrized(metafunc: pytest.Metafunc, argname: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if argname in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rig_board" not in metafunc.fixturenames:
        return
    state = hil_state(metafunc.config)
    sel = state.selection
    if sel is None or _explicitly_parametrized(metafunc, "rig_board"):
        return
    wanted = _marker_boards(metafunc.definition)
    if wanted is not None and not set(wanted) & {s.board for s in sel.slots}:
        return  # skipped at collection (reason given there)
    # Every test gets the full slot list (same params, same order): pytest then groups a
    # module's tests by slot and opens each slot once per module. Slots a board() marker
    # excludes are deselected afterwards.
    ids = list(sel.slot_ids)
    metafunc.parametrize("rig_board", ids, indirect=True, ids=ids)
    if "rig_fw_name" in metafunc.fixturenames and not _explicitly_parametrized(
        metafunc, "rig_fw_name"
    ):
        names = list(
            dict.fromkeys(fw.name for slot in sel.slots for fw in sel.board_type(slot).firmware)
        )
        if names:
            # class scope: a class's steps for one firmware run together (write, then boot).
            metafunc.parametrize("rig_fw_name", names, ids=names, scope="class")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = hil_state(config)
    sel = state.selection
    keep: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    timeout_mark = _board_timeout(config)
    for item in items:
        uses_board = "rig_board" in getattr(item, "fixturenames", ())
        if item.get_closest_marker("destructive") and state.no_destructive:
            item.add_marker(pytest.mark.skip(reason="destructive test (--no-destructive)"))
        if not uses_board:
            keep.append(item)
            continue
        slot_id = _slot_of(item)
        if sel is None:
            item.add_marker(pytest.mark.skip(reason=NO_BOARD))
            keep.append(item)
            continue
        if slot_id is None:
            wanted = _marker_boards(item) or []
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs a board of type {' or '.join(wanted)} "
                    f"(selected: {', '.join(sel.boards)})"
                )
            )
            keep.append(item)
            continue
        board_type = sel.board_type(slot_id)
        wanted = _marker_boards(item)
        fw_name = item.callspec.params.get("rig_fw_name")  # type: ignore[attr-defined]
        if (wanted is not None and board_type.name not in wanted) or (
            fw_name is not None and all(fw.name != fw_name for fw in board_type.firmware)
        ):
            deselected.append(item)
            continue
        if timeout_mark is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(timeout_mark)
        keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


def _board_timeout(config: pytest.Config) -> Any:
    """A pytest-timeout mark for board tests when only an ini timeout shorter than a board
    needs is in force (an explicit --timeout is respected)."""
    if not config.pluginmanager.hasplugin("timeout") or config.getoption("timeout", None):
        return None
    try:
        configured = float(config.getini("timeout") or 0)
    except (ValueError, KeyError):
        return None
    if 0 < configured < BOARD_TEST_TIMEOUT:
        return pytest.mark.timeout(BOARD_TEST_TIMEOUT)
    return None


# -- running ---------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    hil_state(item.config).current = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(Terminated):
        # SIGTERM/SIGHUP: finish this test's teardown (relays released), run nothing more.
        item.session.shouldstop = f"rig: {call.excinfo.value}"
    record = item.stash.get(RECORD, None)
    if record is not None and record.artifacts is not None:
        if report.failed:
            section = (f"rig artifacts ({report.when})", record.artifacts.summary())
            report.sections.append(section)
        else:
            record.artifacts.flush()
    return report


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
    record = _record(item)
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
    record = _record(item)
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
    store = hil.backup_store(state.selection)
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
                slot_state.dump = hil.dump_backup(
                    session, backup_store, hil.backup_meta(state.selection, rig_board)
                )
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
    """The session's verified backup of this board (a rig.backups.Backup)."""
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
    record = _record(request.node)
    uses_board = _board_item(request)

    def add(name: str, value: Any) -> None:
        if uses_board:
            record.properties[name] = str(value)  # written with the board's at teardown
        else:
            request.node.user_properties.append((name, str(value)))

    return add


# Short names. A conftest that defines one of them for its own purposes (this repository's
# tests/conftest.py has a ``board``) shadows the alias, not the rig_ fixture.
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
