"""One Selection for --board / --slot / --slots: each policy, and errors that name what is known.

Unit tests on the shipped simulated station (l7x-1..4, devkitc-1..2); nothing is opened.
"""

from __future__ import annotations

import pytest

from rig import config
from rig.errors import BadInput
from rig.operations.selection import (
    SelectionError,
    board_slots,
    check_slot_ids,
    listed_slots,
    one_slot,
)

L7X = ("l7x-1", "l7x-2", "l7x-3", "l7x-4")
SLOTS = (
    "l7x-1 (l7x), l7x-2 (l7x), l7x-3 (l7x), l7x-4 (l7x), devkitc-1 (esp32-devkitc), "
    "devkitc-2 (esp32-devkitc)"
)


@pytest.fixture(scope="module")
def station() -> config.Station:
    return config.default_station()


def only(station: config.Station, *ids: str) -> config.Station:
    """The station with only these slots."""
    return station.model_copy(update={"slots": tuple(s for s in station.slots if s.id in ids)})


def error(fn, *args, **kwargs) -> str:
    with pytest.raises(SelectionError) as err:
        fn(*args, **kwargs)
    assert isinstance(err.value, BadInput)  # exit 2, nothing touched
    return str(err.value)


# -- one slot --------------------------------------------------------------------------------------
def test_one_slot_by_slot_by_board_or_the_only_slot(station):
    sel = one_slot(station, slot="l7x-3")
    assert sel.slot.id == "l7x-3" and sel.boards == ("l7x",)
    assert sel.board_type().name == "l7x"
    assert one_slot(station, board="esp32-devkitc").slot.id == "devkitc-1"  # its first slot
    assert one_slot(station, board="l7x", slot="l7x-2").slot.id == "l7x-2"
    assert one_slot(only(station, "devkitc-2")).slot.id == "devkitc-2"
    assert one_slot(station, slot="l7x-4").backup_meta() == {
        "station": "sim",
        "slot": "l7x-4",
        "board_type": "l7x",
    }


def test_one_slot_errors_name_what_is_known(station):
    assert error(one_slot, station) == (
        f"station sim has several slots; pick one with --slot or --board (slots: {SLOTS})"
    )
    assert error(one_slot, station, board_option=False) == (
        f"station sim has several slots; pick one with --slot (slots: {SLOTS})"
    )
    assert error(one_slot, station, slot="nope") == (
        f"no slot 'nope' in station sim (slots: {SLOTS})"
    )
    assert error(one_slot, station, board="l7x", slot="devkitc-1") == (
        "slot devkitc-1 holds a board of type esp32-devkitc, not l7x"
    )
    assert error(one_slot, station, board="l8x") == (
        "unknown board 'l8x' (known boards: esp32-devkitc, l7x)"
    )


def test_a_known_board_type_without_a_slot_is_told_apart_from_an_unknown_one(station):
    l7x_only = only(station, *L7X)
    message = error(one_slot, l7x_only, board="esp32-devkitc")
    assert message == (
        "station sim has no esp32-devkitc slot (slots: l7x-1 (l7x), l7x-2 (l7x), l7x-3 (l7x), "
        "l7x-4 (l7x))"
    )


# -- the slots of a board type (rig flash) ---------------------------------------------------------
def test_board_slots_all_or_a_list_in_station_order(station):
    assert board_slots(station, "l7x").slot_ids == L7X
    assert board_slots(station, "l7x", " all ").slot_ids == L7X
    assert board_slots(station, "l7x", "l7x-3, l7x-1,l7x-3").slot_ids == ("l7x-1", "l7x-3")
    assert board_slots(station, "l7x", ["l7x-4", "l7x-2"]).slot_ids == ("l7x-2", "l7x-4")


def test_board_slots_errors(station):
    assert error(board_slots, station, "l7x", " , ") == (
        "--slots: name slot ids separated by commas, or all"
    )
    assert error(board_slots, station, "l7x", "l7x-1,devkitc-1") == (
        "slot devkitc-1 holds a board of type esp32-devkitc, not l7x"
    )
    assert error(board_slots, station, "l7x", "l7x-9").startswith("no slot 'l7x-9' in station sim")
    assert "known boards: esp32-devkitc, l7x" in error(board_slots, station, "nope")


# -- a list of slots or all (rig serve) ------------------------------------------------------------
def test_listed_slots_keep_the_order_given(station):
    assert listed_slots(station, all_slots=True).slot_ids == (*L7X, "devkitc-1", "devkitc-2")
    listed = listed_slots(station, ["devkitc-2", "l7x-1", "devkitc-2"])
    assert listed.slot_ids == ("devkitc-2", "l7x-1")  # the ports follow this order
    assert listed.boards == ("esp32-devkitc", "l7x")
    assert listed_slots(only(station, "l7x-2")).slot_ids == ("l7x-2",)


def test_listed_slots_errors(station):
    assert error(listed_slots, station, ["l7x-1"], all_slots=True) == (
        "--all and --slot exclude each other"
    )
    assert "pick one with --slot (slots:" in error(listed_slots, station)
    assert error(listed_slots, station, ["l7x-1", "x"]).startswith("no slot 'x' in station sim")


def test_check_slot_ids_allows_the_extra_ids_given(station):
    check_slot_ids(station, ["l7x-1", "gone-1"], also={"gone-1"})  # a stale quarantine entry
    assert error(check_slot_ids, station, ["gone-2"], also={"gone-1"}).startswith(
        "no slot 'gone-2' in station sim (slots: l7x-1 (l7x),"
    )
