"""Real firmware files on the simulated L7X: app-only images that boot after a chip erase, images
refused before a relay moves, a cycle whose boot check fails puts the original back (in-process
CLI on a copy of the simulated station; backups are seeded: no 4 MB dump)."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest
from click.testing import CliRunner

from rig.cli import main
from rig.esp32 import format_mac
from rig.hardware.safety import uninstall_safety_net
from rig.images import app_image, custom_grbl_app, flash_contents
from rig.operations.backups import BackupStore
from rig.sim.parts.efuse import mac_from_seed

pytestmark = pytest.mark.timeout(180)
SLOT = "l7x-2"
MAC = format_mac(mac_from_seed(f"l7x:{SLOT}"))
VENDOR = flash_contents.vendor_l7x_flash()


@pytest.fixture
def rig(sim_station_file, tmp_path):
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, [*args, "--station", str(sim_station_file)])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    run.flash = lambda: (tmp_path / "state" / "sim" / "sim-flash" / f"{SLOT}.bin").read_bytes()
    run.touched = lambda: (tmp_path / "state" / "sim" / "sim-flash" / f"{SLOT}.bin").exists()
    yield run
    uninstall_safety_net()


def seed(tmp_path, flash: bytes = VENDOR):
    md5 = hashlib.md5(flash).hexdigest()
    return BackupStore(tmp_path / "backups").save(MAC, flash, md5, {}, flash_size=len(flash))


def report_of(result, code: int = 0) -> dict:
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def app_file(tmp_path, name="app.bin", **kw) -> str:
    """A synthetic app-only image (what the Arduino IDE exports for 0x10000)."""
    fields = dict(project_name="my-app", version="1.0", idf_ver="v4.4.7")
    fields.update(date="Mar  1 2024", time="12:00:00", console_lines=["my app is up"])
    fields.update(size_hint=120_000, **kw)
    path = tmp_path / name
    path.write_bytes(app_image(**fields))
    return str(path)


# -- issue 18 item 3: rig cycle --firmware FILE@OFFSET ---------------------------------------------
def test_cycle_accepts_file_at_offset_and_an_app_only_image_boots_after_the_chip_erase(
    rig, tmp_path
):
    """The cycle erases the chip; bootloader and partition table come from the verified backup,
    so the app written alone boots (the default boot check: loaded from app0, no crash)."""
    backup = seed(tmp_path)
    app = app_file(tmp_path)
    report = report_of(rig("cycle", "--slot", SLOT, "--firmware", f"{app}@0x10000", "--json"))
    steps = {s["name"]: s for s in report["steps"]}
    plan = steps["boot plan"]
    assert [(i["name"], i["source"]) for i in plan["data"]["added"]] == [
        ("bootloader from the backup", f"backup {backup.id}"),
        ("partition table from the backup", f"backup {backup.id}"),
    ]
    boot = steps["boot check"]
    assert boot["data"]["check"] == "default" and boot["data"]["app_offset"] == 0x10000
    assert "my app is up" in boot["data"]["console"]
    assert "Grbl 1.1f" in steps["boot check original"]["data"]["console"]
    assert rig.flash() == VENDOR  # restored


# -- issue 18 item 5: an image's kind against its offset -------------------------------------------
@pytest.mark.parametrize(
    ("offset", "message"),
    [
        ("0x1000", "an app image at 0x1000, where the second-stage bootloader goes"),
        ("0x8000", "an app image at 0x8000, not the start of an app partition"),
        ("0x20000", "an app image at 0x20000, not the start of an app partition"),
    ],
)
def test_an_app_written_where_it_does_not_belong_is_refused_before_any_relay_moves(
    rig, tmp_path, offset, message
):
    seed(tmp_path)
    result = rig("write", "--slot", SLOT, f"{app_file(tmp_path)}@{offset}")
    assert result.exit_code == 2, result.output
    assert message in result.output and "app0 at 0x10000" in result.output
    assert not rig.touched()  # the slot was never opened


def test_a_bootloader_or_a_table_goes_only_where_it_belongs(rig, tmp_path):
    bootloader = tmp_path / "bootloader.bin"
    bootloader.write_bytes(VENDOR[0x1000:0x8000])
    result = rig("write", "--slot", SLOT, f"{bootloader}@0x10000")
    assert result.exit_code == 2 and "the ROM loads it from 0x1000" in result.output
    table = tmp_path / "partitions.bin"
    table.write_bytes(VENDOR[0x8000:0x8C00])
    result = rig("write", "--slot", SLOT, f"{table}@0x9000")
    assert result.exit_code == 2 and "the bootloader reads it at 0x8000" in result.output
    assert not rig.touched()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b[:12] + b"\x05" + b[13:], "chip id 5, not ESP32 (0)"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "SHA-256 digest does not match"),
    ],
)
def test_an_image_for_another_chip_or_with_a_bad_digest_is_refused_before_any_relay_moves(
    rig, tmp_path, change, message
):
    path = tmp_path / "bad.bin"
    path.write_bytes(change(custom_grbl_app()))
    for args in (("write", f"{path}@0x10000"), ("cycle", "--firmware", f"{path}@0x10000")):
        result = rig(args[0], "--slot", SLOT, *args[1:])
        assert result.exit_code == 2, result.output
        assert message in result.output
    assert not rig.touched()


# -- otadata ---------------------------------------------------------------------------------------
def test_a_write_without_erase_resets_otadata_that_points_at_app1(rig, tmp_path):
    """The board boots app1 (otadata seq 2); an app written to app0 would never run: the write
    resets otadata so that app0 boots."""
    flash = bytearray(VENDOR)
    flash[0x150000 : 0x150000 + len(custom_grbl_app())] = custom_grbl_app()
    seq = struct.pack("<I", 2)
    flash[0xE000:0xE020] = seq + b"\xff" * 24 + struct.pack("<I", zlib.crc32(seq, 0xFFFFFFFF))
    state = tmp_path / "state" / "sim" / "sim-flash"
    state.mkdir(parents=True)
    (state / f"{SLOT}.bin").write_bytes(bytes(flash))
    seed(tmp_path, bytes(flash))
    report = report_of(rig("write", "--slot", SLOT, f"{app_file(tmp_path)}@0x10000", "--json"))
    plan = next(s for s in report["steps"] if s["name"] == "boot plan")
    assert [i["name"] for i in plan["data"]["added"]] == ["otadata (selects app0)"]
    assert rig.flash()[0xE000:0x10000] == b"\xff" * 0x2000


# -- issue 18 item 5: a failed boot check in a cycle restores the backup ---------------------------
def test_a_cycle_whose_firmware_does_not_boot_restores_the_backup_and_says_so(rig, tmp_path):
    backup = seed(tmp_path)
    panic = "Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled."
    app = app_file(tmp_path, console_lines=[panic, "Rebooting..."], reset_reason=0xC)
    report = report_of(
        rig("cycle", "--slot", SLOT, "--firmware", f"{app}@0x10000", "--json"), code=1
    )
    names = [s["name"] for s in report["steps"]]
    assert names[-4:] == ["boot check", "restore", "verify original", "boot check original"]
    assert [s["ok"] for s in report["steps"][-4:]] == [False, True, True, True]
    assert f"the app at 0x10000 crashed: {panic}" in report["error"]
    assert f"restored backup {backup.id}" in report["error"]
    assert rig.flash() == VENDOR


# -- rig firmware add | list | show ----------------------------------------------------------------
def test_firmware_add_round_trips_through_list_and_show(rig, tmp_path):
    app = app_file(tmp_path, name="sketch.ino.bin")
    added = report_of(rig("firmware", "add", app, "--board", "l7x", "--json"))
    sha = hashlib.sha256((tmp_path / "sketch.ino.bin").read_bytes()).hexdigest()
    assert added["name"] == "sketch.ino" and added["parts"] == ["sketch.ino.bin@0x10000"]
    assert added["sha256"] == sha and added["console"] == "default check"
    stored = tmp_path / "sim-firmware" / "sketch.ino" / "sketch.ino.bin"
    assert stored.read_bytes() == (tmp_path / "sketch.ino.bin").read_bytes()
    listed = report_of(rig("firmware", "list", "--json"))["firmware"]
    assert [row["name"] for row in listed] == ["vendor-l7x", "custom-grbl", "sketch.ino"]
    assert {**listed[-1], "station": "sim", "simulated": True} == {**added, "files": "ok"}
    shown = report_of(rig("firmware", "show", "sketch.ino", "--json"))
    [part] = shown["parts"]
    assert shown["problems"] == [] and part["status"] == "ok" and part["sha256"] == sha
    [image] = part["images"]
    assert (image["kind"], image["address"], image["partition"]) == ("app", 0x10000, "app0")
    assert image["header"]["sha256_digest"] == "valid" and image["app"]["project"] == "my-app"
    # The pinned sha256 is checked on use: a file changed since is refused before any relay.
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    changed = rig("write", "--slot", SLOT, "sketch.ino")
    assert changed.exit_code == 2 and "the catalog pins" in changed.output
    assert rig("firmware", "show", "sketch.ino").exit_code == 2
    assert not rig.touched()


def test_firmware_add_refuses_what_the_rig_would_not_write_and_changes_nothing(rig, tmp_path):
    other_chip = tmp_path / "c3.bin"
    other_chip.write_bytes(custom_grbl_app()[:12] + b"\x05" + custom_grbl_app()[13:])
    result = rig("firmware", "add", str(other_chip), "--offset", "0x10000")
    assert result.exit_code == 2 and "chip id 5, not ESP32" in result.output
    result = rig("firmware", "add", f"{app_file(tmp_path)}@0x1000", "--name", "x")
    assert result.exit_code == 2 and "where the second-stage bootloader goes" in result.output
    result = rig("firmware", "add", app_file(tmp_path), "--name", "custom-grbl")
    assert result.exit_code == 2 and "already has a firmware named 'custom-grbl'" in result.output
    assert not (tmp_path / "sim-firmware").exists()


def test_firmware_add_takes_an_esp_idf_build_from_its_flasher_args(rig, tmp_path):
    build = tmp_path / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "bootloader" / "bootloader.bin").write_bytes(VENDOR[0x1000 : 0x1000 + 19680])
    (build / "partitions.bin").write_bytes(VENDOR[0x8000:0x8C00])
    (build / "hello.bin").write_bytes(custom_grbl_app())
    files = {"0x1000": "bootloader/bootloader.bin", "0x8000": "partitions.bin"}
    files["0x10000"] = "hello.bin"
    (build / "flasher_args.json").write_text(json.dumps({"flash_files": files}))
    added = report_of(rig("firmware", "add", str(build / "flasher_args.json"), "--json"))
    assert added["name"] == "hello" and added["parts"] == [
        "bootloader.bin@0x1000",
        "partitions.bin@0x8000",
        "hello.bin@0x10000",
    ]


def test_an_image_that_cannot_boot_is_refused_before_the_erase(rig, tmp_path):
    """A DevKitC with an erased flash: its backup holds no bootloader and no partition table,
    and its board type has no layout: an app alone cannot boot after the chip erase. The cycle
    says why and stops before the erase (exit 1: the board was connected and backed up)."""
    blank = b"\xff" * 0x400000
    devkit_mac = format_mac(mac_from_seed("devkit:devkitc-1"))
    md5 = hashlib.md5(blank).hexdigest()
    BackupStore(tmp_path / "backups").save(devkit_mac, blank, md5, {}, flash_size=len(blank))
    app = app_file(tmp_path)
    result = rig("cycle", "--slot", "devkitc-1", "--firmware", f"{app}@0x10000", "--json")
    report = report_of(result, code=1)
    assert [s["name"] for s in report["steps"]] == ["identify", "backup", "boot plan"]
    assert report["error"].startswith(
        "app.bin cannot boot after these steps: the flash would have no bootloader at 0x1000, "
        "and the backup has none; the flash would have no partition table at 0x8000"
    )
    assert report["error"].endswith(
        "refusing before anything is erased or written (--force to do it anyway)"
    )
