"""The shipped board configs state facts the simulator agrees with.

Read through the typed loader (rig.config): sequences only use the relays the board declares,
and the download sequences, played step by step on a simulated board, really end in ROM
download mode. (The relay layer's own interpreter is tested with the relays; this plays the
steps directly on the simulated board's contacts.)
"""

from __future__ import annotations

import time

import pytest

from rig.config import SequenceStep, builtin_configs_dir, default_station, load_board

BOARDS = builtin_configs_dir() / "boards"
CLOSED = {"close": True, "press": True, "open": False, "release": False}


def load(name: str):
    return load_board(BOARDS / f"{name}.yaml")


@pytest.mark.parametrize("name", ["l7x", "esp32-devkitc"])
def test_board_config_sequences_use_declared_relays(name):
    board = load(name)
    assert board.name == name
    assert board.chip == "esp32"
    for seq_name in ("download", "run", "off"):
        for step in board.sequences[seq_name]:
            if step.role is not None:
                assert step.role in board.relays, f"{name}.{seq_name}: {step}"


def play(board, sequence: tuple[SequenceStep, ...], wiring: dict[str, str]) -> None:
    for step in sequence:
        if step.action == "wait":
            time.sleep(step.seconds)
        elif step.action == "pulse":
            board.pulse(wiring[step.role], step.seconds)
        else:
            board.set_contact(wiring[step.role], CLOSED[step.action])


def test_l7x_download_sequence_enters_rom_download_mode_on_the_sim(make_board):
    config = load("l7x")
    assert config.serial.modem_lines is False  # CH330 without DTR/RTS
    board = make_board("l7x")
    play(board, config.sequences.download, {"io0": "io0", "power": "power"})
    assert board.wait_for_console(r"boot:0x3 \(DOWNLOAD_BOOT", timeout=2)
    assert board.mode == "download"
    play(board, config.sequences.off, {"io0": "io0", "power": "power"})
    assert board.mode == "off"  # the ROM does not latch the supply


def test_devkit_download_sequence_enters_rom_download_mode_on_the_sim(make_board):
    config = load("esp32-devkitc")
    board = make_board("devkit")
    play(board, config.sequences.download, {"io0": "io0", "reset": "en"})
    assert board.wait_for_console(r"waiting for download", timeout=2)
    assert board.mode == "download"


def test_sim_station_slots_match_their_board_types():
    station = default_station()
    for slot in station.slots:
        board = station.board_of(slot)
        assert board.roles_used() <= set(slot.relays), slot.id
        assert slot.simulated is not None
        assert slot.simulated.variant == ("l7x" if board.name == "l7x" else "devkit")
