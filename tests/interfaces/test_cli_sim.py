"""`rig sim` as a user runs it: PORT= first, stock esptool again and again, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from rig.images.flash_contents import vendor_l7x_flash

RIG = [sys.executable, "-m", "rig.cli"]


@pytest.fixture
def rig_sim(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [*RIG, "sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs.append(proc)
        first = proc.stdout.readline().rstrip("\n")
        assert first.startswith("PORT="), first
        return proc, first.removeprefix("PORT=")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_sim_serves_stock_esptool_repeatedly_and_saves_flash(rig_sim, esptool, tmp_path):
    saved = tmp_path / "flash.bin"
    proc, port = rig_sim("--board", "l7x", "--mac", "24:0a:c4:00:11:22", "--save-flash", str(saved))
    for _ in range(2):  # on-close reset: each run finds the ROM again, stub not left running
        result = esptool(port, "read-mac")
        assert result.returncode == 0, result.output
        assert "MAC:                24:0a:c4:00:11:22" in result.output
        assert "Uploading stub flasher" in result.output
    payload = bytes(range(256)) * 16
    (tmp_path / "p.bin").write_bytes(payload)
    assert esptool(port, "write-flash", "0x200000", str(tmp_path / "p.bin")).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    flash = saved.read_bytes()
    assert len(flash) == 0x400000
    assert flash[0x200000 : 0x200000 + len(payload)] == payload
    # The default l7x flash is the synthetic vendor firmware, untouched outside the write.
    assert flash[:0x200000] == vendor_l7x_flash()[:0x200000]


def test_sim_on_close_keep_leaves_stub_running(rig_sim, esptool):
    proc, port = rig_sim("--on-close", "keep", "--blank")
    assert esptool(port, "read-mac").returncode == 0
    second = esptool(port, "read-mac")
    assert second.returncode == 0, second.output
    assert "Stub flasher is already running" in second.output
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_sim_flash_boot_prints_console_and_refuses_slip(rig_sim, esptool):
    proc, port = rig_sim("--boot", "flash", "--board", "devkit")
    result = esptool(port, "--connect-attempts", "1", "chip-id")
    assert result.returncode == 2
    assert "Failed to connect to ESP32" in result.output
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mac", "zz:00"], "not a MAC address"),
        (["--mac", "01:00:5e:00:00:01"], "multicast"),
        (["--board", "esp8266"], "'esp8266' is not one of"),
        (["--flash-image", "/nonexistent/flash.bin"], "does not exist"),
        (["--boot", "sideways"], "'sideways' is not one of"),
        (["--blank", "--flash-image", __file__], "exclude each other"),
        (["--save-flash", "/nonexistent/dir/f.bin"], "does not exist"),
    ],
)
def test_sim_bad_arguments_exit_2_with_one_error(args, message):
    proc = subprocess.run([*RIG, "sim", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stdout == ""  # no PORT= line: nothing was started
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sim_oversized_image_is_bad_input(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (0x400000 + 1))
    proc = subprocess.run(
        [*RIG, "sim", "--flash-image", str(big)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "does not fit" in proc.stderr
