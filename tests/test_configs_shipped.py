"""The shipped board configs state facts the simulator agrees with.

The typed config loader (with file:line errors) comes with the config/relay issue; until then
these checks keep the YAML honest: it parses, sequences only use the relays the board declares,
and the L7X download sequence, played on a simulated L7X, really ends in ROM download mode.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

BOARDS = Path(__file__).resolve().parent.parent / "configs" / "boards"
ACTIONS = {"close": True, "press": True, "open": False, "release": False}


def load(name: str) -> dict:
    return yaml.safe_load((BOARDS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["l7x", "esp32-devkitc"])
def test_board_config_sequences_use_declared_relays(name):
    board = load(name)
    assert board["name"] == name
    assert board["chip"] == "esp32"
    for seq_name in ("download", "run", "off"):
        for step in board["sequences"][seq_name]:
            role = next((v for k, v in step.items() if k in (*ACTIONS, "pulse")), None)
            if role is not None:
                assert role in board["relays"], f"{name}.{seq_name}: {step}"


def play(board, sequence: list[dict], wiring: dict[str, str]) -> None:
    for step in sequence:
        if "wait" in step:
            time.sleep(step["wait"])
        elif "pulse" in step:
            board.pulse(wiring[step["pulse"]], step.get("ms", 100) / 1000)
        else:
            ((action, role),) = step.items()
            board.set_contact(wiring[role], ACTIONS[action])


def test_l7x_download_sequence_enters_rom_download_mode_on_the_sim(make_board):
    config = load("l7x")
    assert config["serial"]["modem_lines"] is False  # CH330 without DTR/RTS
    board = make_board("l7x")
    play(board, config["sequences"]["download"], {"io0": "io0", "power": "power"})
    assert board.wait_for_console(r"boot:0x3 \(DOWNLOAD_BOOT", timeout=2)
    assert board.mode == "download"
    play(board, config["sequences"]["off"], {"io0": "io0", "power": "power"})
    assert board.mode == "off"  # the ROM does not latch the supply


def test_devkit_download_sequence_enters_rom_download_mode_on_the_sim(make_board):
    config = load("esp32-devkitc")
    board = make_board("devkit")
    play(board, config["sequences"]["download"], {"io0": "io0", "reset": "en"})
    assert board.wait_for_console(r"waiting for download", timeout=2)
    assert board.mode == "download"
