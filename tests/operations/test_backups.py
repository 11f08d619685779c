"""The backup store: verified only, never overwritten, nothing half-written counts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from rig.operations.backups import BackupError, BackupStore

MAC = "24:0a:c4:12:34:56"


def save(store, data=b"\x01\x02" * 1000, md5=None, flash_size=None, **meta):
    md5 = md5 or hashlib.md5(data).hexdigest()
    size = len(data) if flash_size is None else flash_size
    return store.save(MAC, data, md5, {"slot": "l7x-1", **meta}, flash_size=size)


def test_saved_backup_is_verified_listed_and_readable(tmp_path):
    store = BackupStore(tmp_path)
    backup = save(store)
    assert backup.path.parent.name == "24-0a-c4-12-34-56"
    assert backup.path.name.endswith(f"-{backup.sha256[:12]}.bin")
    meta = json.loads(backup.path.with_suffix(".json").read_text())
    assert meta["verified"] is True and meta["mac"] == MAC and meta["slot"] == "l7x-1"
    assert meta["md5"] == hashlib.md5(backup.read()).hexdigest()
    assert [b.id for b in store.list(MAC)] == [backup.id]
    assert store.latest(MAC).id == backup.id
    assert store.get(backup.sha256[:10]).id == backup.id
    assert not list(tmp_path.rglob(".*.bin.*"))  # no temp files left behind


@pytest.mark.parametrize(
    ("data", "flash_size"),
    [(b"", 0), (b"", 0x400000), (b"\xff" * 0x200000, 0x400000), (b"\xff" * 0x2000, 0x1000)],
    ids=["empty-size-0", "empty", "half", "longer"],
)
def test_a_dump_that_is_not_the_whole_flash_is_not_a_backup(tmp_path, data, flash_size):
    store = BackupStore(tmp_path)
    with pytest.raises(BackupError, match="must hold the whole flash"):
        save(store, data, flash_size=flash_size)
    assert store.list() == []
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_dump_that_differs_from_the_chip_md5_is_not_a_backup(tmp_path):
    store = BackupStore(tmp_path)
    with pytest.raises(BackupError, match="does not match the chip's MD5"):
        save(store, md5="0" * 32)
    assert store.list() == []
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_backups_are_never_overwritten(tmp_path, monkeypatch):
    store = BackupStore(tmp_path)
    first = save(store)
    original = first.path.read_bytes()
    # Same second, same content: the name would collide - it must fail, not replace.
    import rig.operations.backups as backups

    stamp = first.path.stem.rsplit("-", 1)[0]

    class FrozenNow:
        @staticmethod
        def now(tz):
            from datetime import datetime

            return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=tz)

    monkeypatch.setattr(backups, "datetime", FrozenNow)
    with pytest.raises(BackupError, match="never overwritten"):
        save(store)
    assert first.path.read_bytes() == original
    assert len(store.list(MAC)) == 1


def test_a_sidecarless_or_tampered_file_is_not_a_verified_backup(tmp_path):
    store = BackupStore(tmp_path)
    backup = save(store)
    (backup.path.parent / "20990101T000000.000000Z-deadbeef0000.bin").write_bytes(b"x")
    assert len(store.list(MAC)) == 1  # no sidecar, not listed
    os.chmod(backup.path, 0o644)
    backup.path.write_bytes(b"tampered")
    assert not backup.intact()
    assert store.latest(MAC) is None  # a backup whose bytes changed is not relied on


def test_unwritable_store_is_refused_up_front(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackupError, match="not writable"):
        BackupStore(blocker / "backups").check_writable()


def test_a_store_without_hard_links_is_refused_up_front(tmp_path, no_hard_links_in):
    """Backups are linked into place (never overwriting one): without hard links every dump
    would fail only after it was read, so the store refuses at once, naming why."""
    root = no_hard_links_in(tmp_path / "fat")
    with pytest.raises(BackupError, match="cannot hold hard links") as err:
        BackupStore(root).check_writable()
    assert str(root) in str(err.value) and "Operation not permitted" in str(err.value)
    assert not [p for p in root.rglob("*")], "the probe was left behind"
    BackupStore(tmp_path / "linux").check_writable()  # elsewhere links work


def test_latest_trusts_the_sidecar_mac_not_the_folder(tmp_path):
    store = BackupStore(tmp_path)
    data = b"other board"
    other = store.save(
        "24:0a:c4:ab:cd:ef", data, hashlib.md5(data).hexdigest(), {}, flash_size=len(data)
    )
    folder = tmp_path / "24-0a-c4-12-34-56"  # this board's folder, holding no backup of it
    folder.mkdir()
    for suffix in (".bin", ".json"):
        shutil.copyfile(
            other.path.with_suffix(suffix), folder / other.path.with_suffix(suffix).name
        )
    assert store.latest(MAC) is None
    assert [b.mac for b in store.list(MAC)] == []
    mine = save(store)
    assert store.latest(MAC).id == mine.id
    assert {b.mac for b in store.list("24:0A:C4:AB:CD:EF")} == {"24:0a:c4:ab:cd:ef"}


def test_an_ambiguous_id_prefix_names_the_candidates(tmp_path):
    store = BackupStore(tmp_path)
    data = b"the same flash content on two boards"
    md5 = hashlib.md5(data).hexdigest()
    first = store.save(MAC, data, md5, {}, flash_size=len(data))
    second = store.save("24:0a:c4:ab:cd:ef", data, md5, {}, flash_size=len(data))
    with pytest.raises(BackupError, match="ambiguous") as err:
        store.get(first.sha256[:8])
    assert first.id in str(err.value) and second.id in str(err.value)
    assert store.get(first.id) == first and store.get(second.path.stem) == second
    with pytest.raises(BackupError, match="no backup"):
        store.get("")
