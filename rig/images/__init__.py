"""ESP32 flash images built and parsed in pure Python (no third-party binaries are shipped).

``esp_image`` is the image container, ``app_desc`` the app's identity struct, ``partitions`` the
partition table, ``synthetic`` the deterministic firmwares and flash contents the rig and its
simulator use.
"""

from .app_desc import APP_DESC_MAGIC, AppDescriptor, find_app_descriptor
from .esp_image import EspImage, ImageError, Segment, build_image, parse_image
from .partitions import (
    PartitionEntry,
    PartitionTableError,
    build_table,
    find_boot_app,
    parse_table,
)
from .synthetic import (
    APP_OFFSET,
    BOOTLOADER_OFFSET,
    CONSOLE_MAGIC,
    CUSTOM_GRBL,
    DEFAULT_PARTITIONS,
    PARTITION_TABLE_OFFSET,
    VENDOR_L7X,
    Firmware,
    app_image,
    bootloader_image,
    console_script,
    custom_grbl_app,
    custom_grbl_flash,
    firmware_app,
    partition_table,
    vendor_l7x_app,
    vendor_l7x_flash,
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
    "Firmware",
    "ImageError",
    "PartitionEntry",
    "PartitionTableError",
    "Segment",
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
    "parse_image",
    "parse_table",
    "partition_table",
    "vendor_l7x_app",
    "vendor_l7x_flash",
]
