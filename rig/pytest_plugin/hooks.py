"""The plugin's hooks: options, configuration (the selection, the safety net), test generation
over the selected slots, collection (skips, deselection, board timeouts), reports."""

from __future__ import annotations

from typing import Any

import pytest

from rig.hardware.safety import install_safety_net, safety_net_installed, uninstall_safety_net
from rig.operations import hil
from rig.pytest_plugin.state import (
    BOARD_TEST_TIMEOUT,
    MARKERS,
    NO_BOARD,
    RECORD,
    STATE,
    HilState,
    hil_state,
    slot_of,
)
from rig.signals import Terminated

__all__ = [
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_unconfigure",
    "pytest_xdist_make_scheduler",
]


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
    from rig.pytest_plugin.xdist import SlotScheduling

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
        slot_id = slot_of(item)
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
