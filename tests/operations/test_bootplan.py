"""The boot plan (rig.operations.bootplan): what an image needs to boot, from the flash as it
will be after the planned steps - pure functions over bytes, no board."""

from __future__ import annotations

import struct
import zlib

from rig.images import DEFAULT_PARTITIONS, custom_grbl_app, flash_contents
from rig.images.otadata import selected_seq
from rig.operations.bootplan import expected_app, plan_boot
from rig.operations.images import FlashImage

VENDOR = flash_contents.vendor_l7x_flash()
APP = FlashImage("app.bin", 0x10000, custom_grbl_app(), "app.bin")


def reader(flash: bytes):
    return lambda offset, size: flash[offset : offset + size]


def with_otadata_seq(flash: bytes, seq: int) -> bytes:
    raw = struct.pack("<I", seq)
    entry = raw + b"\xff" * 24 + struct.pack("<I", zlib.crc32(raw, 0xFFFFFFFF))
    return flash[:0xE000] + entry + flash[0xE000 + 32 :]


def test_after_a_chip_erase_an_app_gets_bootloader_and_table_from_the_backup():
    plan = plan_boot([APP], current=None, backup=reader(VENDOR), backup_name="backup B", layout=[])
    assert [(i.name, i.offset) for i in plan.added] == [
        ("bootloader from the backup", 0x1000),
        ("partition table from the backup", 0x8000),
    ]
    assert plan.added[0].data == VENDOR[0x1000 : 0x1000 + len(plan.added[0].data)]
    assert plan.added[1].data == VENDOR[0x8000:0x9000]
    assert plan.problems == () and plan.app.label == "app0"
    assert [i.offset for i in plan.images] == [0x1000, 0x8000, 0x10000]


def test_without_a_backup_the_table_comes_from_the_layout_and_the_bootloader_is_missing():
    plan = plan_boot(
        [APP], current=None, backup=None, backup_name="no backup", layout=list(DEFAULT_PARTITIONS)
    )
    assert [i.name for i in plan.added] == ["partition table from the board layout"]
    assert plan.problems == (
        "the flash would have no bootloader at 0x1000, and there is no backup to take one from",
    )


def test_without_an_erase_otadata_pointing_at_app1_is_reset():
    current = with_otadata_seq(VENDOR, 2)  # selects ota_1: the app written to app0 never runs
    assert expected_app(reader(current)).label == "app1"
    plan = plan_boot(
        [APP], current=reader(current), backup=reader(current), backup_name="b", layout=[]
    )
    [otadata] = plan.added
    assert (otadata.name, otadata.offset, otadata.data) == (
        "otadata (selects app0)",
        0xE000,
        b"\xff" * 0x2000,
    )
    assert plan.app.label == "app0" and plan.problems == ()


def test_an_app_for_app1_gets_otadata_that_selects_it():
    app1 = FlashImage("app.bin", 0x150000, custom_grbl_app(), "app.bin")
    plan = plan_boot([app1], current=reader(VENDOR), backup=None, backup_name="-", layout=[])
    [otadata] = plan.added
    assert otadata.name == "otadata (selects app1)" and selected_seq(otadata.data) == 2
    assert plan.app.offset == 0x150000


def test_an_app_where_the_table_has_no_app_partition_cannot_boot():
    """The backup's table decides (here: its app partitions start at 0x10000 and 0x150000)."""
    misplaced = FlashImage("app.bin", 0x20000, custom_grbl_app(), "app.bin")
    plan = plan_boot([misplaced], current=reader(VENDOR), backup=None, backup_name="-", layout=[])
    assert any(
        "an app image at 0x20000, not the start of an app partition" in p for p in plan.problems
    )
