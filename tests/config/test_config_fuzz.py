"""Fuzzing the config loader: random YAML and mutations of the shipped configs never end in a
traceback - always a valid config or a ConfigError that points at file:line.

The example counts are bounded (and the runs derandomized) so this takes a few seconds in
``make test``; ``make soak`` digs deeper with fresh randomness (``RIG_FUZZ_EXAMPLES``, there
``FUZZ_EXAMPLES=N``, default 1000 per strategy).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rig import config  # noqa: E402

EXAMPLES = int(os.environ.get("RIG_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 120,
    derandomize=EXAMPLES is None,  # make test: the same examples every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
BUILTIN = config.builtin_configs_dir()

# A station that uses every section, including every fault kind: the richest thing to mutate.
FAULTY_STATION = """\
name: fuzz
backups: backups
locks: locks
pins: {backend: sim}
slots:
  - id: l7x-1
    board: l7x
    relays: {io0: {pin: 17}, power: {pin: 27, active_low: true}}
    expected_mac: 24:0a:c4:00:00:04
    simulated:
      variant: l7x
      seed: fuzz
      fault_seed: 7
      max_baud: 2000000
      faults:
        - {kind: noise, rate: 0.001, on: to_chip, after: 0x1000, length: 20000, duration: 0.5}
        - {kind: drop, rate: 0.0001, on: both}
        - {kind: stall, seconds: 2, after: 30000, on: to_host}
        - {kind: unplug, after: 5000, on: flash, gone: 1.5}
        - {kind: brownout, after: 65536, off: 0.1}
        - {kind: bad_sector, address: 0x20000, count: 2}
        - {kind: hang, after: 100}
        - {kind: relay_stuck, role: power, state: on}
        - {kind: io0_open}
        - {kind: slow_flash, factor: 10}
        - {kind: console_garbage, bytes: 64, resets: 2}
  - id: devkitc-1
    board: esp32-devkitc
    relays: {io0: {pin: 12, active_low: false}, reset: {pin: 13}}
    simulated: {variant: devkit, vendor_flash: false, io0_connected: true, fail_connects: 1}
"""


@pytest.fixture(scope="module")
def boards():
    return config.load_boards([BUILTIN / "boards"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A config tree like the shipped one: boards/, stations/, firmware/ (for relative paths)."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(BUILTIN / "firmware", root / "firmware")
    (root / "boards").mkdir()
    (root / "stations").mkdir()
    return root


def _texts() -> dict[str, str]:
    texts = {p.name: p.read_text() for p in sorted((BUILTIN / "stations").glob("*.yaml"))}
    texts.update({f"board:{p.name}": p.read_text() for p in sorted((BUILTIN / "boards").glob("*"))})
    texts["faulty.yaml"] = FAULTY_STATION
    return texts


TEXTS = _texts()


def load_any(path: Path, boards) -> object:
    """Load ``path`` as what it is; a ConfigError must point at the file, with a line."""
    try:
        if path.parent.name == "boards":
            return config.load_board(path)
        return config.load_station(path, boards)
    except config.ConfigError as err:
        assert err.file == path, err
        assert err.line is not None and err.col is not None, f"no line: {err}"
        assert str(err).startswith(f"{path}:{err.line}:{err.col}: "), str(err)
        for other in err.errors:
            assert other.line is not None, f"no line: {other}"
        return err


def write(workdir: Path, name: str, text: str) -> Path:
    if name.startswith("board:"):
        # A board file must be named after its board: keep the shipped name.
        path = workdir / "boards" / name.split(":", 1)[1]
    else:
        path = workdir / "stations" / name
    path.write_text(text)
    return path


def _valid_shipped_still_load(workdir, boards):
    for name, text in TEXTS.items():
        result = load_any(write(workdir, name, text), boards)
        assert not isinstance(result, config.ConfigError), f"{name}: {result}"


def test_the_corpus_itself_is_valid(workdir, boards):
    _valid_shipped_still_load(workdir, boards)


# -- random YAML ----------------------------------------------------------------------------------
YAML_CHARS = st.sampled_from(list(" \n\t:-[]{},'\"#&*!|>%@`?0123456789.xabcdefkinoprstuvy_~$\\"))


@FUZZ
@given(text=st.text(YAML_CHARS, max_size=300), as_board=st.booleans())
def test_random_text(workdir, boards, text, as_board):
    load_any(write(workdir, "board:l7x.yaml" if as_board else "random.yaml", text), boards)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["l7x", "sim", "io0", "power", "reset", "0x1000", "4MB", "on", "off", "~/x"]),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=10), st.sampled_from(sorted(config.Slot.model_fields))),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@FUZZ
@given(data=trees)
def test_random_documents(workdir, boards, data):
    text = yaml.safe_dump(data, allow_unicode=True)
    load_any(write(workdir, "random.yaml", text), boards)


# -- mutations of the shipped configs -------------------------------------------------------------
def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(data, path, how, value):
    if not path:
        return value if how == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "replace":
        parent[last] = value
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{last}x" if isinstance(last, str) else str(last)] = parent.pop(last)
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpected"] = value
    elif how == "duplicate" and isinstance(parent, list):
        parent.append(parent[last])
    return data


@FUZZ
@given(
    name=st.sampled_from(sorted(TEXTS)),
    picks=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from(["delete", "replace", "rename", "extra", "duplicate"]),
            trees,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_structural_mutations_of_shipped_configs(workdir, boards, name, picks):
    data = yaml.safe_load(TEXTS[name])
    for index, how, value in picks:
        paths = list(_paths(data))
        data = _mutate(data, paths[index % len(paths)], how, value)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    load_any(write(workdir, name, text), boards)


@FUZZ
@given(
    name=st.sampled_from(sorted(TEXTS)),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=100_000),
            st.sampled_from(["delete-line", "dup-line", "insert", "truncate", "swap-lines"]),
            st.text(YAML_CHARS, min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_text_mutations_of_shipped_configs(workdir, boards, name, edits):
    text = TEXTS[name]
    for at, how, chunk in edits:
        lines = text.splitlines(keepends=True) or [""]
        i = at % len(lines)
        if how == "delete-line":
            del lines[i]
        elif how == "dup-line":
            lines.insert(i, lines[i])
        elif how == "swap-lines" and len(lines) > 1:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        text = "".join(lines)
        pos = at % (len(text) + 1)
        if how == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif how == "truncate":
            text = text[:pos]
    load_any(write(workdir, name, text), boards)


FAULT_VALUES = st.one_of(
    scalars,
    st.sampled_from(
        ["to_chip", "to_host", "both", "flash", "noise", "stall", "0x1001", -1, 0, 1e9, "1s"]
    ),
)


FAULT_SETTINGS = sorted({key for kind in config.FAULT_KINDS.values() for key in kind.model_fields})


@FUZZ
@given(
    fault=st.dictionaries(
        st.sampled_from([*FAULT_SETTINGS, "bogus"]),
        FAULT_VALUES,
        max_size=6,
    ),
    kind=st.sampled_from(sorted(config.FAULT_KINDS)),
)
def test_random_fault_entries(workdir, boards, fault, kind):
    """The faults section specifically: any mix of keys and values, every kind."""
    fault.setdefault("kind", kind)
    data = yaml.safe_load(FAULTY_STATION)
    data["slots"][0]["simulated"]["faults"] = [fault]
    path = write(workdir, "faults.yaml", yaml.safe_dump(data, sort_keys=False))
    result = load_any(path, boards)
    if not isinstance(result, config.ConfigError):
        # A valid fault is one the simulator's injector arms as it is.
        arm(result.slots[0].simulated.faults[0])


def arm(fault) -> None:
    """Arm ``fault`` on a stand-in for a simulated board's parts (no pty, no threads)."""
    from rig.sim.faults import FaultInjector
    from rig.sim.parts.flash import NorFlash

    part = SimpleNamespace
    target = part(
        uart=part(baud=115200, path="sim"),
        flash=NorFlash(0x400000),
        chip=part(),
        lock=threading.RLock(),
        scheduler=None,
        log_event=lambda what: None,
    )
    injector = FaultInjector(target, [fault])
    assert injector.faults == [fault]


def test_fault_errors_point_at_the_key(workdir, boards):
    text = FAULTY_STATION.replace("{kind: stall, seconds: 2,", "{kind: stall, rate: 2,")
    err = load_any(write(workdir, "bad.yaml", text), boards)
    assert isinstance(err, config.ConfigError)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "kind: stall" in t)
    assert err.line == line and err.where == "slots[0].simulated.faults[2].rate"
    assert "'rate' is not a setting of a stall fault (it takes seconds, after, on)" in str(err)
    assert re.search(r"bad\.yaml:\d+:\d+: ", str(err))
