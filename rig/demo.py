"""``make demo`` for now: one real esptool session (through its Python API) on a board's port.

It identifies the chip, dumps the whole flash and checks the dump against the chip's own MD5,
then writes a firmware image and verifies it - what a person does by hand on an L7X today, with
the resets left to us (``before=no-reset``, ``after=no-reset``): the board is already in
download mode when this runs. The full dump -> erase -> write -> verify -> restore cycle with
backups replaces it (issue "Dump, erase, write, verify, restore").
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from esptool.cmds import attach_flash, detect_chip, run_stub, verify_flash, write_flash
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .esplog import captured

DETECTED_FLASH_SIZES = {
    0x14: 0x100000,
    0x15: 0x200000,
    0x16: 0x400000,
    0x17: 0x800000,
    0x18: 0x1000000,
}


@dataclass
class DemoReport:
    chip: str = ""
    mac: str = ""
    flash_id: int = 0
    flash_size: int = 0
    dump_path: Path | None = None
    dump_sha256: str = ""
    dump_seconds: float = 0.0
    dump_md5_verified: bool = False
    write_offset: int = 0
    write_bytes: int = 0
    write_seconds: float = 0.0
    verified: bool = False
    steps: list[tuple[str, str]] = field(default_factory=list)


def run_session(
    port: str, out_dir: Path, firmware: bytes, offset: int, console: Console | None = None
) -> DemoReport:
    """Identify, dump everything (MD5-checked), write ``firmware`` at ``offset``, verify."""
    console = console or Console()
    report = DemoReport(write_offset=offset, write_bytes=len(firmware))
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with captured() as esplog, progress:
        esp = detect_chip(port, connect_mode="no-reset")
        try:
            report.chip = esp.get_chip_description()
            report.mac = ":".join(f"{b:02x}" for b in esp.read_mac())
            report.steps.append(("connect", f"{report.chip}, MAC {report.mac}"))
            esp = run_stub(esp)
            attach_flash(esp)
            report.flash_id = esp.flash_id()
            report.flash_size = DETECTED_FLASH_SIZES.get((report.flash_id >> 16) & 0xFF, 0)
            report.steps.append(
                (
                    "flash id",
                    f"manufacturer {report.flash_id & 0xFF:02x}, device "
                    f"{(report.flash_id >> 8) & 0xFF:02x}{(report.flash_id >> 16) & 0xFF:02x}, "
                    f"{report.flash_size // 0x100000} MB",
                )
            )
            task = progress.add_task("dump", total=report.flash_size)

            def on_read(done: int, total: int, _offset: int) -> None:
                progress.update(task, completed=done)

            t0 = time.monotonic()
            dump = esp.read_flash(0, report.flash_size, on_read)
            report.dump_seconds = time.monotonic() - t0
            progress.remove_task(task)
            chip_md5 = esp.flash_md5sum(0, report.flash_size)
            report.dump_md5_verified = chip_md5 == hashlib.md5(dump).hexdigest()
            report.dump_sha256 = hashlib.sha256(dump).hexdigest()
            out_dir.mkdir(parents=True, exist_ok=True)
            report.dump_path = (
                out_dir / f"{report.mac.replace(':', '')}-{report.dump_sha256[:12]}.bin"
            )
            report.dump_path.write_bytes(dump)
            report.steps.append(
                (
                    "dump",
                    f"{len(dump)} bytes in {report.dump_seconds:.1f} s, chip MD5 "
                    f"{'matches' if report.dump_md5_verified else 'DIFFERS'}",
                )
            )
            task = progress.add_task("write", total=len(firmware))
            esplog.progress = lambda done, total, _p: progress.update(
                task, completed=done, total=total
            )
            t0 = time.monotonic()
            write_flash(esp, [(offset, firmware)], flash_size="keep")
            report.write_seconds = time.monotonic() - t0
            progress.remove_task(task)
            report.steps.append(
                ("write", f"{len(firmware)} bytes at {offset:#x} in {report.write_seconds:.2f} s")
            )
            verify_flash(esp, [(offset, firmware)])
            report.verified = True
            report.steps.append(("verify", "chip MD5 of the written region matches the image"))
        finally:
            esp._port.close()
    return report


def summary_table(report: DemoReport) -> Table:
    table = Table(title="esptool session", show_header=True)
    table.add_column("step")
    table.add_column("result")
    for step, result in report.steps:
        table.add_row(step, result)
    return table
