"""Will the board boot what is about to be written? Planned before anything is erased.

What the ESP32 needs to start an app (ESP-IDF's boot chain): the ROM loads the second-stage
bootloader from 0x1000, which reads the partition table at 0x8000, picks an app partition
(otadata, :mod:`rig.images.otadata`) and starts the app there if its image is valid. A user's
file is often only the app (the Arduino IDE's export, the community GRBL bridge for the L7X):
after the cycle's chip erase nothing else is left, and without an erase otadata may still
select the other OTA slot, so the old app keeps booting.

:func:`plan_boot` models the flash after the planned steps - erased (``current`` None) or as it
is now, with the images written over it - and adds what is missing: the bootloader and the
partition table from the board's verified backup (else the table from the board type's
layout), and otadata that selects the partition the new app is written to. What still cannot
boot is listed in :attr:`BootPlan.problems`, for the caller to refuse before anything is
erased (``--force`` writes anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rig.esp32 import BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET, SECTOR
from rig.images.info import APP, BOOTLOADER, BOOTLOADER_REGION, image_info
from rig.images.otadata import OTADATA_SIZE, boot_partition, otadata_partition, otadata_selecting
from rig.images.partitions import (
    PARTITION_TABLE_MAX_LEN,
    PartitionEntry,
    PartitionTableError,
    build_table,
    parse_table,
)
from rig.operations.backups import Backup
from rig.operations.errors import Refused
from rig.operations.images import FlashImage, esp_images_in, placement_problems

__all__ = [
    "BootPlan",
    "CannotBoot",
    "Reader",
    "backup_reader",
    "expected_app",
    "plan_boot",
    "refuse_unless_forced",
]

Reader = Callable[[int, int], bytes]  # read(offset, size) of a whole flash


class CannotBoot(Refused):
    """What would be written cannot boot: refused before anything was erased or written."""


@dataclass(frozen=True)
class BootPlan:
    """What to write (the images and what the plan ``added``), the app partition the
    bootloader will start (None: none), and why it would not boot (empty: it boots)."""

    images: tuple[FlashImage, ...]
    added: tuple[FlashImage, ...]
    app: PartitionEntry | None
    problems: tuple[str, ...]

    def describe(self) -> str:
        boots = f"app partition {self.app.label} at {self.app.offset:#x}" if self.app else "none"
        added = ", ".join(image.name for image in self.added) or "nothing"
        return f"boots {boots}; added {added}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": None
            if self.app is None
            else {"label": self.app.label, "offset": self.app.offset},
            "added": [
                {
                    "name": i.name,
                    "offset": i.offset,
                    "size": len(i.data),
                    "sha256": i.sha256,
                    "source": i.source,
                }
                for i in self.added
            ],
            "problems": list(self.problems),
        }


class _After:
    """The flash after the planned steps: ``base`` (None: erased) with images written over it."""

    def __init__(self, base: Reader | None, images: Sequence[FlashImage]) -> None:
        self.base = base
        self.images = list(images)

    def read(self, offset: int, size: int) -> bytes:
        out = bytearray(self.base(offset, size) if self.base is not None else b"\xff" * size)
        for image in self.images:
            lo, hi = max(offset, image.offset), min(offset + size, image.end)
            if lo < hi:
                out[lo - offset : hi - offset] = image.data[lo - image.offset : hi - image.offset]
        return bytes(out)


def _table(read: Reader) -> list[PartitionEntry] | None:
    """The partition table ``read`` holds, None if there is none (erased, or corrupt)."""
    try:
        table = parse_table(read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_MAX_LEN))
    except PartitionTableError:
        return None
    return table or None


def _bootloader(read: Reader) -> bytes | None:
    """The bootloader image ``read`` holds at 0x1000 (its bytes), None if none loads."""
    region = read(BOOTLOADER_OFFSET, BOOTLOADER_REGION)
    info = image_info(region)
    if info.kind != BOOTLOADER or not info.ok:
        return None
    return region[: info.image.length]


def backup_reader(backup: Backup | None) -> tuple[Reader | None, str]:
    """A reader of the verified backup's bytes (read once, checked against its sha256) and
    its name for the parts taken from it; ``(None, "no backup")`` without one."""
    if backup is None:
        return None, "no backup"
    data = backup.read()
    return (lambda offset, size: data[offset : offset + size]), f"backup {backup.id}"


def expected_app(read: Reader) -> PartitionEntry | None:
    """The app partition the bootloader starts on a flash read through ``read`` (a backup):
    its table and otadata say (None: no table, or no app in it)."""
    table = _table(read)
    return None if table is None else boot_partition(table, read)


def plan_boot(
    images: Sequence[FlashImage],
    *,
    current: Reader | None,
    backup: Reader | None,
    backup_name: str,
    layout: Sequence[PartitionEntry],
) -> BootPlan:
    """Plan writing ``images`` over ``current`` (None: after a chip erase), taking what is
    missing from ``backup`` (the board's verified backup, named ``backup_name``) or from the
    board type's ``layout``."""
    images = list(images)
    added: list[FlashImage] = []
    problems: list[str] = []
    after = _After(current, images)
    if _bootloader(after.read) is None:
        data = _bootloader(backup) if backup is not None else None
        if data is None:
            problems.append(_missing("bootloader at 0x1000", backup is not None))
        else:
            added.append(
                FlashImage("bootloader from the backup", BOOTLOADER_OFFSET, data, backup_name)
            )
    if _table(after.read) is None:
        table_image = _table_from(backup, backup_name, layout)
        if table_image is None:
            problems.append(_missing("partition table at 0x8000", backup is not None))
        else:
            added.append(table_image)
    after = _After(current, images + added)
    table = _table(after.read)
    app = None
    if table is not None:
        problems += [f"{i.name}: {p}" for i in images for p in placement_problems(i, table)]
        app, otadata, more = _app_and_otadata(table, images, after.read)
        added += otadata
        problems += more
    everything = sorted(images + added, key=lambda i: i.offset)
    return BootPlan(tuple(everything), tuple(added), app, tuple(problems))


def _missing(what: str, have_backup: bool) -> str:
    source = "the backup has none" if have_backup else "there is no backup to take one from"
    return f"the flash would have no {what}, and {source}"


def _table_from(
    backup: Reader | None, backup_name: str, layout: Sequence[PartitionEntry]
) -> FlashImage | None:
    """The partition table sector of the backup, else one built from the board's layout."""
    if backup is not None and _table(backup) is not None:
        sector = backup(PARTITION_TABLE_OFFSET, SECTOR)
        name = "partition table from the backup"
        return FlashImage(name, PARTITION_TABLE_OFFSET, sector, backup_name)
    if layout:
        table = build_table(layout)
        name = "partition table from the board layout"
        return FlashImage(name, PARTITION_TABLE_OFFSET, table, "the board type's layout")
    return None


def _app_and_otadata(
    table: list[PartitionEntry], images: Sequence[FlashImage], read: Reader
) -> tuple[PartitionEntry | None, list[FlashImage], list[str]]:
    """The app partition that will boot (the one a new app goes to, else the one selected),
    otadata to write so that it is selected, and why the app there would not start."""
    written = {
        at: info
        for image in images
        for at, info in esp_images_in(image.data, image.offset, table)
        if info.kind == APP
    }
    target = next((p for p in table if p.is_app and p.offset in written), None)
    selected = boot_partition(table, read)
    added: list[FlashImage] = []
    problems: list[str] = []
    if target is not None and selected != target:
        ota = otadata_partition(table)
        try:
            data = otadata_selecting(table, target)
        except ValueError as err:
            problems.append(str(err))
        else:
            if ota is None:
                problems.append(
                    f"no otadata partition: the bootloader never selects {target.label}"
                )
            else:
                name = f"otadata (selects {target.label})"
                size = min(ota.size, OTADATA_SIZE)
                added.append(FlashImage(name, ota.offset, data[:size], "the plan"))
    app = target or selected
    if app is None:
        problems.append("the partition table has no app partition the bootloader would start")
        return None, added, problems
    info = written.get(app.offset) or image_info(read(app.offset, app.size))
    if info.kind != APP or not info.ok:
        why = "; ".join(info.problems) or f"it holds {info.kind}, not an app image"
        problems.append(f"app partition {app.label} at {app.offset:#x} cannot start: {why}")
    return app, added, problems


def refuse_unless_forced(plan: BootPlan, what: str, force: bool) -> None:
    """Raise :class:`CannotBoot` if the plan has problems and nothing forces it."""
    if plan.problems and not force:
        raise CannotBoot(
            f"{what} cannot boot after these steps: {'; '.join(plan.problems)} - refusing "
            "before anything is erased or written (--force to do it anyway)"
        )
