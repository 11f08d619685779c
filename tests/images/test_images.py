"""Image format, partition table, app descriptor and synthetic firmware tests.

The decisive checks run stock esptool (``image-info``) on what we generate and compare our
parser with esptool's own ``LoadFirmwareImage``.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib

import pytest
from esptool.bin_image import LoadFirmwareImage
from esptool.loader import ESPLoader

from rig.images import (
    APP_OFFSET,
    BOOTLOADER_OFFSET,
    CUSTOM_GRBL,
    DEFAULT_PARTITIONS,
    PARTITION_TABLE_OFFSET,
    VENDOR_L7X,
    AppDescriptor,
    ImageError,
    PartitionEntry,
    PartitionTableError,
    Segment,
    app_image,
    bootloader_image,
    build_image,
    build_table,
    console_script,
    custom_grbl_app,
    custom_grbl_flash,
    find_app_descriptor,
    find_boot_app,
    firmware_app,
    parse_image,
    parse_table,
    vendor_l7x_app,
    vendor_l7x_flash,
)
from rig.images.app_desc import APP_DESC_SIZE
from rig.images.console import CONSOLE_MAGIC, console_block
from rig.images.esp_image import image_checksum

SEGS = [
    Segment(0x3FFB0000, bytes(range(256)) * 4),
    Segment(0x40080000, b"\x11\x22\x33\x44" * 100),
    Segment(0x3FFE8000, b"abcd"),
]


def small_image(**kw) -> bytes:
    return build_image(SEGS, entry=0x40080010, **kw)


# -- esp_image -------------------------------------------------------------------------------------
def test_round_trip_fields():
    img = parse_image(
        small_image(flash_mode="qio", flash_freq="80m", flash_size="16MB", drive=b"\x21\x43\x65")
    )
    assert img.segments == tuple(SEGS)
    assert (img.flash_mode, img.flash_freq, img.flash_size) == ("qio", "80m", "16MB")
    assert img.entry == 0x40080010
    assert (img.chip_id, img.wp_pin) == (0, 0xEE)
    assert img.drive_levels == {
        "clk_drv": 1,
        "q_drv": 2,
        "d_drv": 3,
        "cs0_drv": 4,
        "hd_drv": 5,
        "wp_drv": 6,
    }
    assert img.checksum_ok and img.sha256_ok and img.valid and img.hash_appended
    assert img.segment_offsets[0] == 24 + 8


def test_header_bytes_and_layout():
    data = small_image()
    assert data[0] == 0xE9 and data[1] == len(SEGS)
    assert data[2] == 2  # dio
    assert data[3] == 0x20  # 4MB | 40m
    assert struct.unpack_from("<I", data, 4)[0] == 0x40080010
    assert data[8] == 0xEE and data[23] == 1
    img = parse_image(data)
    # checksum byte is the last byte of a 16-byte block, the digest follows it
    assert (img.length - 32) % 16 == 0
    assert img.length == len(data)
    assert data[img.length - 33] == image_checksum(s.data for s in SEGS)
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()


def test_no_hash_and_trailing_bytes():
    data = small_image(append_sha256=False)
    img = parse_image(data + b"\xff" * 5000)  # handed a flash region
    assert img.length == len(data) and len(data) % 16 == 0
    assert img.hash_appended is False and img.sha256_ok is None and img.digest is None
    assert img.valid


def test_unaligned_segment_padded_like_esptool():
    img = parse_image(build_image([Segment(0x3FFB0000, b"abcde")], entry=0))
    assert img.segments[0].data == b"abcde\x00\x00\x00"


@pytest.mark.parametrize("n", [0, 1, 3, 7, 64, 1000, 4097])
def test_checksum_matches_esptool(n):
    data = hashlib.shake_256(str(n).encode()).digest(n)
    assert image_checksum([data]) == ESPLoader.checksum(data)


def test_corruption_detected():
    data = bytearray(small_image())
    img = parse_image(data)
    seg_byte = img.segment_offsets[1] + 5
    data[seg_byte] ^= 0x01
    bad = parse_image(bytes(data))
    assert not bad.checksum_ok and bad.sha256_ok is False and not bad.valid

    data = bytearray(small_image())
    data[-1] ^= 0xFF  # digest only
    bad = parse_image(bytes(data))
    assert bad.checksum_ok and bad.sha256_ok is False

    data = bytearray(small_image())
    data[-33] ^= 0x10  # stored checksum (covered by the digest too)
    bad = parse_image(bytes(data))
    assert not bad.checksum_ok and bad.sha256_ok is False


def test_bad_magic():
    with pytest.raises(ImageError, match=r"invalid magic 0xff at offset 0") as exc:
        parse_image(b"\xff" * 64)
    assert exc.value.kind == "magic"
    with pytest.raises(ImageError):
        parse_image(b"")


@pytest.mark.parametrize("cut", [10, 24, 40, 1000, -40, -1])
def test_truncated(cut):
    data = small_image()
    with pytest.raises(ImageError) as exc:
        parse_image(data[:cut])
    assert exc.value.kind == "truncated"
    assert exc.value.needed is not None and exc.value.needed > len(data[:cut])


def test_segment_runs_past_end_message():
    data = bytearray(small_image())
    struct.pack_into("<I", data, 24 + 8 + 1024 + 8 + 400 + 4, 0x100000)  # segment 2 length
    with pytest.raises(ImageError, match="segment 2 .* runs past the end of the data"):
        parse_image(bytes(data))


def test_sanity_limits():
    data = bytearray(small_image())
    data[1] = 17
    with pytest.raises(ImageError, match="segment count 17") as exc:
        parse_image(bytes(data))
    assert exc.value.kind == "segments"
    data = bytearray(small_image())
    data[23] = 2
    with pytest.raises(ImageError, match="hash_appended"):
        parse_image(bytes(data))
    with pytest.raises(ValueError):
        build_image([Segment(0x3FFB0000, b"1234")] * 17, entry=0)
    with pytest.raises(ValueError, match="flash mode"):
        build_image(SEGS, entry=0, flash_mode="fast")


def test_unknown_header_codes_are_reported_not_fatal():
    data = bytearray(small_image())
    data[2], data[3] = 7, 0x9A
    img = parse_image(bytes(data))
    assert img.flash_mode.startswith("unknown") and img.flash_freq.startswith("unknown")
    assert img.flash_size.startswith("unknown")


@pytest.mark.parametrize("make", [bootloader_image, vendor_l7x_app, custom_grbl_app])
def test_parser_agrees_with_esptool(make):
    data = make()
    ours = parse_image(data)
    theirs = LoadFirmwareImage("esp32", data)
    assert [(s.addr, s.data) for s in theirs.segments] == [(s.addr, s.data) for s in ours.segments]
    assert [s.file_offs + 8 for s in theirs.segments] == list(ours.segment_offsets)
    assert theirs.checksum == ours.checksum == theirs.calculate_checksum()
    assert theirs.entrypoint == ours.entry
    assert theirs.stored_digest == theirs.calc_digest == ours.digest
    assert theirs.data_length + 32 == ours.length == len(data)


# -- app descriptor --------------------------------------------------------------------------------
def test_app_descriptor_round_trip():
    desc = AppDescriptor(
        project_name="p" * 32,  # a full field has no NUL, like strncpy
        version="1.0",
        idf_ver="v4.4.7",
        date="Mar  4 2024",
        time="12:00:00",
        secure_version=3,
        app_elf_sha256=bytes(range(32)),
    )
    raw = desc.pack()
    assert len(raw) == APP_DESC_SIZE == 256
    assert struct.unpack_from("<I", raw)[0] == 0xABCD5432
    assert AppDescriptor.parse(raw) == desc
    assert AppDescriptor.parse(raw).pack() == raw
    with pytest.raises(ValueError, match="magic"):
        AppDescriptor.parse(b"\x00" * 256)
    with pytest.raises(ValueError):
        AppDescriptor.parse(raw[:100])
    with pytest.raises(ValueError, match="longer"):
        AppDescriptor("x" * 33, "1", "v4", "d", "t").pack()


def test_find_app_descriptor():
    img = parse_image(vendor_l7x_app())
    desc = find_app_descriptor(img)
    assert desc is not None
    assert (desc.project_name, desc.version, desc.idf_ver) == (
        "VigoEsp32",
        "3.0 Build 20200720",
        "v3.3.1",
    )
    assert img.segments[0].addr == 0x3F400020 and img.segment_offsets[0] == 0x20
    assert find_app_descriptor(parse_image(bootloader_image())) is None


# -- console script --------------------------------------------------------------------------------
def test_console_script_extraction():
    assert console_script(parse_image(vendor_l7x_app())) == list(VENDOR_L7X.console)
    assert console_script(parse_image(custom_grbl_app())) == list(CUSTOM_GRBL.console)
    assert console_script(parse_image(bootloader_image())) is None
    assert console_script(parse_image(small_image())) is None
    silent = app_image(project_name="s", version="1", idf_ver="v4.4", date="d", time="t")
    assert console_script(parse_image(silent)) == []
    block = console_block(["a", "", "ü"])
    assert block.startswith(CONSOLE_MAGIC) and len(block) % 4 == 0


def test_banners_distinguishable():
    vendor = "\n".join(VENDOR_L7X.console)
    custom = "\n".join(CUSTOM_GRBL.console)
    assert re.search(re.escape(VENDOR_L7X.banner), vendor)
    assert not re.search(re.escape(VENDOR_L7X.banner), custom)
    assert re.search(re.escape(CUSTOM_GRBL.banner), custom)
    assert not re.search(re.escape(CUSTOM_GRBL.banner), vendor)
    assert "VigoEsp32 3.0 Build 20200720" in vendor
    assert "[MSG:custom GRBL firmware]" in custom


# -- partitions ------------------------------------------------------------------------------------
def test_partition_table_round_trip():
    raw = build_table(DEFAULT_PARTITIONS)
    assert len(raw) == 0xC00
    n = len(DEFAULT_PARTITIONS)
    assert raw[n * 32 : n * 32 + 2] == b"\xeb\xeb"
    assert raw[n * 32 + 16 : n * 32 + 32] == hashlib.md5(raw[: n * 32]).digest()
    assert set(raw[(n + 1) * 32 :]) == {0xFF}
    assert parse_table(raw) == list(DEFAULT_PARTITIONS)
    assert parse_table(build_table(DEFAULT_PARTITIONS, md5=False)) == list(DEFAULT_PARTITIONS)
    app0 = DEFAULT_PARTITIONS[2]
    assert (app0.type_name, app0.subtype_name, app0.ota_index) == ("app", "ota_0", 0)
    assert DEFAULT_PARTITIONS[-1].subtype_name == "spiffs"


def test_partition_table_errors():
    raw = bytearray(build_table(DEFAULT_PARTITIONS))
    raw[40] ^= 1  # a byte of entry 1
    with pytest.raises(PartitionTableError, match="md5") as exc:
        parse_table(bytes(raw))
    assert exc.value.kind == "md5"

    raw = bytearray(build_table(DEFAULT_PARTITIONS))
    raw[64:66] = b"\x12\x34"
    with pytest.raises(PartitionTableError, match="partition 2 invalid magic number 0x3412"):
        parse_table(bytes(raw))

    overlapping = [
        PartitionEntry.of("a", "app", "factory", 0x10000, 0x100000),
        PartitionEntry.of("b", "data", "spiffs", 0x100000, 0x10000),
    ]
    with pytest.raises(PartitionTableError, match="overlaps") as exc:
        parse_table(build_table(overlapping))
    assert exc.value.kind == "overlap"
    assert len(parse_table(build_table(overlapping), check_overlap=False)) == 2

    assert parse_table(b"\xff" * 0xC00) == []  # erased: a valid, empty table
    with pytest.raises(PartitionTableError):
        parse_table(b"\x00" * 0xC00)
    with pytest.raises(ValueError):
        PartitionEntry.of("x" * 17, "app", "factory", 0, 0).pack()


def test_find_boot_app():
    factory = PartitionEntry.of("factory", "app", "factory", 0x10000, 0x100000)
    ota1 = PartitionEntry.of("ota1", "app", "ota_1", 0x210000, 0x100000)
    ota0 = PartitionEntry.of("ota0", "app", "ota_0", 0x110000, 0x100000)
    nvs = PartitionEntry.of("nvs", "data", "nvs", 0x9000, 0x6000)
    assert find_boot_app([nvs, ota1, ota0, factory]) == factory
    assert find_boot_app([nvs, ota1, ota0]) == ota0
    assert find_boot_app([nvs]) is None
    assert find_boot_app(DEFAULT_PARTITIONS).label == "app0"


# -- synthetic firmware ----------------------------------------------------------------------------
def test_bootloader_shape():
    img = parse_image(bootloader_image())
    assert [(s.addr, len(s.data)) for s in img.segments] == [
        (0x3FFF0030, 1416),
        (0x40078000, 14804),
        (0x40080400, 4),
        (0x40080404, 3356),
    ]
    assert img.entry == 0x4008059C
    assert (img.flash_mode, img.flash_freq, img.flash_size) == ("dio", "40m", "4MB")
    assert img.valid and img.hash_appended


@pytest.mark.parametrize("make, approx", [(vendor_l7x_app, 900_000), (custom_grbl_app, 300_000)])
def test_app_shape(make, approx):
    data = make()
    img = parse_image(data)
    assert img.valid
    assert abs(len(data) - approx) < approx * 0.1
    addrs = [s.addr for s in img.segments]
    assert addrs[0] == 0x3F400020 and 0x400D0020 in addrs
    irom = addrs.index(0x400D0020)
    # flash-mapped segments sit at file offsets congruent to their vaddr modulo the 64 KB page
    assert img.segment_offsets[irom] % 0x10000 == 0x20
    ratio = len(zlib.compress(data, 9)) / len(data)
    assert 0.4 < ratio < 0.85  # code-like, not noise and not zeros


def test_determinism_within_process():
    kw = dict(project_name="p", version="1", idf_ver="v4.4.7", date="d", time="t")
    assert app_image(**kw, console_lines=["x"]) == app_image(**kw, console_lines=("x",))
    assert app_image(**kw) != app_image(**{**kw, "version": "2"})
    assert bootloader_image.__wrapped__() == bootloader_image()
    assert firmware_app.__wrapped__(CUSTOM_GRBL) == custom_grbl_app()  # uncached rebuild
    assert vendor_l7x_flash.__wrapped__() == vendor_l7x_flash()
    assert custom_grbl_flash.__wrapped__() == custom_grbl_flash()


_HASH_SNIPPET = (
    "import hashlib; from rig.images import custom_grbl_app, vendor_l7x_flash, bootloader_image;"
    "print(hashlib.sha256(custom_grbl_app()).hexdigest());"
    "print(hashlib.sha256(vendor_l7x_flash()).hexdigest());"
    "print(hashlib.sha256(bootloader_image()).hexdigest())"
)


def test_determinism_across_processes():
    """Same bytes in fresh interpreters with different hash seeds (so sha256 pins stay valid)."""
    here = [
        hashlib.sha256(custom_grbl_app()).hexdigest(),
        hashlib.sha256(vendor_l7x_flash()).hexdigest(),
        hashlib.sha256(bootloader_image()).hexdigest(),
    ]
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _HASH_SNIPPET],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        assert out.stdout.split() == here


def test_vendor_flash_layout():
    flash = vendor_l7x_flash()
    assert len(flash) == 0x400000
    assert flash[:0x1000] == b"\xff" * 0x1000
    assert flash[BOOTLOADER_OFFSET:].startswith(bootloader_image())
    assert parse_table(flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 0xC00]) == list(
        DEFAULT_PARTITIONS
    )
    assert flash[APP_OFFSET:].startswith(vendor_l7x_app())
    img = parse_image(flash[APP_OFFSET : APP_OFFSET + 0x140000])
    assert img.valid and find_app_descriptor(img).project_name == "VigoEsp32"
    # NVS page header: ACTIVE state, crc32 over bytes 4..27
    nvs = flash[0x9000:0xA000]
    assert struct.unpack_from("<I", nvs)[0] == 0xFFFFFFFE
    assert struct.unpack_from("<I", nvs, 28)[0] == zlib.crc32(nvs[4:28], 0xFFFFFFFF)
    assert b"Grbl_ESP32" in nvs
    assert flash[0x290000:0x290100] != b"\xff" * 0x100  # spiffs has data
    erased = flash.count(0xFF) / len(flash)
    assert erased < 0.5, f"dump is {erased:.0%} 0xFF"
    assert len(vendor_l7x_flash(0x800000)) == 0x800000
    with pytest.raises(ValueError):
        vendor_l7x_flash(0x200000)


def test_custom_flash_layout():
    flash = custom_grbl_flash()
    assert len(flash) == 0x400000
    img = parse_image(flash[APP_OFFSET : APP_OFFSET + 0x140000])
    assert img.valid and find_app_descriptor(img).project_name == "custom-grbl"
    assert flash[0x9000:0xA000] == b"\xff" * 0x1000


# -- stock esptool accepts our images --------------------------------------------------------------
@pytest.mark.parametrize(
    "make, project",
    [(bootloader_image, None), (vendor_l7x_app, "VigoEsp32"), (custom_grbl_app, "custom-grbl")],
)
def test_esptool_image_info_accepts(tmp_path, make, project):
    path = tmp_path / "image.bin"
    path.write_bytes(make())
    out = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert re.search(r"Checksum: 0x[0-9a-f]{2} \(valid\)", text), text
    assert re.search(r"Validation hash: [0-9a-f]{64} \(valid\)", text), text
    assert "Chip ID: 0 (ESP32)" in text
    if project:
        assert f"Project name: {project}" in text
    else:
        assert "Application Information" not in text
        assert "Bootloader Information" not in text


def test_esptool_sees_our_corruption(tmp_path):
    data = bytearray(custom_grbl_app())
    data[0x1000] ^= 0x01  # inside the DROM segment
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    out = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    mine = parse_image(bytes(data))
    assert not mine.checksum_ok and mine.sha256_ok is False
    assert f"invalid - calculated {mine.calculated_checksum:#04x}" in out.stdout
    assert re.search(r"Validation hash: [0-9a-f]{64} \(invalid\)", out.stdout)


# -- otadata and image kinds -----------------------------------------------------------------------
def test_otadata_selection_follows_the_bootloader():
    from rig.images.otadata import boot_partition, otadata_selecting, selected_seq

    table = list(DEFAULT_PARTITIONS)
    app0, app1 = table[2], table[3]
    erased = b"\xff" * 0x2000
    assert selected_seq(erased) is None
    assert boot_partition(table, lambda o, n: erased[:n]) == app0  # no factory: ota_0
    to_app1 = otadata_selecting(table, app1)
    assert selected_seq(to_app1) == 2  # (2 - 1) % 2 == 1
    assert boot_partition(table, lambda o, n: to_app1[:n]) == app1
    assert otadata_selecting(table, app0) == erased  # erasing is enough for ota_0
    # The same bytes the simulator's bootloader follows (tests/sim/test_sim_boot.py).
    seq = struct.pack("<I", 2)
    assert to_app1[:32] == seq + b"\xff" * 24 + struct.pack("<I", zlib.crc32(seq, 0xFFFFFFFF))
    factory = PartitionEntry.of("factory", "app", "factory", 0x10000, 0x100000)
    with_factory = [table[0], table[1], factory, app1]
    assert boot_partition(with_factory, lambda o, n: erased[:n]) == factory


def test_image_kinds_and_problems():
    from rig.images.flash_contents import merged_firmware
    from rig.images.info import APP, BOOTLOADER, DATA, MERGED, PARTITION_TABLE, image_info

    assert image_info(custom_grbl_app()).kind == APP
    assert image_info(custom_grbl_app()).app.project_name == CUSTOM_GRBL.project_name
    assert image_info(bootloader_image()).kind == BOOTLOADER
    assert image_info(merged_firmware(CUSTOM_GRBL)).kind == MERGED
    table = image_info(build_table(DEFAULT_PARTITIONS))
    assert table.kind == PARTITION_TABLE and table.table[2].label == "app0"
    assert image_info(b"\xff" * 0x2000).kind == DATA
    assert all(image_info(x).ok for x in (custom_grbl_app(), bootloader_image()))
    other_chip = bytearray(custom_grbl_app())
    other_chip[12] = 5  # chip id of the ESP32-C3
    [problem] = image_info(bytes(other_chip)).problems[:1]
    assert "chip id 5, not ESP32" in problem
    bad_digest = bytearray(custom_grbl_app())
    bad_digest[-1] ^= 1
    assert "SHA-256 digest does not match" in " ".join(image_info(bytes(bad_digest)).problems)
