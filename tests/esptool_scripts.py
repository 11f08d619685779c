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
