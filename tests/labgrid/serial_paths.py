"""The rig's RFC 2217 paths with whichever ``serial`` package is first on the path: run as a
script by test_serial_packages.py, once with pyserial's files first and once with
pyserial-labgrid's. Prints one JSON line: the serial package's version and what each path saw.

* ``rig serve``'s slot server, with esptool's own client and its default (ClassicReset) reset;
* the simulator's RFC 2217 transport (a simulated devkit's bridge), esptool's default reset;
* the rig's remote slot (a flasher session over rig serve: identify, write, verify, read back).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import warnings
from pathlib import Path

warnings.simplefilter("ignore", DeprecationWarning)  # pyserial 3.5's rfc2217 thread API

import serial  # noqa: E402
from esptool.cmds import detect_chip  # noqa: E402

from rig import config  # noqa: E402
from rig.board.station import LiveStation  # noqa: E402
from rig.esp32 import format_mac  # noqa: E402
from rig.images.flash_contents import vendor_l7x_flash  # noqa: E402
from rig.operations import hil  # noqa: E402
from rig.operations.backups import BackupStore  # noqa: E402
from rig.operations.esplog import captured  # noqa: E402
from rig.operations.serve import SlotServer  # noqa: E402
from rig.sim.board import SimBoard  # noqa: E402
from rig.sim.parts.efuse import mac_from_seed  # noqa: E402
from rig.sim.rfc2217 import Rfc2217Endpoint  # noqa: E402


def esptool_mac(url: str) -> str:
    """Stock esptool's client, default reset (DTR/RTS over RFC 2217), the chip's MAC."""
    with captured(lambda *a: None):
        esp = detect_chip(f"{url}?timeout=20", connect_mode="default-reset")
        try:
            return format_mac(bytes(esp.read_mac()))
        finally:
            esp._port.close()


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    cfg = config.default_station().model_copy(
        update={"locks": tmp / "locks", "backups": tmp / "backups"}
    )
    flash = vendor_l7x_flash()
    mac = format_mac(mac_from_seed("l7x:l7x-1"))
    BackupStore(cfg.backups).save(
        mac, flash, hashlib.md5(flash).hexdigest(), {"seeded_by": "tests"}, flash_size=len(flash)
    )
    result = {"serial": serial.__version__, "file": serial.__file__}
    station = LiveStation(cfg)
    server = SlotServer(station, "l7x-1", log=lambda line: None)
    server.check()
    server.start()
    try:
        result["rig_serve"] = esptool_mac(server.url)
        lab = tmp / "lab.yaml"
        lab.write_text(
            f"name: lab\nbackups: {tmp}/lb\nlocks: {tmp}/ll\nslots:\n"
            f"  - {{id: r, board: l7x, remote: '{server.url}'}}\n"
        )
        payload = bytes(range(256)) * 16
        with LiveStation(config.load_station(lab)) as remote:
            slot = remote.open_slot("r")
            with hil.flasher(slot) as session:
                session.write(0x300000, payload)
                result["remote_slot"] = {
                    "mac": session.identity.mac,
                    "verified": session.verify(0x300000, payload),
                    "read_back": session.read(0x300000, len(payload)) == payload,
                }
    finally:
        server.close()
        station.close()
    devkit = SimBoard("devkit", seed="serial-paths", boot="flash")
    endpoint = Rfc2217Endpoint(devkit)
    try:
        result["sim_transport"] = esptool_mac(endpoint.url)
        result["sim_mac"] = devkit.mac_str
    finally:
        endpoint.close()
        devkit.close()
    result["expected_mac"] = mac
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
