"""Helpers for the simulator's unit tests: an esptool that reads registers from a model, and a
driver that talks to a simulated chip's loader packet by packet (no pty, no esptool process).

(A helper module, not a conftest: the test modules import these names.)
"""

from __future__ import annotations

import base64
import json
import struct
from importlib import resources

from esptool.targets.esp32 import ESP32ROM

from rig.sim.board import SimBoard
from rig.sim.loader import slip
from rig.sim.loader.protocol import HEADER, Op, data_checksum

SYNC = b"\x07\x07\x12\x20" + b"\x55" * 32  # esptool ESPLoader.sync()


class RegEsp(ESP32ROM):
    """esptool's ESP32ROM with READ_REG/WRITE_REG short-circuited to a register model."""

    def __init__(self, read, write, baud: int = 115200) -> None:  # no port, no connect
        self._read, self._write = read, write
        self.writes: list[tuple[int, int]] = []
        self.cache = {"flash_id": None, "chip_id": None, "uart_no": None, "usb_pid": None}

        class _Port:
            baudrate = baud

        self._port = _Port()

    def read_reg(self, addr, timeout=None):
        return self._read(addr)

    def flash_id(self, cache=False):  # never serve a cached RDID: the test wants the bus
        return super().flash_id(cache=False)

    def write_reg(self, addr, value, mask=0xFFFFFFFF, delay_us=0, delay_after_us=0):
        self.writes.append((addr, value))
        self._write(addr, value, mask)


class RecordingUart:
    """Stands in for the board's UART: records what the chip sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.bauds: list[int] = []
        self.baud = 115200
        self.autobaud = False

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def set_baud(self, baud: int) -> None:
        self.bauds.append(baud)
        self.baud = baud

    def reset_baud(self, baud: int) -> None:
        self.baud = baud

    def wait_sent(self, timeout: float = 5.0) -> bool:
        return True

    def take_frames(self) -> list[bytes]:
        """Decoded SLIP frames sent since the last call (console text is dropped)."""
        data, self.sent = b"".join(self.sent), []
        return slip.SlipDecoder().feed(data)


class Driver:
    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self.uart = RecordingUart()
        board.chip.uart = self.uart

    def raw(self, payload: bytes) -> list[bytes]:
        with self.board.lock:
            self.board.chip.receive(slip.encode(payload))
        return self.uart.take_frames()

    def call(self, op: int, data: bytes = b"", checksum: int = 0) -> list[bytes]:
        return self.raw(HEADER.pack(0, op, len(data), checksum) + data)

    def one(self, op: int, data: bytes = b"", checksum: int = 0) -> tuple[int, bytes]:
        """Send a request, expect exactly one reply for ``op``; return (value, body)."""
        replies = self.call(op, data, checksum)
        assert len(replies) == 1, replies
        direction, rop, size, value = HEADER.unpack_from(replies[0])
        body = replies[0][HEADER.size :]
        assert (direction, rop, size) == (1, op, len(body))
        return value, body

    def data_cmd(self, op: int, payload: bytes, seq: int, checksum: int | None = None):
        cs = data_checksum(payload) if checksum is None else checksum
        return self.one(op, struct.pack("<IIII", len(payload), seq, 0, 0) + payload, cs)


def stub_json() -> dict:
    path = resources.files("esptool") / "targets" / "stub_flasher" / "2" / "esp32.json"
    return json.loads(path.read_text())


def upload_stub(d: Driver) -> list[bytes]:
    """The MEM_* upload esptool does (§3.7); returns the frames that follow MEM_END."""
    spec = stub_json()
    ok = b"\x00\x00" if d.board.mode == "stub" else b"\x00\x00\x00\x00"
    for field, start in (("text", "text_start"), ("data", "data_start")):
        blob = base64.b64decode(spec[field])
        blocks = (len(blob) + 0x17FF) // 0x1800
        _, body = d.one(Op.MEM_BEGIN, struct.pack("<IIII", len(blob), blocks, 0x1800, spec[start]))
        assert body == ok
        for seq in range(blocks):
            _, body = d.data_cmd(Op.MEM_DATA, blob[seq * 0x1800 : (seq + 1) * 0x1800], seq)
            assert body == ok
    return d.call(Op.MEM_END, struct.pack("<II", 0, spec["entry"]))
