"""ESP32 flash images built and parsed in pure Python (no third-party binaries are shipped).

``esp_image`` is the image container, ``app_desc`` the app's identity struct, ``partitions`` the
partition table, ``console`` the console script a synthetic firmware carries, ``synthetic`` the
deterministic firmwares and ``flash_contents`` the whole flash contents the rig and its simulator
use. The ESP32's offsets come from :mod:`rig.esp32` and are re-exported here.
"""

from rig.esp32 import APP_OFFSET, BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET

from .app_desc import APP_DESC_MAGIC, AppDescriptor, find_app_descriptor
from .console import CONSOLE_MAGIC, console_script
from .esp_image import EspImage, ImageError, Segment, build_image, parse_image
from .flash_contents import custom_grbl_flash, merged_firmware, vendor_l7x_flash
from .partitions import (
    PartitionEntry,
    PartitionTableError,
    build_table,
    find_boot_app,
    parse_table,
)
from .synthetic import (
    CUSTOM_GRBL,
    DEFAULT_PARTITIONS,
    VENDOR_L7X,
    SyntheticFirmware,
    app_image,
    bootloader_image,
    custom_grbl_app,
    firmware_app,
    partition_table,
    vendor_l7x_app,
)

__all__ = [
    "APP_DESC_MAGIC",
    "APP_OFFSET",
    "BOOTLOADER_OFFSET",
    "CONSOLE_MAGIC",
    "CUSTOM_GRBL",
    "DEFAULT_PARTITIONS",
    "PARTITION_TABLE_OFFSET",
    "VENDOR_L7X",
    "AppDescriptor",
    "EspImage",
    "ImageError",
    "PartitionEntry",
    "PartitionTableError",
    "Segment",
    "SyntheticFirmware",
    "app_image",
    "bootloader_image",
    "build_image",
    "build_table",
    "console_script",
    "custom_grbl_app",
    "custom_grbl_flash",
    "find_app_descriptor",
    "find_boot_app",
    "firmware_app",
    "merged_firmware",
    "parse_image",
    "parse_table",
    "partition_table",
    "vendor_l7x_app",
    "vendor_l7x_flash",
]
