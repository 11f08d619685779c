"""The simulator's RFC 2217 transport: DTR/RTS reach a simulated devkit's auto-reset circuit.

Stock esptool with its default resets (ClassicReset before, an RTS pulse after) flashes a
simulated devkit that starts out running from flash; an l7x ignores the lines like its CH330.
As in tests/operations/test_serve.py, the esptool sessions (~0.2 s per command over rfc2217://)
all start together in the module fixture, each on its own board.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import serial
from esptool_scripts import DEFAULT_RESET_SESSION

from rig.sim.board import SimBoard
from rig.sim.rfc2217 import Rfc2217Endpoint

# pyserial 3.5's RFC 2217 client (used in-process here) calls Thread.setDaemon/setName.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
TIMEOUT = 60  # seconds: every esptool and simulator process runs under it
ADDR = 0x200000
PAYLOAD = bytes(range(256)) * 32  # 8 KB
SETTLE = SimBoard.EN_RISE_DELAY + 0.1  # EN has risen and the ROM has printed its banner
# `rig sim` serving a devkit that runs from blank flash on RFC 2217; its first line is PORT=<url>.
SIM_COMMAND = [sys.executable, "-m", "rig.cli", "sim", "--transport", "rfc2217"]
SIM_COMMAND += ["--board", "devkit", "--boot", "flash", "--on-close", "keep", "--blank"]


def _esptool_env(root: Path, cfg_text: str = "[esptool]\n") -> dict[str, str]:
    """No stray esptool.cfg or ESPTOOL_* variable may change resets or timeouts under the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPTOOL_")}
    cfg = root / f"esptool-{abs(hash(cfg_text))}.cfg"
    cfg.write_text(cfg_text)
    env["ESPTOOL_CFGFILE"] = str(cfg)
    return env


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out + err


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- the auto-reset circuit, driven directly -------------------------------------------------
@pytest.fixture
def devkit(make_board) -> SimBoard:
    """A devkit running from (blank) flash: only a reset with IO0 low gets its ROM loader."""
    board = make_board("devkit", boot="flash")
    assert board.mode == "firmware"
    return board


def test_rts_holds_en_low_and_dtr_straps_io0(devkit):
    resets = devkit.chip.resets
    devkit.set_modem_lines(dtr=False, rts=True)  # EN low
    assert devkit.mode == "reset"
    devkit.set_modem_lines(dtr=True, rts=False)  # EN let go, IO0 low (UnixTightReset)
    assert devkit.mode == "reset"  # EN still rising through its RC
    time.sleep(SETTLE)
    devkit.set_modem_lines(dtr=False, rts=False)  # IO0 released: already latched
    assert devkit.mode == "download" and devkit.chip.resets == resets + 1
    assert devkit.wait_for_console("waiting for download", timeout=2)


def test_rts_pulse_with_dtr_inactive_is_a_hard_reset(devkit):
    resets = devkit.chip.resets
    devkit.set_modem_lines(dtr=False, rts=True)
    devkit.set_modem_lines(dtr=False, rts=False)
    assert _wait(lambda: devkit.chip.resets == resets + 1)
    assert devkit.mode == "firmware"  # booted from flash


def test_en_capacitor_rides_out_a_short_pass_through_both_asserted(devkit):
    # ClassicReset: (0,1) -> (1,1) -> (1,0). A short (1,1) step is hidden by the EN RC ...
    devkit.set_modem_lines(dtr=False, rts=True)
    devkit.set_modem_lines(dtr=True, rts=True)
    time.sleep(0.05)
    devkit.set_modem_lines(dtr=True, rts=False)
    time.sleep(SETTLE)
    devkit.set_modem_lines(dtr=False, rts=False)
    assert devkit.mode == "download"
    # ... a long one lets EN rise with IO0 high: the chip boots from flash, IO0 comes too late.
    devkit.set_modem_lines(dtr=False, rts=True)
    devkit.set_modem_lines(dtr=True, rts=True)
    time.sleep(SETTLE)
    resets = devkit.chip.resets
    devkit.set_modem_lines(dtr=True, rts=False)
    time.sleep(SETTLE)
    assert devkit.mode == "firmware" and devkit.chip.resets == resets


def test_opening_a_terminal_resets_nothing(devkit):
    resets = devkit.chip.resets
    for dtr, rts in [(True, False), (True, True), (True, False), (False, False)]:
        devkit.set_modem_lines(dtr=dtr, rts=rts)
    time.sleep(SETTLE)
    assert devkit.chip.resets == resets and devkit.mode == "firmware"


def test_auto_reset_and_en_relay_are_wired_or(devkit):
    devkit.set_modem_lines(dtr=False, rts=True)  # the transistor holds EN low
    devkit.press("en")
    devkit.release("en")  # the relay lets go, the transistor still holds
    time.sleep(SETTLE)
    assert devkit.mode == "reset"
    devkit.set_modem_lines(dtr=False, rts=False)
    assert _wait(lambda: devkit.mode == "firmware")


def test_l7x_ignores_dtr_rts_like_its_ch330(make_board):
    board = make_board("l7x", boot="download")
    resets = board.chip.resets
    for dtr, rts in [(False, True), (True, False), (False, False)]:
        board.set_modem_lines(dtr=dtr, rts=rts)
    time.sleep(SETTLE)
    assert board.modem_lines == (False, False)
    assert board.mode == "download" and board.chip.resets == resets


def test_endpoint_passes_baud_and_takes_one_client(make_board):
    board = make_board("devkit", boot="flash")
    with Rfc2217Endpoint(board) as endpoint:
        assert endpoint.url == f"rfc2217://127.0.0.1:{endpoint.port}"
        client = serial.serial_for_url(endpoint.url, baudrate=115200, timeout=0.1)
        try:
            assert _wait(lambda: board.modem_lines == (True, True))  # pyserial opens with both
            client.baudrate = 921600
            assert _wait(lambda: board.uart.host_baud() == 921600)
            with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5) as other:
                other.settimeout(5)
                assert other.recv(100) == b""  # a second client is turned away
        finally:
            client.close()
        assert _wait(lambda: board.modem_lines == (False, False))  # the host let go
        assert endpoint.clients == 1


def test_endpoint_turns_away_a_client_while_unplugged_and_serves_after_replug(make_board):
    board = make_board("devkit", boot="flash")
    with Rfc2217Endpoint(board) as endpoint:
        board.unplug(gone=None)  # no pty to open
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5) as early:
            early.settimeout(5)
            assert early.recv(100) == b""  # closed at once: nothing behind the endpoint
        board.replug()
        client = serial.serial_for_url(endpoint.url, baudrate=115200, timeout=0.1)
        try:
            assert _wait(lambda: board.modem_lines == (True, True))  # served, lines carried
        finally:
            client.close()
        assert endpoint.clients == 2


# -- stock esptool, all sessions at once -------------------------------------------------------
class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.boards: dict[str, SimBoard] = {}
        self.endpoints: dict[str, Rfc2217Endpoint] = {}
        for name, variant in (("session", "devkit"), ("bogus", "devkit"), ("l7x", "l7x")):
            board = SimBoard(variant, boot="flash", on_close="keep", seed=f"rfc2217-{name}")
            self.boards[name] = board
            self.endpoints[name] = Rfc2217Endpoint(board)
        self.resets = {name: board.chip.resets for name, board in self.boards.items()}
        self.procs: list[subprocess.Popen] = []
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.jobs: dict[str, Future] = {}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)
        for endpoint in self.endpoints.values():
            endpoint.close()
        for board in self.boards.values():
            board.close()

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or _esptool_env(self.root),
            cwd=self.root,
        )
        self.procs.append(proc)
        return proc

    def esptool(self, url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        cmd = [sys.executable, "-m", "esptool", "--port", url, "--chip", "esp32", *args]
        return _finish(self.spawn(cmd, env))

    def session_job(self) -> tuple[int, str]:
        url = self.endpoints["session"].url
        return _finish(self.spawn([sys.executable, "-c", DEFAULT_RESET_SESSION, url, hex(ADDR)]))

    def cli_job(self) -> dict:
        sim = self.spawn(SIM_COMMAND)
        first = sim.stdout.readline().strip()
        if not first.startswith("PORT="):
            sim.kill()
            code, output = _finish(sim)
            return {"first": first, "code": code, "output": output}
        code, output = self.esptool(first.removeprefix("PORT="), "chip-id")
        sim.send_signal(signal.SIGTERM)
        sim_code, sim_output = _finish(sim)
        return {"first": first, "code": code, "output": output, "sim_code": sim_code}

    def bogus_job(self) -> tuple[int, str]:
        # DTR and RTS swapped, as after mis-wiring an adapter: EN is pulsed with IO0 high.
        env = _esptool_env(
            self.root, "[esptool]\ncustom_reset_sequence = R0|D1|W0.1|R1|D0|W0.05|R0\n"
        )
        return self.esptool(
            self.endpoints["bogus"].url, "--connect-attempts", "1", "chip-id", env=env
        )

    def l7x_job(self) -> tuple[int, str]:
        return self.esptool(self.endpoints["l7x"].url, "--connect-attempts", "1", "chip-id")


# autouse: the sessions start with the module's first test and run while the quick ones do.
@pytest.fixture(scope="module", autouse=True)
def bench(tmp_path_factory):
    bench = Bench(tmp_path_factory.mktemp("sim-rfc2217"))
    bench.jobs = {
        "session": bench.pool.submit(bench.session_job),
        "cli": bench.pool.submit(bench.cli_job),
        "bogus": bench.pool.submit(bench.bogus_job),
        "l7x": bench.pool.submit(bench.l7x_job),
    }
    yield bench
    bench.close()
    faults = [fault for board in bench.boards.values() for fault in board.faults]
    assert not faults, "simulator internal errors:\n" + "\n".join(faults)


def test_stock_esptool_default_resets_flash_a_devkit(bench):
    code, output = bench.jobs["session"].result(timeout=TIMEOUT)
    assert code == 0, output
    board = bench.boards["session"]
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    assert result == {"mac": board.mac_str, "read_back_ok": True}
    assert "Verification successful (digest matched)" in output
    assert board.flash.read(ADDR, len(PAYLOAD)) == PAYLOAD
    # It started out running from flash: DTR/RTS reset it into the ROM loader and, after, the
    # RTS pulse booted it from flash again - two auto-resets, nothing else touched it.
    assert board.chip.resets == bench.resets["session"] + 2
    assert [what for _, what in board.events].count("en high (auto-reset)") == 2
    assert _wait(lambda: board.mode == "firmware")


def test_stock_esptool_chip_id_on_rig_sim_rfc2217(bench):
    result = bench.jobs["cli"].result(timeout=TIMEOUT)
    assert result["first"].startswith("PORT=rfc2217://127.0.0.1:"), result["first"]
    assert result["code"] == 0, result["output"]
    assert "Connected to ESP32" in result["output"]
    assert "NOT reset" not in result["output"]  # the lines are carried
    assert result["sim_code"] == 0


def test_bogus_custom_reset_sequence_does_not_enter_download_mode(bench):
    code, output = bench.jobs["bogus"].result(timeout=TIMEOUT)
    board = bench.boards["bogus"]
    assert code != 0 and "Failed to connect to ESP32" in output, output
    assert board.chip.resets > bench.resets["bogus"]  # it was reset - into its firmware
    assert board.mode == "firmware"


def test_l7x_on_rfc2217_is_not_reset_by_dtr_rts(bench):
    code, output = bench.jobs["l7x"].result(timeout=TIMEOUT)
    board = bench.boards["l7x"]
    assert code != 0 and "Failed to connect to ESP32" in output, output
    assert board.chip.resets == bench.resets["l7x"] and board.mode == "firmware"
