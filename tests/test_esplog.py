"""esptool's process-wide logger, captured per session (and nested) instead of printed."""

from __future__ import annotations

from esptool.logger import log

from rig.esplog import captured


def test_captured_sessions_nest_and_restore(capsys):
    progress = []
    with captured() as outer:
        log.print("outer 1")
        with captured(lambda d, t, p: progress.append((d, t, p))) as inner:
            log.print("inner")
            log.warning("careful")
            log.progress_bar(512, 1024, prefix="Writing at 0x00010000 ")
        log.print("outer 2")
    assert outer.lines == ["outer 1", "outer 2"]
    assert inner.lines == ["inner", "WARNING: careful"]
    assert progress == [(512, 1024, "Writing at 0x00010000")]
    assert "outer" not in capsys.readouterr().out  # nothing reached stdout


def test_esptool_hex_dumps_are_skipped_only_inside_rig_sessions():
    from esptool.loader import HexFormatter

    data = bytes(range(40))
    stock = str(HexFormatter(data))
    assert "0001020304050607" in stock
    with captured():
        with captured():
            assert f"{HexFormatter(data)}" == ""  # nested sessions too
        assert f"{HexFormatter(data)}" == ""
    assert str(HexFormatter(data)) == stock  # esptool itself untouched afterwards
