"""Fault injection on simulated boards, the rig's recovery from it, and host faults.

* the fault API (rig.sim.faults): each fault does what docs/faults.md says, seeded and
  reproducible; the station config's ``faults:`` section reaches the board;
* a slice of the fault matrix (tests/soak/fault_matrix.py; the full matrix runs in `make soak`);
* host faults: SIGINT / SIGTERM mid-operation (`rig cycle` and `rig demo` too), disk full while
  dumping, an unwritable backups directory or one without hard links, two processes on one
  slot - against the real `rig` CLI (in a subprocess whose simulated board reports what
  happened to it through RIG_SIM_TRACE, or in-process where the host fault is patched in).

Each test asserts what the rig must do, with the rig behaviour it requires in the assertion's
message: a regression fails the suite (there is no conditional ``pytest.xfail`` here, and
``xfail_strict`` is on for the project).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from esptool.cmds import detect_chip, run_stub
from soak import fault_matrix as M

from rig.errors import BadInput
from rig.operations.esplog import captured
from rig.sim import faults as F
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.timeout(120)


def connect(board):
    """esptool + stub on a board already in download mode."""
    with captured():
        return run_stub(detect_chip(board.port_alias, connect_mode="no-reset", connect_attempts=1))


# -- the fault API ----------------------------------------------------------------------------
def test_fault_from_dict_validates_and_names_the_field():
    """A fault's dict form (as in a station file) goes through the one fault schema
    (rig.config.faults) and a bad one is refused naming the field and what is wrong with it."""
    assert F.parse_fault({"kind": "stall", "seconds": 2, "after": 10}) == F.Stall(
        seconds=2, after=10
    )
    for spec, message in [
        ({"kind": "nope"}, "kind: unknown fault kind 'nope' \\(kinds: noise, drop, stall"),
        ({"kind": "stall", "seconds": 2, "rate": 1}, "rate: 'rate' is not a setting of a stall"),
        ({"kind": "noise", "rate": 2}, "rate: Input should be less than or equal to 1"),
        ({"kind": "noise", "rate": 0.1, "on": "flash"}, "on: Input should be 'to_chip'"),
        ({"kind": "bad_sector", "address": 0x1001}, "address: offset 0x1001 is not aligned"),
        ({"kind": "bad_sector"}, "address: missing required key 'address'"),
        ({"kind": "relay_stuck", "state": "half"}, "state: Input should be 'on' or 'off'"),
    ]:
        with pytest.raises(BadInput, match=message):
            F.parse_fault(spec)
    assert set(F.FAULT_KINDS) >= {"noise", "drop", "stall", "unplug", "brownout", "bad_sector"}
    stuck = F.RelayStuck(role="power", state="off")
    assert F.wiring([stuck, F.Io0Open()]) == ({"power": False}, False)


def test_noise_and_drops_are_seeded_windowed_and_reproducible(make_board):
    def run(seed):
        board = make_board("l7x", seed="noise", inject_seed=seed)
        board.inject(F.Noise(rate=0.05, on="to_chip", after=1000, length=2000))
        board.inject(F.Drop(rate=0.05, on="to_host", after=0, length=500))
        tap = board.injector._tap
        out_in = b"".join(p for p in tap(bytes(4000), True) if isinstance(p, bytes))
        out_out = b"".join(p for p in tap(bytes(1000), False) if isinstance(p, bytes))
        return out_in, out_out

    a, b, c = run(1), run(1), run(2)
    assert a == b and a != c  # same seed, same bytes hit
    to_chip, to_host = a
    assert len(to_chip) == 4000 and to_chip[:1000] == bytes(1000) == to_chip[3000:]
    flipped = [x for x in to_chip[1000:3000] if x]
    assert 50 <= len(flipped) <= 160 and all(bin(x).count("1") == 1 for x in flipped)
    assert 1000 - 60 <= len(to_host) < 1000  # ~25 of the first 500 bytes dropped
    assert not any(to_host)


def test_events_are_cut_at_their_byte_and_none_is_lost(make_board):
    board = make_board("l7x")
    board.inject(F.Hang(after=5), from_now=False)
    board.inject(F.Stall(seconds=0.01, after=8), from_now=False)
    first = board.injector._tap(bytes(range(20)), True)
    assert first[0] == bytes(range(5)) and callable(first[1]) and len(first) == 2
    second = board.injector._tap(b"next", True)  # the stall's byte was never delivered
    assert callable(second[0]) and second[1] == b"next"


def test_a_burst_of_noise_ends_after_its_duration(make_board):
    board = make_board("l7x")
    board.inject(F.Noise(rate=1.0, on="to_chip", duration=0.2))
    tap = board.injector._tap
    assert tap(bytes(10), True) != [bytes(10)]
    time.sleep(0.3)
    assert tap(bytes(10), True) == [bytes(10)]


def test_noise_above_a_baud_rate_leaves_slower_rates_alone(make_board):
    """A marginal cable or bridge: clean at 921600, bit errors at 2 Mbaud (the faster edges
    and shorter bit cells of a higher rate leave less margin; the rate the line runs at is the
    chip UART's, which follows the host's)."""
    board = make_board("l7x", seed="marginal")
    board.inject(F.Noise(rate=1.0, on="both", above_baud=921600))
    tap = board.injector._tap
    for baud in (115200, 921600):
        board.uart.baud = baud
        assert tap(bytes(10), True) == [bytes(10)] and tap(bytes(10), False) == [bytes(10)]
    board.uart.baud = 2000000
    [hit] = tap(bytes(10), True)
    assert len(hit) == 10 and all(bin(x).count("1") == 1 for x in hit)
    assert [f.kind for f in board.injector.fired] == ["noise"]
    with pytest.raises(BadInput, match="above_baud: Input should be greater than 0"):
        F.parse_fault({"kind": "drop", "rate": 0.1, "above_baud": 0})


def test_stall_holds_the_line_then_delivers(make_board):
    board = make_board("l7x", boot="download")
    board.inject(F.Stall(seconds=1.0, after=0, on="to_chip"))
    t0 = time.monotonic()
    with captured():
        esp = detect_chip(board.port_alias, connect_mode="no-reset", connect_attempts=3)
    try:
        assert time.monotonic() - t0 >= 0.9
        assert [f.kind for f in board.injector.fired] == ["stall"]
        assert bytes(esp.read_mac()) == board.mac
    finally:
        esp._port.close()


def test_unplug_breaks_the_open_port_and_the_alias_follows_the_new_pty(make_board, tmp_path):
    from rig.hardware.ports import PortNotFound, PortSpec

    alias = tmp_path / "by-id" / "usb-sim-l7x"
    board = make_board("l7x", boot="download", port_alias=alias)
    old = board.uart.path
    assert os.readlink(alias) == old and board.port_alias == str(alias)
    esp = connect(board)
    board.inject(F.Unplug(after=0, on="to_chip", gone=0.6))
    with pytest.raises(serial.SerialException):
        esp.read_reg(0x3FF5A004)  # the cable came out under esptool
    esp._port.close()
    assert not alias.exists()  # as udev removes the by-id link
    with pytest.raises(PortNotFound, match="did not come back"):
        PortSpec(url=str(alias), reappear=0.1).resolve()
    t0 = time.monotonic()
    assert PortSpec(url=str(alias), reappear=3).resolve() == str(alias)  # waits for it
    assert 0.2 < time.monotonic() - t0 < 3
    assert os.readlink(alias) == board.uart.path != old  # re-enumerated under a new name
    board.boot_into("download")  # the L7X kept its supply: relays bring it back as usual
    esp = connect(board)
    try:
        assert bytes(esp.read_mac()) == board.mac
    finally:
        esp._port.close()
    board.close()
    assert not os.path.lexists(alias)


def test_brownout_cuts_power_after_n_programmed_bytes(make_board):
    board = make_board("devkit", boot="download", inject=[F.BrownOut(after=0x1800, off=0.05)])
    esp = connect(board)
    data = bytes(range(256)) * 64  # 16 KB
    try:
        with pytest.raises(Exception):  # noqa: B017 - esptool's error for a dead chip varies
            esp.flash_begin(len(data), 0x20000)
            esp.flash_block(data, 0)
            esp.flash_md5sum(0x20000, len(data))
    finally:
        esp._port.close()
    assert board.flash.read(0x20000, 0x1800) == data[:0x1800]
    assert board.flash.read(0x21800, 0x2800) == b"\xff" * 0x2800  # erased, never programmed
    assert any("brown-out" in e for _, e in board.events)
    time.sleep(0.2)
    assert board.mode == "firmware"  # supply back, IO0 high: it booted from flash


def test_bad_sector_silently_ignores_programming(make_board):
    board = make_board("l7x", inject=[F.BadSector(address=0x3000)])
    board.flash.erase(0x2000, 0x3000)
    board.flash.program(0x2F00, b"\x00" * 0x300)  # across the bad sector's start
    assert board.flash.read(0x2F00, 0x100) == b"\x00" * 0x100
    assert board.flash.read(0x3000, 0x200) == b"\xff" * 0x200
    board.flash.program(0x4000, b"\x00" * 16)
    assert board.flash.read(0x4000, 16) == b"\x00" * 16


def test_hang_makes_the_chip_deaf_until_reset(make_board):
    board = make_board("l7x", boot="download")
    esp = connect(board)
    board.inject(F.Hang(after=10, on="to_chip"))
    try:
        with pytest.raises(Exception):  # noqa: B017
            esp.read_reg(0x3FF5A004)
    finally:
        esp._port.close()
    assert board.mode == "hung"
    board.boot_into("download")
    assert board.mode == "download"


def test_slow_flash_and_console_garbage(make_board):
    board = make_board("l7x", inject=[F.SlowFlash(factor=10), F.ConsoleGarbage(bytes=40, resets=1)])
    assert board.flash.timing.sector_erase_s == pytest.approx(0.45)
    with serial.Serial(board.port_alias, 115200, timeout=0.05) as ser:
        board.boot_into("download")
        deadline, text = time.monotonic() + 2, b""
        while b"waiting for download" not in text and time.monotonic() < deadline:
            text += ser.read(4096)
    assert text.index(b"rst:0x1") >= 40  # 40 garbage bytes came first
    assert [f.kind for f in board.injector.fired] == ["slow_flash", "console_garbage"]


def test_station_faults_reach_the_board_and_the_pins(sim_station_config, tmp_path):
    from rig import config
    from rig.board.station import LiveStation

    stuck = config.parse_fault({"kind": "relay_stuck", "role": "power", "state": "on"})
    garbage = F.ConsoleGarbage(bytes=8)
    cfg = sim_station_config(
        **{"l7x-2": {"faults": (stuck, garbage)}, "l7x-3": {"faults": (F.Io0Open(),)}}
    )
    with LiveStation(cfg) as st:
        slot = st.open_slot("l7x-2")
        sim = st.simulated_board("l7x-2")
        assert sim.contact("power")  # welded: closed from the start ...
        assert not slot.relays["power"].is_closed  # ... while the pin says released
        assert str(slot.board.port) == str(cfg.locks / "sim-ports" / f"sim-l7x-2-{os.getpid()}")
        assert os.readlink(slot.board.port.resolve()) == sim.uart.path
        slot.close()
        assert sim.contact("power")
        slot3 = st.open_slot("l7x-3")
        assert slot3.relays["io0"].pin.contact is None


def test_real_slots_wait_for_a_replugged_port(tmp_path, monkeypatch):
    """A bumped USB cable re-enumerates in ~1-2 s; the by-id link (or the USB serial number) is
    missing meanwhile. Simulated slots wait for it (PortSpec.reappear); real slots must too."""
    from rig import config
    from rig.board.station import LiveStation
    from rig.hardware.pins.mock import MockPinFactory

    cfg = config.load_station(config.builtin_configs_dir() / "stations" / "pi-example.yaml")
    cfg = cfg.model_copy(update={"locks": tmp_path / "locks", "backups": tmp_path / "backups"})
    monkeypatch.setattr(LiveStation, "_pin_factory", lambda self: MockPinFactory())
    with LiveStation(cfg) as st:
        port = st.open_slot(cfg.slots[0].id).board.port
    assert port.reappear > 0, (
        "rig/board/station.py real_parts must build a real slot's port with PortSpec(..., "
        "reappear=N) so a re-enumerating by-id path / USB serial number is waited for, not a "
        "failed reconnect"
    )


# -- the fault matrix, a slice --------------------------------------------------------------------
SLICE = [("noise", 4), ("unplug", 4), ("brownout", 0), ("hang", 0)]


@pytest.mark.parametrize(("kind", "seed"), SLICE, ids=[f"{k}-{s}" for k, s in SLICE])
def test_fault_matrix_slice(kind, seed, tmp_path, record_property):
    result = M.run_case(kind, seed, tmp_path)
    record_property("soak", result.to_json())
    assert not result.violations, result.violations
    assert result.outcome == {"recover": "recovered", "fail": "failed_cleanly"}[M.EXPECTED[kind]], (
        result
    )
    assert result.fired, "the fault never struck: the case tested nothing"


def test_bad_sector_fails_cleanly_naming_the_range_and_the_backup(tmp_path, record_property):
    result = M.run_case("bad_sector", 3, tmp_path)
    record_property("soak", result.to_json())
    assert not result.violations and result.outcome == "failed_cleanly", result
    address = result.fault["address"]
    assert f"flash partly written: {address:#x}-{address + 0xFFF:#x} unverified" in result.error
    assert "verified backup" in result.error and "rig restore --slot l7x-1" in result.error
    # Every reconnect worked and every retry failed on the same sector: that is not the link, it
    # is the flash, and `rig restore` will fail at the same place. The error should say so.
    assert any(w in result.error.lower() for w in ("bad sector", "does not keep", "worn")), (
        "when every retry fails to verify the same range although the reconnects succeed, the "
        "rig (rig/operations/fastwrite.py write) must name it as a flash defect, not only "
        f"point at `rig restore`; the error was {result.error!r}"
    )


def test_a_chip_hanging_after_as_many_resets_as_download_retries_is_still_reached(tmp_path):
    """fail_connects: 3 on a board with download_retries: 3 - the fourth reset works. Every
    operation is retried with backoff after a reconnect, but the first connect is not."""
    result = M.run_case("connect_hang", 4, tmp_path)  # devkitc-1, fail_connects 3
    assert result.fault == {"fail_connects": 3}
    assert not result.violations, result.violations
    assert result.outcome == "recovered", (
        "the rig (rig/operations/session.py FlasherSession.connect) must retry the first connect "
        "like any other step (backoff, more rounds of the download sequence) before giving up; got "
        f"{result.outcome}: {result.error!r}"
    )


def test_a_port_that_never_comes_back_is_named_in_the_final_error(sim_station_config):
    from rig.board.station import LiveStation
    from rig.hardware.ports import PortSpec
    from rig.operations.session import FlasherError, FlasherSession

    with LiveStation(sim_station_config()) as st:
        slot = st.open_slot("l7x-1")
        sim = st.simulated_board("l7x-1")
        slot.board.port = PortSpec(url=str(slot.board.port), reappear=0.2)
        with FlasherSession(slot.board, backoff=0.01) as session:
            sim.inject(F.Unplug(after=20_000, on="to_host", gone=None))
            with pytest.raises(FlasherError) as err:
                session.read(0, 0x40000)
        sim.replug()
    text = str(err.value)
    assert text.startswith("l7x-1: ")
    assert any("cannot open serial port" in r for r in session.recoveries)
    assert "cannot open serial port" in text or "unplugged" in text, (
        "when the reconnect failed, the final error must carry the last reconnect error (not "
        "'not connected', which hides why: rig/operations/session.py "
        "FlasherSession._recovering); the error was " + repr(text)
    )


# -- host faults ----------------------------------------------------------------------------------
def station_file(tmp_path: Path, faults: str = "", backups: Path | None = None) -> Path:
    """The shipped sim station with locks/backups under tmp_path and ``faults`` on l7x-1."""
    from rig.config import builtin_configs_dir

    text = (builtin_configs_dir() / "stations" / "sim.yaml").read_text()
    text = text.replace("${XDG_RUNTIME_DIR:-/tmp}/rig-locks", str(tmp_path / "locks"))
    text = text.replace("~/.local/share/rig/sim-backups", str(backups or tmp_path / "backups"))
    firmware = f"[{builtin_configs_dir() / 'firmware'}, {tmp_path / 'sim-firmware'}]"
    text = text.replace("[../firmware, ~/.local/share/rig/sim-firmware]", firmware)
    if faults:
        text = text.replace(
            "simulated: {variant: l7x, seed: l7x-1}",
            f"simulated: {{variant: l7x, seed: l7x-1, faults: [{faults}]}}",
        )
    path = tmp_path / "stations" / "sim.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def seed_l7x1_backup(root: Path) -> dict[str, str]:
    from rig.images.flash_contents import vendor_l7x_flash
    from rig.operations.backups import BackupStore

    data = vendor_l7x_flash()
    mac = ":".join(f"{b:02x}" for b in mac_from_seed("l7x:l7x-1"))
    md5 = hashlib.md5(data).hexdigest()
    BackupStore(root).save(mac, data, md5, {"seeded": True}, flash_size=len(data))
    return M.snapshot_backups(root)


def rig(
    tmp_path, *args, trace: Path | None = None, env: dict | None = None, **kwargs
) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RIG_", "ESPTOOL_"))},
        **(env or {}),
    }
    if trace is not None:
        env["RIG_SIM_TRACE"] = str(trace)
    return subprocess.Popen(
        [sys.executable, "-m", "rig.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        **kwargs,
    )


def wait_for(trace: Path, needle: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.exists() and needle in trace.read_text():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"rig exited ({proc.returncode}) before {needle!r}:\n{out}\n{err}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {needle!r} in the simulator trace within {timeout} s")


def contacts_at_end(trace: Path, board: str = "l7x-1") -> dict[str, str]:
    """The last state of each contact of ``board`` in the trace: {"power": "open", ...}."""
    state: dict[str, str] = {}
    for line in trace.read_text().splitlines():
        _, name, *event = line.split(" ")
        if name == board and len(event) == 2 and event[1] in ("open", "closed"):
            state[event[0]] = event[1]
    return state


def slot_is_free(tmp_path: Path, slot: str = "l7x-1") -> bool:
    from rig.hardware.locks import SlotBusy, SlotLock

    try:
        SlotLock(tmp_path / "locks", "sim", slot).acquire().release()
    except SlotBusy:
        return False
    return True


# Where raw data belongs: the L7X layout's spiffs data partition (an app partition takes only
# app images, checked before a relay moves).
DATA_OFFSET = 0x290000


def image_file(tmp_path: Path, size: int = 0x40000) -> Path:
    data = bytearray(os.urandom(size))
    data[0] = 0  # not an ESP image header: written as raw data
    path = tmp_path / "image.bin"
    path.write_bytes(bytes(data))
    return path


def report_of(stdout: str) -> dict | None:
    try:
        return json.loads(stdout)
    except ValueError:
        return None


def test_sigint_mid_dump_releases_everything_and_leaves_no_backup(tmp_path):
    trace = tmp_path / "trace"
    station = station_file(tmp_path, "{kind: stall, on: to_host, after: 1000000, seconds: 60}")
    args = ("dump", "--json", "--station", str(station), "--slot", "l7x-1")
    proc = rig(tmp_path, *args, trace=trace)
    wait_for(trace, "fault stall", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert contacts_at_end(trace) == {"io0": "open", "power": "open"}, "a relay left energised"
    assert slot_is_free(tmp_path)
    backups = tmp_path / "backups"
    assert not [p for p in backups.rglob("*") if p.is_file()], "something looks like a backup"
    report = report_of(out)
    assert report is not None and report.get("ok") is False and report.get("error"), (
        "on SIGINT the rig (rig/cli/ops.py run_op) must write the report (ok: false, the error "
        f"naming the interruption) before exiting; got rc={proc.returncode}, "
        f"stdout={out[:200]!r}, stderr={err[-200:]!r}"
    )
    assert "interrupt" in report["error"].lower()


def test_sigterm_mid_write_and_a_second_process_on_the_slot(tmp_path):
    trace = tmp_path / "trace"
    station = station_file(tmp_path, "{kind: stall, on: flash, after: 16384, seconds: 60}")
    before = seed_l7x1_backup(tmp_path / "backups")
    image = image_file(tmp_path)
    proc = rig(
        tmp_path,
        *("write", "--json", "--station", str(station), "--slot", "l7x-1"),
        *("--backup", "require", f"{image}@{DATA_OFFSET:#x}"),
        trace=trace,
    )
    wait_for(trace, "fault stall", proc)
    # Two processes on one slot: the second is refused with the holder's PID, touching nothing.
    second = rig(tmp_path, "identify", "--station", str(station), "--slot", "l7x-1")
    out2, err2 = second.communicate(timeout=60)
    assert second.returncode == 1, out2 + err2
    assert f"slot l7x-1 is in use by PID {proc.pid}" in out2 + err2
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert contacts_at_end(trace) == {"io0": "open", "power": "open"}, "a relay left energised"
    assert slot_is_free(tmp_path)
    assert not M.check_backups(tmp_path / "backups", before)
    report = report_of(out)
    assert report is not None and report.get("ok") is False, (
        "on SIGTERM mid-write the rig (rig/cli/ops.py run_op) must write the report (ok: false, "
        "'terminated ... during write ...; flash partly written: <ranges> unverified; verified "
        f"backup <id> exists: run `rig restore --slot l7x-1`') before exiting 143; stdout was "
        f"{out[:200]!r}"
    )
    assert "unverified" in report["error"] and "rig restore" in report["error"]


def test_sigterm_mid_cycle_write_writes_the_report_then_exits_143(tmp_path):
    """`rig cycle` ends in the same interruption report as the single-step commands."""
    trace = tmp_path / "trace"
    station = station_file(tmp_path, "{kind: stall, on: flash, after: 16384, seconds: 60}")
    seed_l7x1_backup(tmp_path / "backups")  # reused: the cycle goes straight to erase and write
    args = ("cycle", "--json", "--station", str(station), "--slot", "l7x-1")
    proc = rig(tmp_path, *args, trace=trace)
    wait_for(trace, "fault stall", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert contacts_at_end(trace) == {"io0": "open", "power": "open"}, "a relay left energised"
    assert slot_is_free(tmp_path)
    report = report_of(out)
    assert report is not None and report["ok"] is False, f"no report: {out[:200]!r} {err[-300:]!r}"
    assert report["error"].startswith("terminated by SIGTERM during write; relays released; ")
    assert "flash partly written: 0x" in report["error"] and "unverified" in report["error"]
    assert "run `rig restore --slot l7x-1`" in report["error"]


def test_sigint_in_rig_demo_writes_the_report(tmp_path):
    """`rig demo` (always the embedded simulated station: its backups and locks follow HOME and
    XDG_RUNTIME_DIR) prints the interruption report too."""
    trace = tmp_path / "trace"
    home = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    proc = rig(tmp_path, "demo", "--json", trace=trace, env=home)
    wait_for(trace, "io0 closed", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert contacts_at_end(trace) == {"io0": "open", "power": "open"}, "a relay left energised"
    report = report_of(out)
    assert report is not None and report["ok"] is False, f"no report: {out[:200]!r} {err[-300:]!r}"
    assert report["operation"] == "cycle" and report["slot"] == "l7x-1"
    assert report["error"].startswith("interrupted (SIGINT) during "), report["error"]
    assert "relays released" in report["error"]


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "1m"):
    """A small tmpfs at ``path`` (needs root), else None."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def test_disk_full_while_dumping_stores_nothing(tmp_path, monkeypatch):
    backups = tmp_path / "full"
    with tiny_tmpfs(backups) as mounted:
        if mounted is not None:  # a real ENOSPC from a 1 MB filesystem
            trace = tmp_path / "trace"
            station = station_file(tmp_path, backups=backups)
            args = ("dump", "--json", "--station", str(station), "--slot", "l7x-1")
            proc = rig(tmp_path, *args, trace=trace)
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 1, out + err
            assert contacts_at_end(trace) == {"io0": "open", "power": "open"}
            report = report_of(out)
            leftovers = [p for p in backups.rglob("*") if p.is_file()]
        else:  # no mount (not root): ENOSPC from fsync, in process
            from click.testing import CliRunner

            from rig.cli import main
            from rig.hardware import safety as relays

            real_fsync = os.fsync

            def full(fd):
                if str(backups) in os.readlink(f"/proc/self/fd/{fd}"):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_fsync(fd)

            monkeypatch.setattr(os, "fsync", full)
            station = station_file(tmp_path, backups=backups)
            had_net = relays.safety_net_installed()
            try:
                result = CliRunner().invoke(
                    main, ["dump", "--json", "--station", str(station), "--slot", "l7x-1"]
                )
            finally:
                if not had_net:
                    relays.uninstall_safety_net()
            assert result.exit_code == 1, result.output
            report = report_of(result.stdout)
            leftovers = [p for p in backups.rglob("*") if p.is_file()]
        assert not leftovers, f"a partial dump was left: {leftovers}"
        assert slot_is_free(tmp_path)
        assert report is not None and report["ok"] is False
        assert "No space left on device" in report["error"]
        assert str(backups) in report["error"] and "not stored" in report["error"], (
            "an OSError while storing a dump must become the rig's BackupError 'dump of <mac> "
            f"not stored in <backups dir>: <reason>'; the error was {report['error']!r}"
        )


def test_unwritable_backups_directory_is_refused_before_the_board_is_touched(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backups directory should be\n")
    trace = tmp_path / "trace"
    station = station_file(tmp_path, backups=blocker / "backups")
    image = image_file(tmp_path, 0x1000)
    for args in (["dump"], ["write", f"{image}@{DATA_OFFSET:#x}"], ["cycle", "--board", "l7x"]):
        proc = rig(tmp_path, *args, "--station", str(station), "--slot", "l7x-1", trace=trace)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, out + err
        assert "not writable" in err
        assert not trace.exists(), "the board was touched"


def test_a_backups_directory_without_hard_links_is_refused_before_the_board_is_touched(
    tmp_path, monkeypatch, no_hard_links_in
):
    """FAT, exFAT and SMB shares have no hard links, which the store needs to never overwrite a
    backup: found out after a 4 MB dump, the dump would be lost. `rig dump` refuses up front."""
    from click.testing import CliRunner

    from rig.cli import main
    from rig.hardware import safety as relays

    backups = no_hard_links_in(tmp_path / "fat")
    trace = tmp_path / "trace"
    monkeypatch.setenv("RIG_SIM_TRACE", str(trace))  # a simulated board would log here
    station = station_file(tmp_path, backups=backups)
    had_net = relays.safety_net_installed()
    try:
        result = CliRunner().invoke(main, ["dump", "--station", str(station), "--slot", "l7x-1"])
    finally:
        if not had_net:
            relays.uninstall_safety_net()
    assert result.exit_code == 2, result.output
    assert "cannot hold hard links" in result.output and str(backups) in result.output
    assert not trace.exists(), "the board was touched"
    assert not [p for p in backups.rglob("*") if p.is_file()]
