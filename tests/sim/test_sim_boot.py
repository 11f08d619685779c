"""Console text of the simulated ESP32 after reset (rig.sim.chip.boot)."""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from rig.images import (
    APP_OFFSET,
    BOOTLOADER_OFFSET,
    CUSTOM_GRBL,
    DEFAULT_PARTITIONS,
    PARTITION_TABLE_OFFSET,
    VENDOR_L7X,
    PartitionEntry,
    bootloader_image,
    build_table,
    custom_grbl_app,
    custom_grbl_flash,
    parse_image,
    vendor_l7x_app,
    vendor_l7x_flash,
)
from rig.sim.chip.boot import ROM_DATE, BootScript, download_boot, spi_boot

SPI_RST = "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"


def reader(flash: bytes | bytearray):
    def read(offset: int, length: int) -> bytes:
        if offset < 0 or offset + length > len(flash):
            raise ValueError("outside the chip")
        return bytes(flash[offset : offset + length])

    return read


def boot(flash, reason=0x1) -> BootScript:
    return spi_boot(reader(flash), reason)


def idf_lines(script: BootScript, level: str = "E") -> list[str]:
    return [t for t in script.texts if t.startswith(f"{level} (")]


def test_download_banner_exact():
    s = download_boot()
    assert s.text() == (
        "ets Jul 29 2019 12:21:46\r\n"
        "\r\n"
        "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\n"
        "waiting for download\r\n"
    )
    assert s.then == "wait" and s.next_reset_reason is None
    assert download_boot(0x3).texts[2].startswith("rst:0x3 (SW_RESET),boot:0x3 ")
    with pytest.raises(ValueError):
        download_boot(0x2)


def test_erased_flash_invalid_header_loop():
    s = spi_boot(lambda o, n: b"\xff" * n)
    assert s.texts == [ROM_DATE, "", SPI_RST] + ["invalid header: 0xffffffff"] * 8
    assert s.then == "rtcwdt_reset" and s.next_reset_reason == 0x10
    gaps = [d for d, t in s.lines if t.startswith("invalid header")][1:]
    assert all(0.03 <= d <= 0.06 for d in gaps)
    again = spi_boot(lambda o, n: b"\xff" * n, s.next_reset_reason)
    assert again.texts[2] == "rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"


def test_invalid_header_prints_little_endian_word():
    flash = bytearray(b"\xff" * 0x10000)
    flash[BOOTLOADER_OFFSET : BOOTLOADER_OFFSET + 4] = b"\x12\x34\x56\x78"
    assert boot(flash).texts[3] == "invalid header: 0x78563412"


def test_vendor_boot():
    flash = vendor_l7x_flash()
    s = boot(flash)
    texts = s.texts
    assert texts[:3] == [ROM_DATE, "", SPI_RST]
    assert texts[3:7] == [
        "configsip: 0, SPIWP:0xee",
        "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00",
        "mode:DIO, clock div:2",
        "load:0x3fff0030,len:1416",
    ]
    bl = parse_image(bootloader_image())
    loads = [t for t in texts if t.startswith("load:")]
    assert loads == [f"load:{seg.addr:#010x},len:{len(seg.data)}" for seg in bl.segments]
    assert "entry 0x4008059c" in texts
    assert texts[texts.index("entry 0x4008059c") + 1] == (
        "I (29) boot: ESP-IDF v3.3.1 2nd stage bootloader"
    )
    joined = s.text()
    assert "boot: ## Label            Usage          Type ST Offset   Length" in joined
    assert re.search(r"boot:  2 app0 +OTA app +00 10 00010000 00140000\r\n", joined)
    assert "boot: Loaded app from partition at offset 0x10000" in joined
    assert re.search(r"esp_image: segment 0: paddr=0x00010020 vaddr=0x3f400020 .* map", joined)
    assert "Project name:     VigoEsp32" in joined
    assert "App version:      3.0 Build 20200720" in joined
    assert "ESP-IDF:          v3.3.1" in joined
    # the firmware's own output comes last, in order
    assert texts[-len(VENDOR_L7X.console) :] == list(VENDOR_L7X.console)
    assert re.search(re.escape(VENDOR_L7X.banner), joined)
    assert not re.search(re.escape(CUSTOM_GRBL.banner), joined)
    assert not idf_lines(s, "E")
    assert s.then == "run" and s.next_reset_reason is None
    assert s.duration < 0.5


def test_log_timestamps_follow_the_script_clock():
    s = boot(vendor_l7x_flash())
    t, last = 0.0, 0
    for delay, text in s.lines:
        t += delay
        m = re.match(r"[IWE] \((\d+)\) ", text)
        if m and m.group(1) != "0":  # "I (0)" is the APP CPU's own clock, as on hardware
            stamp = int(m.group(1))
            assert stamp >= last and abs(stamp - t * 1000) <= 1
            last = stamp


def test_custom_boot():
    s = boot(custom_grbl_flash())
    joined = s.text()
    assert "I (29) boot: ESP-IDF v4.4.7 2nd stage bootloader" in joined
    assert re.search(r"esp_image: segment 3: paddr=00030020 vaddr=400d0020 size=\w+h", joined)
    assert "Project name:     custom-grbl" in joined
    assert re.search(re.escape(CUSTOM_GRBL.banner), joined)
    assert "[MSG:custom GRBL firmware]" in s.texts
    assert not re.search(re.escape(VENDOR_L7X.banner), joined)
    assert s.then == "run" and s.duration < 0.5


def test_custom_app_written_over_vendor():
    flash = bytearray(vendor_l7x_flash())
    app = custom_grbl_app()
    flash[APP_OFFSET : APP_OFFSET + len(app)] = app  # what write-flash 0x10000 leaves behind
    s = boot(flash)
    assert s.texts[-len(CUSTOM_GRBL.console) :] == list(CUSTOM_GRBL.console)


def test_corrupted_app_is_rejected_and_bootloader_resets():
    flash = bytearray(vendor_l7x_flash())
    flash[APP_OFFSET + 0x50000] ^= 0x01  # a byte in the IROM segment
    s = boot(flash)
    errors = idf_lines(s)
    assert re.match(r"E \(\d+\) esp_image: (Checksum failed|Image hash failed)", errors[0])
    assert re.match(r"E \(\d+\) boot: OTA app partition slot 0 is not bootable", errors[1])
    assert errors[-1].endswith("boot: No bootable app partitions in the partition table")
    assert "Project name" not in s.text()
    assert s.then == "sw_reset" and s.next_reset_reason == 0x3
    assert boot(flash, s.next_reset_reason).texts[2].startswith("rst:0x3 (SW_RESET)")


def test_checksum_only_corruption_message():
    flash = bytearray(custom_grbl_flash())
    img = parse_image(custom_grbl_app())
    digest_at = APP_OFFSET + img.length - 32
    checksum_at = digest_at - 1
    flash[checksum_at] ^= 0x01
    errors = idf_lines(boot(flash))
    expected = f"Calculated {img.calculated_checksum:#x} read {img.checksum ^ 1:#x}"
    assert errors[0].endswith(f"esp_image: Checksum failed. {expected}")


def test_hash_only_corruption_message():
    flash = bytearray(custom_grbl_flash())
    img = parse_image(custom_grbl_app())
    flash[APP_OFFSET + img.length - 1] ^= 0x01  # last digest byte
    errors = idf_lines(boot(flash))
    assert errors[0].endswith("esp_image: Image hash failed - image is corrupt")


def test_erased_app_region():
    flash = bytearray(vendor_l7x_flash())
    flash[APP_OFFSET : APP_OFFSET + 0x140000] = b"\xff" * 0x140000
    s = boot(flash)
    errors = idf_lines(s)
    # no app descriptor to tell the bootloader's IDF version: v4.x wording
    assert re.match(
        r"E \(\d+\) esp_image: image at 0x10000 has invalid magic byte \(nothing flashed here\?\)",
        errors[0],
    )
    assert errors[1].endswith("boot: OTA app partition slot 0 is not bootable")
    assert errors[2].endswith(
        "esp_image: image at 0x150000 has invalid magic byte (nothing flashed here?)"
    )
    assert errors[-1].endswith("No bootable app partitions in the partition table")
    assert s.then == "sw_reset"


def _flash_with_table(entries, apps: dict[int, bytes]) -> bytearray:
    flash = bytearray(b"\xff" * 0x400000)
    bl = bootloader_image()
    flash[BOOTLOADER_OFFSET : BOOTLOADER_OFFSET + len(bl)] = bl
    table = build_table(entries)
    flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + len(table)] = table
    for offset, app in apps.items():
        flash[offset : offset + len(app)] = app
    return flash


def test_factory_partition_without_otadata():
    entries = [
        PartitionEntry.of("nvs", "data", "nvs", 0x9000, 0x6000),
        PartitionEntry.of("phy_init", "data", "phy", 0xF000, 0x1000),
        PartitionEntry.of("factory", "app", "factory", 0x10000, 0x100000),
    ]
    s = boot(_flash_with_table(entries, {0x10000: custom_grbl_app()}))
    joined = s.text()
    assert re.search(r"boot:  1 phy_init +RF data +01 01 0000f000 00001000", joined)
    assert re.search(r"boot:  2 factory +factory app +00 00 00010000 00100000", joined)
    assert "trying OTA 0" not in joined and "Defaulting" not in joined
    assert s.texts[-1] == CUSTOM_GRBL.banner

    s = boot(_flash_with_table(entries, {}))
    errors = idf_lines(s)
    assert errors[1].endswith("boot: Factory app partition is not bootable")
    assert errors[-1].endswith("boot: No bootable app partitions in the partition table")


def test_otadata_selects_ota_1():
    entries = list(DEFAULT_PARTITIONS)
    flash = _flash_with_table(entries, {0x10000: vendor_l7x_app(), 0x150000: custom_grbl_app()})
    seq = struct.pack("<I", 2)
    entry = seq + b"\xff" * 24 + struct.pack("<I", zlib.crc32(seq, 0xFFFFFFFF))
    flash[0xE000 : 0xE000 + 32] = entry
    s = boot(flash)
    assert "boot: Loaded app from partition at offset 0x150000" in s.text()
    assert "trying OTA 0" not in s.text()
    assert s.texts[-1] == CUSTOM_GRBL.banner


def test_bad_partition_table():
    flash = bytearray(vendor_l7x_flash())
    flash[PARTITION_TABLE_OFFSET + 40] ^= 0x01
    s = boot(flash)
    errors = idf_lines(s)
    assert errors[0].endswith("flash_parts: incorrect md5 checksum")
    assert errors[1].endswith("boot: Failed to verify partition table")
    assert "Partition Table:" not in s.text()
    assert s.then == "sw_reset"

    flash = bytearray(vendor_l7x_flash())
    flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 2] = b"\x00\x00"
    errors = idf_lines(boot(flash))
    assert errors[0].endswith("flash_parts: partition 0 invalid magic number 0x0")

    # an erased table is valid but empty: nothing to boot
    flash = bytearray(vendor_l7x_flash())
    flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 0xC00] = b"\xff" * 0xC00
    s = boot(flash)
    assert idf_lines(s)[-1].endswith("No bootable app partitions in the partition table")


def test_table_beyond_flash_size():
    entries = [PartitionEntry.of("factory", "app", "factory", 0x10000, 0x400000)]
    s = boot(_flash_with_table(entries, {}))
    errors = idf_lines(s)
    assert "partition 0 invalid - offset 0x10000 size 0x400000 exceeds flash chip size" in errors[0]


def test_corrupted_bootloader_checksum():
    flash = bytearray(vendor_l7x_flash())
    bl = parse_image(bootloader_image())
    flash[BOOTLOADER_OFFSET + bl.segment_offsets[1] + 100] ^= 0x40
    s = boot(flash)
    texts = s.texts
    assert re.fullmatch(r"csum err:0x[0-9a-f]{2}!=0x[0-9a-f]{2}", texts[-2])
    assert texts[-2] == f"csum err:{bl.calculated_checksum ^ 0x40:#04x}!={bl.checksum:#04x}"
    assert texts[-1] == "ets_main.c 371"
    assert len([t for t in texts if t.startswith("load:")]) == 4
    assert not any(t.startswith("entry ") for t in texts)
    assert s.then == "wait"


def test_reads_past_the_chip_are_erased():
    flash = bytearray(vendor_l7x_flash())[:0x200000]  # a 2 MB chip
    s = boot(flash)  # the table's spiffs lies beyond the chip; app0 is inside
    assert s.then == "run"
    assert s.texts[-1] == VENDOR_L7X.banner
