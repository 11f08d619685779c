"""The remote slot kind: a board behind another host's `rig serve`, whose off / download / run are
DTR/RTS patterns on one held RFC 2217 connection (rig.board.remote)."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from rig import config
from rig.board.remote import RemoteBoard, RemoteSlotError, remote_url
from rig.board.station import LiveStation
from rig.esp32 import format_mac
from rig.images.flash_contents import vendor_l7x_flash
from rig.operations import hil
from rig.operations.backups import BackupStore
from rig.operations.serve import AutoResetDecoder, SlotServer
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
VENDOR_BANNER = r"Grbl 1\.1f \['\$' for help\]"


class DecodingLink:
    """A stand-in for the RFC 2217 connection: what the server's decoder makes of the lines."""

    def __init__(self) -> None:
        self.decoder = AutoResetDecoder()
        self.events: list[str] = []
        self.baudrate = 115200
        self.is_open = True
        self._thread = threading.main_thread()  # the "reader" is alive: the link is up

    def __setattr__(self, name, value):
        if name in ("dtr", "rts"):
            self.events += self.decoder.set(**{name: value})
        object.__setattr__(self, name, value)


def _remote_board(board_type: config.BoardType) -> tuple[RemoteBoard, DecodingLink]:
    board = RemoteBoard("r1", board_type, "rfc2217://127.0.0.1:9")
    link = DecodingLink()
    board._link = link  # as if connected
    return board, link


def test_sequences_are_the_line_patterns_the_server_decodes_into_them():
    l7x = config.default_station().board_of("l7x-1")
    board, link = _remote_board(l7x)
    board.off()
    assert link.events == ["reset_hold"]
    board.off()  # EN is still held: nothing to replay (the board is off)
    assert link.events == ["reset_hold"]
    board._sequence("download")
    assert link.events == ["reset_hold", "bootloader"]
    assert link.decoder.pending is None  # decided at once, no strap window to wait for
    board.run()
    assert link.events == ["reset_hold", "bootloader", "reset_hold", "hard_reset"]
    link.events.clear()
    board.off()
    board._sequence("download")  # from held EN: no second `off`
    assert link.events == ["reset_hold", "bootloader"]


def test_a_sequence_the_board_type_maps_to_no_event_is_refused():
    l7x = config.default_station().board_of("l7x-1")
    unmapped = l7x.model_copy(
        update={"rfc2217": l7x.rfc2217.model_copy(update={"hard_reset": None})}
    )
    board, link = _remote_board(unmapped)
    with pytest.raises(RemoteSlotError, match="maps no RFC 2217 event to its 'run'"):
        board.run()
    assert link.events == []


def test_remote_url_gives_pyserial_time_for_the_servers_board_check():
    assert remote_url("rfc2217://pi:4000") == "rfc2217://pi:4000?timeout=60"
    assert remote_url("rfc2217://pi:4000?logging=debug") == (
        "rfc2217://pi:4000?logging=debug&timeout=60"
    )
    assert remote_url("rfc2217://pi:4000?timeout=5") == "rfc2217://pi:4000?timeout=5"


@pytest.mark.parametrize(
    "slots, message",
    [
        (["{id: a, board: l7x, remote: 'socket://pi:4000'}"], "remote is the rfc2217://host"),
        (
            ["{id: a, board: l7x, remote: 'rfc2217://pi:4000', relays: {io0: {pin: 17}}}"],
            "relays are on the host that serves it",
        ),
        (
            [
                "{id: a, board: l7x, remote: 'rfc2217://pi:4001'}",
                "{id: b, board: l7x, remote: 'rfc2217://pi:4001'}",
            ],
            "remote URL rfc2217://pi:4001 is already used by slot a",
        ),
    ],
)
def test_remote_slot_config_is_checked(tmp_path, slots, message):
    station = tmp_path / "lab.yaml"
    lines = "".join(f"  - {slot}\n" for slot in slots)
    station.write_text(f"name: lab\nbackups: {tmp_path}/b\nlocks: {tmp_path}/l\nslots:\n{lines}")
    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.")):
        config.load_station(station)


# -- against a real `rig serve` slot server (in-process, simulated L7X) ----------------------------
@pytest.fixture
def served(sim_station_config, tmp_path):
    """`rig serve`'s slot server on the simulated station's l7x-1 (its vendor flash already
    backed up), and a lab station whose one slot is that server, remote."""
    cfg = sim_station_config()
    flash = vendor_l7x_flash()
    mac = format_mac(mac_from_seed("l7x:l7x-1"))
    BackupStore(cfg.backups).save(
        mac, flash, hashlib.md5(flash).hexdigest(), {"seeded_by": "tests"}, flash_size=len(flash)
    )
    station = LiveStation(cfg)
    server_log: list[str] = []
    server = SlotServer(station, "l7x-1", log=server_log.append)
    server.check()
    server.start()
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        f"name: lab\nbackups: {tmp_path}/lab-backups\nlocks: {tmp_path}/lab-locks\nslots:\n"
        f"  - {{id: pi-l7x-1, board: l7x, remote: '{server.url}', expected_mac: '{mac}'}}\n"
    )
    yield server, server_log, config.load_station(lab), station
    server.close()
    station.close()


def _settled(server: SlotServer) -> bool:
    deadline = time.monotonic() + 10
    while server.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    return not server.busy


def test_a_remote_slot_boots_flashes_and_verifies_through_one_connection_per_session(served):
    server, log, lab, station = served
    with LiveStation(lab) as remote:
        slot = remote.open_slot("pi-l7x-1")
        check = hil.boot(slot, VENDOR_BANNER)
        assert check.ok, check.console
        assert _settled(server)  # released: the client left, the Pi released its relays
        payload = bytes(range(256)) * 16
        with hil.flasher(slot) as session:
            assert session.identity.mac == lab.slot("pi-l7x-1").expected_mac
            session.write(0x200000, payload)
            assert session.verify(0x200000, payload)
            # read back: 0xFF bytes arrive as telnet's IAC IAC (rig.hardware.rfc2217_client)
            assert session.read(0x200000 - 0x1000, 0x2000) == b"\xff" * 0x1000 + payload[:0x1000]
            assert server.busy  # the same connection, from the reset through the session
        assert _settled(server)
    # one client per session: the boot, then the flasher session's reset and its whole esptool
    # session on a single connection
    assert [s.events for s in server.sessions] == [
        ["reset_hold", "hard_reset"],
        ["reset_hold", "bootloader"],
    ]
    assert any("relays released, slot unlocked" in line for line in log)
    board = station.simulated_board("l7x-1")
    assert not board.contact("power") and not board.contact("io0")


def test_a_client_that_reconnects_at_once_gets_the_slot_again(served, monkeypatch):
    """The last client left and its session is still releasing the slot on the serving host
    (relays, port, the simulated flash saved, the lock): the next client waits for that rather
    than being turned away as a second client."""
    server, log, lab, station = served
    open_slot = station.open_slot

    def slow_to_close(slot_id):
        live = open_slot(slot_id)
        close = live.close
        monkeypatch.setattr(live, "close", lambda: (time.sleep(0.5), close()))
        return live

    monkeypatch.setattr(station, "open_slot", slow_to_close)
    with LiveStation(lab) as remote:
        slot = remote.open_slot("pi-l7x-1")
        for _ in range(2):
            with hil.flasher(slot) as session:
                assert session.identity.mac
    refused = [line for line in log if "refused" in line]
    assert not refused, refused
