"""pytest-embedded (Espressif's pytest plugin, its ``esp`` service) as a third-party client of
``rig serve`` and of the simulator's RFC 2217 devkit (``rig sim --transport rfc2217``).

Its ``esp`` service connects with esptool's default reset, hard-resets the board and reads its
console at 115200; a test then writes at 921600 through pytest-embedded's own esptool wrapper
(``EspSerial.use_esptool``: stop reading, ``esptool.main(..., esp=...)`` with the CLI's default
``--after hard-reset``, back to the port's 115200 settings) and expects the boot log of that hard
reset - what pytest-embedded-idf's autoflash does. The inner test runs in its own pytest process
(pytester's subprocess): pytest-embedded's plugin adds autouse fixtures to every test it sees,
so the project's addopts block it in this suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rig.images.flash_contents import vendor_l7x_flash

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TIMEOUT = 150  # seconds: the inner pytest run (two esptool connects over rfc2217://, one write)
ADDR = 0x200000  # the L7X layout's spiffs partition: the boot does not read it
INNER = """
import esptool
from pytest_embedded_serial_esp.serial import EspSerial

ROM_LINE = "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"


@EspSerial.use_esptool()
def write_at_921600(serial, address, image):
    esptool.main(["--baud", "921600", "write-flash", address, image], esp=serial.esp)


def test_boot_log_after_a_921600_write(dut):
    dut.expect_exact(ROM_LINE, timeout=10)  # the hard reset when the esp service started
    dut.expect_exact("boot: Loaded app from partition", timeout=10)
    write_at_921600(dut.serial, "{addr:#x}", r"{image}")
    dut.expect_exact(ROM_LINE, timeout=10)  # the hard reset that ended the write
    dut.expect_exact("I (29) boot: ESP-IDF", timeout=10)
    dut.expect_exact("boot: Loaded app from partition", timeout=10)
"""


def _start(cmd: list[str], procs: list[subprocess.Popen]) -> str:
    """Start a `rig` server process; its first stdout line names the port."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    first = proc.stdout.readline().strip()
    if not first.startswith(("PORT=", "SERVE ")):
        proc.kill()
        raise AssertionError(f"{cmd[3]}: {first!r} {proc.communicate(timeout=30)}")
    return first.removeprefix("PORT=").split()[-1]


@pytest.fixture
def target(request, sim_station_file, tmp_path) -> Iterator[str]:
    """The rfc2217:// URL of ``rig serve`` on a simulated L7X slot, or of a simulated devkit."""
    rig = [sys.executable, "-m", "rig.cli"]
    procs: list[subprocess.Popen] = []
    try:
        if request.param == "rig-serve":
            serve = ["serve", "--station", str(sim_station_file), "--slot", "l7x-1", "--port", "0"]
            # Every connect waits for the board's check first: give pyserial's client time.
            yield _start([*rig, *serve], procs) + "?timeout=20"
        else:
            image = tmp_path / "vendor.bin"
            image.write_bytes(vendor_l7x_flash())
            sim = ["sim", "--transport", "rfc2217", "--board", "devkit", "--boot", "flash"]
            yield _start([*rig, *sim, "--on-close", "keep", "--flash-image", str(image)], procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize("target", ["rig-serve", "sim-devkit"], indirect=True)
def test_pytest_embedded_esp_service_sees_the_boot_log_after_a_921600_write(
    pytester, target, tmp_path, monkeypatch
):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 32)
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text("[esptool]\n")  # no stray esptool.cfg may change resets or timeouts
    for name in [n for n in os.environ if n.startswith(("ESPTOOL_", "ESPPORT", "ESPBAUD"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ESPTOOL_CFGFILE", str(cfg))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_inner=INNER.format(addr=ADDR, image=payload))
    args = [
        "--embedded-services",
        "esp",
        "--target",
        "esp32",
        "--port",
        target,
        "-p",
        "no:cacheprovider",
        # labgrid's pytest plugin (the lab extra, installed with dev) defines a `target` fixture
        # too, which would shadow pytest-embedded's: the two do not share a pytest run.
        "-p",
        "no:labgrid",
    ]
    result = pytester.runpytest_subprocess(*args, timeout=TIMEOUT)
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == 0, output
    result.assert_outcomes(passed=1)
    plugins = next(line for line in result.outlines if line.startswith("plugins:"))
    assert "embedded-" in plugins and "esp-flash-rig-" in plugins  # both plugins loaded
