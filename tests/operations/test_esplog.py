"""esptool's process-wide logger, captured per session (and nested) instead of printed."""

from __future__ import annotations

import threading

from esptool.logger import log

from rig.operations.esplog import captured


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


def test_captures_in_two_threads_keep_their_own_lines_and_leave_no_logger_behind():
    """esptool's logger is process-wide; captures in two threads overlap in any order (here: the
    first one in is the first one out, which a save-and-restore of the global logger gets wrong).
    Each capture gets only its own thread's lines, and esptool's logger is the original after."""
    from esp_pylib.logger import EspLog

    original = EspLog.instance
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    lines: dict[str, list[str]] = {}

    def first() -> None:
        with captured() as logger:
            a_in.set()
            assert b_in.wait(10)
            log.print("from a")
        lines["a"] = logger.lines
        a_out.set()

    def second() -> None:
        assert a_in.wait(10)
        with captured() as logger:
            b_in.set()
            assert a_out.wait(10)
            log.print("from b")
        lines["b"] = logger.lines

    run_in_threads(first, second)
    assert lines == {"a": ["from a"], "b": ["from b"]}
    assert EspLog.instance is original


def run_in_threads(*fns) -> None:
    """Run each fn in its own thread; re-raise the first failure."""
    errors: list[BaseException] = []

    def run(fn) -> None:
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_two_flasher_sessions_in_threads_keep_their_own_log_lines(sim_station_config):
    """Two sim slots read concurrently, one session per thread. The reads are interleaved on
    purpose: the first session's read is inside esptool when the second one's starts, and ends
    first. esptool's lines (its own connect notes, a line logged from inside each read) land in
    the session that caused them, and esptool's logger is the original afterwards."""
    from esp_pylib.logger import EspLog

    from rig.board.station import LiveStation
    from rig.operations.session import FlasherSession

    original = EspLog.instance
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    with LiveStation(sim_station_config()) as st:
        slots = {sid: st.open_slot(sid) for sid in ("l7x-1", "l7x-2")}
        sessions = {sid: FlasherSession(slot.board) for sid, slot in slots.items()}
        read: dict[str, bytes] = {}

        def reader(sid: str, inside: threading.Event, wait_for: threading.Event, done=None):
            def step() -> None:
                session = sessions[sid]
                with session:
                    if sid == "l7x-2":
                        assert first_in.wait(20)

                    def on_block(_done: int, _total: int) -> None:
                        if not inside.is_set():
                            inside.set()
                            assert wait_for.wait(20)
                            log.print(f"block read on {session.port}")

                    read[sid] = session.read(0, 0x10000, on_block)
                if done is not None:
                    done.set()

            return step

        run_in_threads(
            reader("l7x-1", first_in, second_in, first_done),
            reader("l7x-2", second_in, first_done),
        )
        flash = {sid: st.simulated_board(sid).flash.read(0, 0x10000) for sid in slots}
        ports = {sid: s.port for sid, s in sessions.items()}
    assert read == flash
    for sid, session in sessions.items():
        (other,) = set(ports.values()) - {ports[sid]}
        assert f"block read on {ports[sid]}" in session.log_lines
        assert any(ports[sid] in line for line in session.log_lines if "VID/PID" in line)
        assert not [line for line in session.log_lines if other in line], session.log_lines
    assert EspLog.instance is original


def test_a_session_read_does_not_hex_format_the_bytes_it_reads(sim_station_config, monkeypatch):
    """esptool builds its trace text before deciding not to print it: its SLIP reader formats
    every byte read with ``HexFormatter`` (hence ``hexify``) even with tracing off, which was
    most of the CPU of a read. Through a rig session a read formats no data: what ``hexify``
    sees is the same for 4 KB and 64 KB (the read's MD5 digest), not proportional to the size.
    ``loader.hexify`` is the name ``HexFormatter`` calls; it is wrapped after the rig's set-up."""
    from esptool import loader

    from rig.board.station import LiveStation
    from rig.operations.session import FlasherSession

    formatted: list[int] = []  # bytes handed to hexify, per call
    real = loader.hexify

    def counting(data, uppercase=True):
        formatted.append(len(data))
        return real(data, uppercase)

    monkeypatch.setattr(loader, "hexify", counting)
    with LiveStation(sim_station_config()) as st:
        slot = st.open_slot("l7x-1")
        flash = st.simulated_board("l7x-1").flash.read(0, 0x10000)
        with FlasherSession(slot.board) as session:
            hexified = {}
            for size in (0x1000, 0x10000):
                formatted.clear()
                assert session.read(0, size) == flash[:size]
                hexified[size] = sum(formatted)
    assert hexified[0x10000] == hexified[0x1000] <= 32, hexified
