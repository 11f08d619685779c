"""Scripts the tests run as separate processes (esptool's logger and port state are global)."""

# Stock esptool 5.6 through its Python API with its *default* resets (DTR/RTS ClassicReset before,
# an RTS pulse after): one session - MAC, write, verify, read - so the per-command cost of
# rfc2217:// is paid for the connect and stub upload once, not four times.
# argv: URL ADDR [pattern | cut SEED SIZE]
DEFAULT_RESET_SESSION = r"""
import json, random, sys
from esptool.cmds import read_flash, reset_chip, verify_flash, write_flash
from esptool.targets import ESP32ROM
url, addr = sys.argv[1], int(sys.argv[2], 0)
what = sys.argv[3] if len(sys.argv) > 3 else "pattern"
if what == "cut":
    data = random.Random(int(sys.argv[4])).randbytes(int(sys.argv[5], 0))
else:
    data = bytes(range(256)) * 32
esp = ESP32ROM(url)
esp.connect("default-reset")          # esptool's default --before: DTR/RTS ClassicReset
mac = ":".join(f"{b:02x}" for b in esp.read_mac())
esp = esp.run_stub()
size = "4MB"                          # as --flash-size 4MB: no SPI flash-size probe
write_flash(esp, [(addr, data)], flash_size=size)
verify_flash(esp, [(addr, data)], flash_size=size)
back = read_flash(esp, addr, len(data), flash_size=size)
reset_chip(esp, "hard-reset")         # esptool's default --after: an RTS pulse
esp._port.close()
print("RESULT " + json.dumps({"mac": mac, "read_back_ok": back == data}))
"""

# pytest-embedded's flow (pytest_embedded_serial_esp: EspSerial + its use_esptool wrapper) with
# stock esptool's default resets: open the port at 115200 and connect (ClassicReset), write at
# 921600 on the same port with the CLI's default --after hard-reset (an RTS pulse), put the port
# back to the settings it was opened with (115200), then read the console the board prints.
# argv: URL ADDR IMAGE
BOOT_LOG_AFTER_FAST_WRITE = r"""
import sys, time
import esptool
from esptool.targets import ESP32ROM
url, addr, image = sys.argv[1:4]
esp = ESP32ROM(url)
esp.connect("default-reset")
port = esp._port
settings = port.get_settings()
esptool.main(["--baud", "921600", "write-flash", addr, image], esp=esp)
port.apply_settings(settings)
console = b""
deadline = time.monotonic() + 10
while b"boot: Loaded app" not in console and time.monotonic() < deadline:
    console += port.read(port.in_waiting or 1)
port.close()
print("CONSOLE " + console.decode("latin-1").encode("unicode_escape").decode("ascii"))
"""
