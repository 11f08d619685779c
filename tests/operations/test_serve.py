"""`rig serve`: stock esptool over rfc2217:// on a simulated L7X slot, the relays strapping it.

Stock esptool pays ~0.2 s per command over rfc2217:// (pyserial's client reconfigures the port,
waiting >= 2 x 50 ms for acknowledgements, whenever esptool changes the read timeout - twice per
command), so one esptool session costs ~5-10 s whatever the server does. The sessions therefore
all start together in the module fixture, each on its own slot, and each test checks its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import serial
from esp_pylib.logger import EspLog
from esp_pylib.serial_reset import classic_bootloader_reset, hard_reset
from esptool_scripts import BOOT_LOG_AFTER_FAST_WRITE, DEFAULT_RESET_SESSION

from rig import config
from rig.board.station import LiveStation
from rig.esp32 import format_mac
from rig.hardware.locks import SlotBusy, SlotLock
from rig.images.flash_contents import vendor_l7x_flash
from rig.operations.backups import BackupStore
from rig.operations.serve import AutoResetDecoder, SlotServer
from rig.operations.serve import session as serve_session
from rig.sim.parts.efuse import mac_from_seed

RIG_SERVE = [sys.executable, "-m", "rig.cli.serve"]  # `rig serve` (the same click command)
# pyserial 3.5's RFC 2217 client (used in-process here) calls Thread.setDaemon/setName.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
TIMEOUT = 60  # seconds: every esptool and server process runs under it
ADDR = 0x200000
PAYLOAD = bytes(range(256)) * 32  # 8 KB
CUT_ADDR = 0x100000
CUT_SIZE = 0x100000  # 1 MB of incompressible data: long enough to pull the plug mid-write
BOARD_QUICK = """\
name: l7x-quick
description: L7X with a short strap window (tests)
chip: esp32
flash: {size: 4MB}
serial: {modem_lines: false, console_baud: 115200, bauds: [921600, 115200]}
relays: [io0, power]
sequences:
  download: [{close: io0}, {press: power}, {wait: 0.3}, {open: io0}]
  run: [{open: io0}, {release: power}, {wait: 0.5}, {press: power}]
  "off": [{release: power}, {open: io0}, {wait: 0.05}, {pulse: power, ms: 100}]
rfc2217: {strap_window: 0.2}
"""


SLOTS = (  # id, board type, io0 pin, power pin
    ("l7x-1", "l7x", 17, 27),
    ("l7x-2", "l7x", 22, 23),
    ("l7x-3", "l7x", 24, 25),
    ("l7x-4", "l7x", 5, 6),
    ("l7x-5", "l7x", 16, 26),
    ("quick-1", "l7x-quick", 12, 13),
)
SLOT_IDS = tuple(slot[0] for slot in SLOTS)


def sim_mac(slot: str) -> str:
    """The factory MAC of a simulated slot seeded by its id."""
    return format_mac(mac_from_seed(f"l7x:{slot}"))


def _station_file(
    root: Path,
    seeded: tuple[str, ...] = SLOT_IDS,
    expected_mac: dict[str, str] | None = None,
    simulated: dict[str, str] | None = None,
) -> Path:
    """Simulated L7X slots; the ``seeded`` ones already have a verified backup of their flash
    (stored without a dump), so serving them only checks it: identify + the chip's MD5.
    ``simulated``: more settings of a slot's simulated board (YAML flow text)."""
    (root / "boards").mkdir()
    (root / "boards" / "l7x-quick.yaml").write_text(BOARD_QUICK)
    (root / "stations").mkdir()
    pinned = expected_mac or {}
    extra = {sid: f", {text}" for sid, text in (simulated or {}).items()}
    slots = "\n".join(
        f"  - {{id: {sid}, board: {board}, relays: {{io0: {{pin: {io0}}}, power: {{pin: {pwr}}}}},"
        f" simulated: {{variant: l7x{extra.get(sid, '')}}}"
        + (f", expected_mac: {pinned[sid]}" if sid in pinned else "")
        + "}"
        for sid, board, io0, pwr in SLOTS
    )
    path = root / "stations" / "serve.yaml"
    path.write_text(
        f"name: serve\nbackups: {root}/backups\nlocks: {root}/locks\n"
        f"pins: {{backend: sim}}\nslots:\n{slots}\n"
    )
    flash = vendor_l7x_flash()
    md5 = hashlib.md5(flash).hexdigest()
    for slot in seeded:
        BackupStore(root / "backups").save(
            sim_mac(slot), flash, md5, {"seeded_by": "tests"}, flash_size=len(flash)
        )
    return path


def client_url(url: str) -> str:
    """A client's URL as docs/remote.md advises: pyserial waits 3 s by default for the server's
    first answer, and a connect first waits for the board's check (identify and the chip's MD5,
    a dump if the flash changed, behind the checks of the other slots this process serves)."""
    return f"{url}?timeout=20"


def _esptool_env(root: Path, cfg_text: str = "[esptool]\n") -> dict[str, str]:
    """No stray esptool.cfg or ESPTOOL_* variable may change resets or timeouts under the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPTOOL_")}
    cfg = root / f"esptool-{abs(hash(cfg_text))}.cfg"
    cfg.write_text(cfg_text)
    env["ESPTOOL_CFGFILE"] = str(cfg)
    return env


def _run(cmd: list[str], env: dict[str, str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, **kwargs
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out + err


# -- the truth table, with esptool's own reset code driving it -------------------------------
class LinePort:
    """What esp_pylib's reset functions drive (pyserial's setDTR/setRTS), fed to a decoder."""

    def __init__(self, decoder: AutoResetDecoder) -> None:
        self.decoder = decoder
        self.events: list[str] = []

    @property
    def dtr(self) -> bool:
        return self.decoder.dtr

    def setDTR(self, value: bool) -> None:  # noqa: N802 - pyserial's name
        self.events += self.decoder.set(dtr=value)

    def setRTS(self, value: bool) -> None:  # noqa: N802
        self.events += self.decoder.set(rts=value)


def opened() -> LinePort:
    """A port as a pyserial rfc2217 client leaves it after open(): DTR and RTS asserted."""
    port = LinePort(AutoResetDecoder())
    port.setDTR(True)
    port.setRTS(True)
    assert port.events == []  # opening a port resets nothing (IO0 only matters at reset)
    return port


def test_esptool_classic_reset_decodes_as_bootloader():
    port = opened()
    classic_bootloader_reset(port, enter_boot_delay=0, reset_delay=0)
    assert port.events == ["reset_hold", "bootloader"]
    assert (port.decoder.dtr, port.decoder.rts) == (False, False)


def test_esptool_hard_reset_decodes_as_hard_reset():
    port = opened()
    classic_bootloader_reset(port, enter_boot_delay=0, reset_delay=0)
    hard_reset(port, hold_delay=0)
    assert port.events == ["reset_hold", "bootloader", "reset_hold", "hard_reset"]


def test_unix_tight_reset_pairs_decode_as_bootloader():
    decoder = AutoResetDecoder()
    events = []
    for dtr, rts in [(False, False), (True, True), (False, True), (True, False), (False, False)]:
        events += decoder.set(dtr=dtr, rts=rts)  # atomic TIOCMSET: both lines at once
    assert events == ["reset_hold", "bootloader"]


def test_let_go_with_both_lines_asserted_waits_for_the_strap():
    decoder = AutoResetDecoder()
    assert decoder.set(rts=True) == ["reset_hold"]
    assert decoder.set(dtr=True) == [] and decoder.pending is not None  # (1, 1): undecided
    token = decoder.pending
    assert decoder.expire(token) == ["hard_reset"]  # IO0 never went low: SPI boot
    assert decoder.expire(token) == []
    # Pulled low again before the strap decided: EN never rose, no reset.
    decoder = AutoResetDecoder()
    decoder.set(rts=True)
    decoder.set(dtr=True)
    assert decoder.set(dtr=False) == [] and decoder.held
    assert decoder.set(rts=False) == ["hard_reset"]


def test_terminal_style_line_changes_reset_nothing():
    decoder = AutoResetDecoder()
    events = []
    for dtr, rts in [(True, False), (True, True), (True, False), (True, True), (False, False)]:
        events += decoder.set(dtr=dtr, rts=rts)
    assert events == []


def test_board_yaml_maps_events_to_sequences(tmp_path):
    shipped = config.load_board(config.builtin_configs_dir() / "boards" / "l7x.yaml")
    assert shipped.rfc2217.model_dump() == {
        "reset_hold": "off",
        "bootloader": "download",
        "hard_reset": "run",
        "strap_window": 1.0,
    }
    bad = tmp_path / "l7x-quick.yaml"
    bad.write_text(BOARD_QUICK.replace("{strap_window: 0.2}", "{hard_reset: reboot}"))
    with pytest.raises(config.ConfigError) as err:
        config.load_board(bad)
    assert err.value.line == BOARD_QUICK.count("\n") and "rfc2217.hard_reset" in str(err.value)


# -- the bench: every slow esptool session starts at once --------------------------------------
class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        # l7x-1 (served by `rig serve` itself) has no backup yet: the server takes one first.
        self.station_file = _station_file(root, seeded=SLOT_IDS[1:])
        self.cfg = config.load_station(self.station_file)
        self.station = LiveStation(self.cfg)
        self.log: list[str] = []
        lock = threading.Lock()
        self.servers = {
            slot: SlotServer(self.station, slot, station_lock=lock, log=self.log.append).start()
            for slot in ("l7x-2", "l7x-3", "l7x-4", "l7x-5", "quick-1")
        }
        self.procs: list[subprocess.Popen] = []
        self.pool = ThreadPoolExecutor(max_workers=5)
        self.jobs: dict[str, Future] = {}

    def board(self, slot: str):
        return self.station.simulated_board(slot)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)
        for server in self.servers.values():
            server.close()
        self.station.close()

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = _run(cmd, env or _esptool_env(self.root), self.root)
        self.procs.append(proc)
        return proc

    # -- jobs ---------------------------------------------------------------------------------
    def cli_job(self) -> dict:
        """`rig serve` as a user runs it, and `esptool --port rfc2217://... chip-id` against it."""
        serve = self.spawn(
            [*RIG_SERVE, "--station", str(self.station_file), "--slot", "l7x-1", "--port", "0"]
        )
        first = serve.stdout.readline().strip()
        if not first.startswith("SERVE "):
            serve.kill()
            code, output = _finish(serve)
            return {"first": first, "code": code, "output": output}
        url = client_url(first.split()[-1])
        esptool = self.spawn([sys.executable, "-m", "esptool", "--port", url, "chip-id"])
        code, output = _finish(esptool)
        serve.send_signal(signal.SIGTERM)
        serve_code, serve_output = _finish(serve)
        return {
            "first": first,
            "code": code,
            "output": output,
            "serve_code": serve_code,
            "serve_output": serve_output,
        }

    def session_job(self, slot: str, *extra: str) -> tuple[int, str]:
        url = client_url(self.servers[slot].url)
        return _finish(
            self.spawn([sys.executable, "-c", DEFAULT_RESET_SESSION, url, hex(ADDR), *extra])
        )

    def boot_log_job(self) -> tuple[int, str]:
        """pytest-embedded's flow on l7x-5: a write at 921600, the hard reset, the console."""
        image = self.root / "boot-log-payload.bin"
        image.write_bytes(PAYLOAD)
        url = client_url(self.servers["l7x-5"].url)
        script = [sys.executable, "-c", BOOT_LOG_AFTER_FAST_WRITE, url, hex(ADDR), str(image)]
        return _finish(self.spawn(script))

    def bogus_job(self) -> tuple[int, str]:
        # DTR and RTS swapped, as after mis-wiring an adapter: EN is pulsed with IO0 high.
        env = _esptool_env(
            self.root,
            "[esptool]\ncustom_reset_sequence = R0|D1|W0.1|R1|D0|W0.05|R0\n",
        )
        url = client_url(self.servers["l7x-3"].url)
        cmd = [sys.executable, "-m", "esptool", "--port", url, "--chip", "esp32"]
        return _finish(self.spawn([*cmd, "--connect-attempts", "1", "chip-id"], env))

    def cut_job(self) -> dict:
        """Start a 1 MB write on l7x-4 and kill esptool once the first block is in flash."""
        seed = 7
        head = random.Random(seed).randbytes(CUT_SIZE)[:256]
        url = client_url(self.servers["l7x-4"].url)
        proc = self.spawn(
            [
                sys.executable,
                "-c",
                DEFAULT_RESET_SESSION,
                url,
                hex(CUT_ADDR),
                "cut",
                str(seed),
                hex(CUT_SIZE),
            ]
        )
        deadline = time.monotonic() + TIMEOUT
        board = None
        while time.monotonic() < deadline and proc.poll() is None:
            board = board or self.board("l7x-4")
            if board is not None and board.flash.read(CUT_ADDR, len(head)) == head:
                break
            time.sleep(0.02)
        was_busy = self.servers["l7x-4"].busy
        proc.kill()
        killed_at = time.monotonic()
        _finish(proc)
        return {"was_busy": was_busy, "killed_at": killed_at, "finished": proc.returncode == 0}


# autouse: the sessions start with the module's first test and run while the quick ones do.
@pytest.fixture(scope="module", autouse=True)
def bench(tmp_path_factory):
    esptool_logger = EspLog.instance
    bench = Bench(tmp_path_factory.mktemp("serve"))
    bench.jobs = {
        "cli": bench.pool.submit(bench.cli_job),
        "session": bench.pool.submit(bench.session_job, "l7x-2", "session"),
        "bogus": bench.pool.submit(bench.bogus_job),
        "cut": bench.pool.submit(bench.cut_job),
        "boot_log": bench.pool.submit(bench.boot_log_job),
    }
    yield bench
    bench.close()
    faults = [
        fault for slot in bench.servers if bench.board(slot) for fault in bench.board(slot).faults
    ]
    assert not faults, "simulator internal errors:\n" + "\n".join(faults)
    # The servers' checks ran in threads of this process: none may leave esptool's process-wide
    # logger captured (later tests, and esptool's own output, would lose every line).
    assert EspLog.instance is esptool_logger, "a check left esptool's logger captured"


def test_one_client_per_slot_lock_held_and_strap_window(bench):
    """A raw pyserial client: the lock is held while it is connected, a second client is turned
    away, and EN let go with DTR = RTS = 1 becomes a hard reset once the board's window passes."""
    server = bench.servers["quick-1"]
    client = serial.serial_for_url(client_url(server.url), timeout=0.1)
    try:
        with pytest.raises(SlotBusy):
            SlotLock(bench.cfg.locks, bench.cfg.name, "quick-1").acquire()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as other:
            other.settimeout(5)
            assert other.recv(100) == b""  # closed: one client at a time (after HANG_UP_GRACE)
        client.dtr = False  # (0, 1): EN low
        client.dtr = True  # (1, 1): EN let go, IO0 not low (yet)
        board = bench.board("quick-1")
        deadline = time.monotonic() + 5  # strap_window 0.2 s, then the run sequence (0.5 s)
        while not board.contact("power") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.sessions[-1].events == ["reset_hold", "hard_reset"]
        assert board.contact("power")  # run: the button is pressed again
    finally:
        client.close()
    deadline = time.monotonic() + 5
    while server.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not board.contact("power")
    SlotLock(bench.cfg.locks, bench.cfg.name, "quick-1").acquire().release()


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_run_sequence_splits_before_the_step_that_starts_the_chip():
    l7x = config.load_board(config.builtin_configs_dir() / "boards" / "l7x.yaml").sequences
    prepare, start = serve_session.split_at_start(tuple(l7x["run"]))
    assert [s.action for s in prepare] == ["open", "release", "wait"]
    assert [(s.action, s.role) for s in start] == [("press", "power")]
    devkit = config.load_board(config.builtin_configs_dir() / "boards" / "esp32-devkitc.yaml")
    prepare, start = serve_session.split_at_start(tuple(devkit.sequences["run"]))
    assert [(s.action, s.role) for s in start] == [("pulse", "reset")]


def test_a_hard_reset_off_the_console_rate_starts_the_board_when_the_client_switches(
    bench, monkeypatch
):
    """A raw pyserial client at 921600 pulses RTS (esptool's hard reset): the run sequence is
    acknowledged with the button still released, and pressed when the client's SET_BAUDRATE
    lands (before its acknowledgement); a client that never switches gets its board after
    BAUD_WINDOW, and one that leaves at once gets it before its relays are released."""
    server = bench.servers["quick-1"]

    def hard_reset(client: serial.SerialBase) -> None:
        client.rts = True  # EN low: off
        client.rts = False  # EN let go with IO0 high: run, acknowledged

    assert _wait_until(lambda: not server.busy)
    monkeypatch.setattr(serve_session, "BAUD_WINDOW", 600.0)
    client = serial.serial_for_url(client_url(server.url), baudrate=921600, timeout=0.1)
    try:
        client.dtr = False
        board = bench.board("quick-1")
        hard_reset(client)
        assert not board.contact("power")  # prepared (released, 0.5 s off), not started
        client.baudrate = 115200  # the client's rate change lands: the chip starts
        assert board.contact("power")
        client.baudrate = 921600
        monkeypatch.setattr(serve_session, "BAUD_WINDOW", 0.2)
        hard_reset(client)
        assert _wait_until(lambda: board.contact("power"))  # the client never switched
        monkeypatch.setattr(serve_session, "BAUD_WINDOW", 600.0)
        hard_reset(client)
        assert not board.contact("power")
        before = len(board.events)
    finally:
        client.close()  # leaves right after its hard reset
    assert _wait_until(lambda: not server.busy)
    after = [what for _, what in board.events[before:] if what.startswith("power ")]
    assert after[:3] == ["power closed", "power on", "power open"], after  # started, released
    assert [e for e in server.sessions[-1].events if e == "hard_reset"] == ["hard_reset"] * 3


# -- command line -----------------------------------------------------------------------------
def _serve(*args: str, wait_for_line: bool = True) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*RIG_SERVE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, proc.stdout.readline().strip() if wait_for_line else ""


@pytest.fixture
def station_file(tmp_path) -> str:
    return str(_station_file(tmp_path))


def test_remote_bind_needs_the_flag_and_warns(station_file):
    station = station_file
    proc, _ = _serve(
        "--station", station, "--slot", "l7x-1", "--bind", "0.0.0.0", wait_for_line=False
    )
    code, output = _finish(proc)
    assert code == 2 and "not a loopback address" in output and "ssh -L" in output
    proc, first = _serve(
        "--station", station, "--all", "--bind", "0.0.0.0", "--port", "0", "--allow-remote"
    )
    slots = [s.id for s in config.load_station(station).slots]
    lines = [first] + [proc.stdout.readline().strip() for _ in slots[1:]]
    proc.send_signal(signal.SIGINT)
    code, output = _finish(proc)
    assert code == 0, output
    assert [line.split()[1] for line in lines] == slots
    assert len({line.split()[2] for line in lines}) == len(slots)
    assert all(line.split()[2].startswith("rfc2217://") for line in lines)
    assert "RFC 2217 has no authentication" in output
    # stderr's first line (stdout's SERVE lines were read) names the station, simulated
    first_log = output.splitlines()[0].split(" ", 1)[1]
    assert first_log.startswith(f"station {config.load_station(station).name}: SIMULATED")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "several slots; pick one with --slot"),
        (["--slot", "nope"], "no slot 'nope'"),
        (["--slot", "l7x-1", "--all"], "--all and --slot exclude each other"),
        (["--slot", "l7x-1", "--backup", "skip"], "add --force"),
        (["--slot", "l7x-1", "--backup", "never"], "'never' is not one of"),
    ],
)
def test_serve_bad_input_exits_2(station_file, args, message):
    proc, _ = _serve("--station", station_file, *args, wait_for_line=False)
    code, output = _finish(proc)
    assert code == 2 and message in output and "Traceback" not in output


# -- the sessions' results (they ran while the tests above did) ----------------------------
def test_stock_esptool_chip_id_through_rig_serve(bench):
    result = bench.jobs["cli"].result(timeout=TIMEOUT)
    assert result["first"].startswith("SERVE l7x-1 rfc2217://127.0.0.1:"), result["first"]
    assert result["code"] == 0, result["output"]
    assert "Connected to ESP32" in result["output"]
    assert "Hard resetting via RTS pin" in result["output"]
    assert "NOT reset" not in result["output"]  # the lines reached the server
    log = result["serve_output"]
    assert "EN let go with IO0 low (bootloader reset): download" in log
    assert "EN let go with IO0 high (hard reset): run" in log
    assert "relays released, slot unlocked" in log
    assert result["serve_code"] == 0, log  # SIGTERM: a clean stop


def test_stock_esptool_writes_verifies_reads_a_relay_strapped_l7x(bench):
    code, output = bench.jobs["session"].result(timeout=TIMEOUT)
    assert code == 0, output
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    board = bench.board("l7x-2")
    assert result == {"mac": board.mac_str, "read_back_ok": True}
    assert "Verification successful (digest matched)" in output
    assert board.flash.read(ADDR, len(PAYLOAD)) == PAYLOAD
    session = bench.servers["l7x-2"].sessions[0]
    # esptool's ClassicReset, then its hard reset: off, download ... off, run.
    assert session.events == ["reset_hold", "bootloader", "reset_hold", "hard_reset"]


def test_boot_log_reaches_a_client_that_wrote_at_921600(bench):
    """pytest-embedded writes at 921600 and, after esptool's hard reset, reads the boot log at
    115200 on the same port: the board must not start before the client's baud change lands,
    or the ROM's and the bootloader's lines arrive at the wrong rate (garbage)."""
    code, output = bench.jobs["boot_log"].result(timeout=TIMEOUT)
    assert code == 0, output
    assert "Changing baud rate to 921600" in output and "Hard resetting via RTS pin" in output
    console = output.split("CONSOLE ", 1)[1].splitlines()[0].replace("\\r\\n", "\n")
    assert "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)" in console, console[:300]
    assert "I (29) boot: ESP-IDF" in console and "boot: Loaded app from partition" in console
    assert bench.board("l7x-5").flash.read(ADDR, len(PAYLOAD)) == PAYLOAD
    assert bench.servers["l7x-5"].sessions[0].events == [
        "reset_hold",
        "bootloader",
        "reset_hold",
        "hard_reset",
    ]


def test_bogus_custom_reset_sequence_does_not_enter_download_mode(bench):
    code, output = bench.jobs["bogus"].result(timeout=TIMEOUT)
    assert code != 0, output
    assert "Failed to connect to ESP32" in output
    # The swapped lines pulse EN with IO0 high: the relays power it up with IO0 open and it
    # boots the vendor firmware from flash, as a mis-wired devkit would.
    assert bench.servers["l7x-3"].sessions[0].events == ["reset_hold", "hard_reset"]
    assert bench.board("l7x-3").mode == "firmware"


def test_disconnect_mid_write_releases_relays_and_lock(bench):
    result = bench.jobs["cut"].result(timeout=TIMEOUT)
    assert result["was_busy"] and not result["finished"]
    server, board = bench.servers["l7x-4"], bench.board("l7x-4")
    while server.busy and time.monotonic() < result["killed_at"] + 5:
        time.sleep(0.02)
    assert not server.busy
    assert not board.contact("power") and not board.contact("io0")
    assert board.mode == "off"  # the button released mid-write: the ROM/stub browned out
    with SlotLock(bench.cfg.locks, bench.cfg.name, "l7x-4"):
        pass  # free again
    assert any(line.startswith("l7x-4: client 127.0.0.1:") for line in bench.log)


# -- what is checked before a client can touch a board ---------------------------------------
@pytest.mark.parametrize(
    ("seeded", "pinned", "sim", "args", "message"),
    [
        (
            SLOT_IDS,
            {"l7x-2": "24:0a:c4:99:99:99"},
            {},
            ["--slot", "l7x-1", "--slot", "l7x-2"],
            f"has MAC {sim_mac('l7x-2')}, expected 24:0a:c4:99:99:99 - refusing to touch it",
        ),
        ((), {}, {}, ["--slot", "l7x-2", "--backup", "require"], "no verified backup of"),
        (
            (),
            {},
            {"l7x-2": "flash_id: 0x1140EF"},  # a capacity byte esptool's tables do not know
            ["--slot", "l7x-2"],
            "flash size is unknown",
        ),
    ],
    ids=["wrong-mac", "require-without-backup", "unknown-flash-size"],
)
def test_serve_refuses_to_serve_a_board_it_cannot_vouch_for(
    tmp_path, seeded, pinned, sim, args, message
):
    station = _station_file(tmp_path, seeded, pinned, sim)
    proc, first = _serve("--station", str(station), *args, "--port", "0")
    if first:  # served anyway: stop it
        proc.send_signal(signal.SIGTERM)
    code, output = _finish(proc)
    assert (first, code) == ("", 1), first + output
    flat = " ".join(output.split())
    assert "failed: l7x-2: not served:" in flat and message in flat, output
    assert "Traceback" not in output
    assert len(BackupStore(tmp_path / "backups").list(sim_mac("l7x-2"))) == (1 if seeded else 0)


def test_serve_backs_up_a_board_before_serving_it(bench):
    """l7x-1 had no backup: `rig serve` dumps it at start-up, before the SERVE line, and the
    client's own connect finds that backup current."""
    result = bench.jobs["cli"].result(timeout=TIMEOUT)
    assert result["code"] == 0, result["output"]
    live = bench.station.open_slot("l7x-1")  # the board as `rig serve` left it
    try:
        flash = bench.board("l7x-1").flash.view()
    finally:
        live.close()
    mac = sim_mac("l7x-1")
    [backup] = BackupStore(bench.cfg.backups).list(mac)
    assert backup.sha256 == hashlib.sha256(flash).hexdigest()
    assert backup.size == len(flash) and backup.meta["slot"] == "l7x-1"
    log = result["serve_output"]
    took = log.index(f"l7x-1: {mac}: took {backup.id}")
    assert took < log.index("try: esptool")  # at start-up, before serving
    reused = f"l7x-1: {mac}: verified backup exists and matches the chip (chip MD5): {backup.id}"
    assert took < log.index(reused) < log.index("client 127.0.0.1:")


def test_each_client_gets_the_port_only_once_its_board_is_checked_again(tmp_path):
    """Between clients the slot is free: the last client, another rig command or the firmware
    may have changed the flash. A connect re-checks it: ``require`` turns the client away, ``auto``
    takes a fresh backup before the client gets a byte."""
    cfg = config.load_station(_station_file(tmp_path, seeded=("l7x-1",)))
    store = BackupStore(cfg.backups)
    mac = sim_mac("l7x-1")
    [seeded] = store.list(mac)
    log: list[str] = []
    with LiveStation(cfg) as station:
        strict = SlotServer(station, "l7x-1", log=log.append, backup_mode="require")
        try:
            strict.check()  # the seeded backup matches at start-up
            board = station.simulated_board("l7x-1")
            board.flash.program(0xB000, b"ssid=bench-wifi\0")  # settings saved since
            changed = board.flash.view()
            strict.start()
            with socket.create_connection(("127.0.0.1", strict.port), timeout=TIMEOUT) as sock:
                sock.settimeout(TIMEOUT)
                assert sock.recv(100) == b""  # closed without a byte of telnet/RFC 2217
        finally:
            strict.close()
        [refused] = [line for line in log if "refused" in line]
        assert f"changed since its latest backup {seeded.id}" in refused
        assert "rig dump --slot l7x-1" in refused
        assert store.list(mac) == [seeded] and board.flash.view() == changed
        assert not board.contact("power") and not board.contact("io0")

        lenient = SlotServer(station, "l7x-1", log=log.append)  # --backup auto
        try:
            lenient.start()
            client = serial.serial_for_url(client_url(lenient.url), timeout=0.1)
            try:
                old, new = store.list(mac)
                assert old == seeded and new.read() == changed
            finally:
                client.close()
        finally:
            lenient.close()
    took = f"l7x-1: {mac}: flash changed since backup {seeded.id}: took {new.id} ("
    assert [line for line in log if line.startswith(took)], log


def test_a_deferred_start_up_check_leaves_the_dump_to_the_first_connect(tmp_path):
    """`rig serve --defer-backup` (labgrid's exporter, whose coordinator gives an acquire 10 s):
    the start-up check identifies the board and finds no backup of its flash, but does not dump
    it; the first client's connect dumps it, and only then does the client get the port."""
    cfg = config.load_station(_station_file(tmp_path, seeded=()))
    store = BackupStore(cfg.backups)
    mac = sim_mac("l7x-1")
    log: list[str] = []
    with LiveStation(cfg) as station:
        server = SlotServer(station, "l7x-1", log=log.append, defer_backup=True)
        try:
            check = server.check()
            assert check.deferred and check.backup is None, check
            assert store.list(mac) == []  # nothing dumped at start-up
            server.start()
            client = serial.serial_for_url(client_url(server.url), timeout=0.1)
            try:
                [backup] = store.list(mac)  # the connect dumped it before answering
                assert backup.read() == station.simulated_board("l7x-1").flash.view()
            finally:
                client.close()
        finally:
            server.close()
    deferred = (
        f"l7x-1: {mac}: no verified backup matches the chip (none yet); not dumped yet: "
        "the first client's connect takes one ("
    )
    assert log[0].startswith(deferred), log
    assert [line for line in log if line.startswith(f"l7x-1: {mac}: took {backup.id} (")], log
