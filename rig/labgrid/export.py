"""The gated export class: a slot's ``rig serve`` runs only while a labgrid place holds the slot.

A stock ``NetworkSerialPort`` entry in an exporter config publishes a port that is always there:
labgrid's locks protect only what the exporter itself starts on acquire, so plain esptool could
still connect while someone else held the place. ``RigServePort`` entries therefore get an active
export (:class:`RigServeExport`, shaped like labgrid's own ``SerialPortExport``, which starts
ser2net on acquire): on acquire it starts ``rig serve --slot ID --port 0`` for the slot and
publishes its port as a ``NetworkSerialPort`` (stock clients, ``SerialDriver`` and esptool need
nothing new); on release it stops it, which disconnects the client and releases the relays.
labgrid's coordinator gives an acquire 10 s, so ``rig serve`` starts with ``--defer-backup`` (a
dump the board's flash needs waits for the first connect) and must be serving within
:data:`ACQUIRE_WINDOW`, or the acquire is refused.

``rig serve`` runs with ``--until-stdin-closes`` and its stdin a pipe from the exporter: when the
exporter dies, however it dies, the pipe closes and ``rig serve`` stops cleanly - a client
mid-job loses its connection (the job fails with a clear error) and the Pi's relays are released.

A slot that a local ``rig`` command holds (its flock), or whose board ``rig serve`` cannot vouch
for (another MAC, no verified backup with ``--backup require``, no port), makes ``rig serve`` exit
1 at start-up. labgrid's stock ``start()`` would mark the resource ``<broken>`` until the exporter
restarts; here the acquire is refused (the coordinator tells the client it failed) and the
reason - e.g. ``slot l7x-2 is in use by PID 4242 (rig relay ...)`` - is published in the
resource's ``extra`` as ``rig_refused``, where ``labgrid-client show`` and the rig's client
(:mod:`rig.labgrid.client`) read it. Only a bad config (exit 2) or a ``rig serve`` that does not
answer marks the resource broken.

labgrid has no plugin hook for export classes (``labgrid.remote.exporter.exports`` is a module
dict), so the rig runs labgrid's exporter through its own entry point, :func:`main`
(``rig labgrid exporter``), after registering the class.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # before grpc loads: the export forks

import selectors  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import attr  # noqa: E402
from labgrid.remote import exporter as lg_exporter  # noqa: E402
from labgrid.remote.common import ResourceEntry  # noqa: E402

from rig import config  # noqa: E402
from rig.board.station import release_abandoned_slot  # noqa: E402
from rig.errors import EXIT_BAD_INPUT  # noqa: E402
from rig.hardware.ports import PortNotFound, PortSpec  # noqa: E402
from rig.labgrid.config import SERVE_CLASS  # noqa: E402
from rig.operations.batch.results import describe_relays  # noqa: E402

__all__ = ["RigServeExport", "SlotPresence", "main"]

# labgrid's coordinator waits 10 s for an exporter to answer an acquire (ExporterCommand.wait in
# labgrid/remote/coordinator.py) and then gives up on it, while the exporter, once it answers,
# holds the resource for the place anyway: an acquire answered late leaves the resource acquired
# by a place the coordinator never gave it to, its rig serve running, until the exporter
# restarts. So rig serve must have vouched for the board within this window, or the acquire is
# refused (rig serve stopped, the resource free; the rig's clients try again). rig serve checks
# with --defer-backup to fit: identify and whole-flash MD5, no dump (the first connect dumps).
# 3 s are left for stopping a rig serve that overran.
ACQUIRE_WINDOW = 7.0
STOP_TIMEOUT = 10.0  # s: rig serve disconnects its client and releases the relays, then exits
EXIT_GRACE = 2.0  # s: a rig serve that refused to serve exits by itself within this
PRESENCE_EVERY = 2.0  # s between checks that a real slot's serial port is there


class Refused(lg_exporter.InvalidResourceRequestError):
    """``rig serve`` would not serve the slot now (busy, unvouched board, no port): the acquire
    is refused and the resource stays usable."""


class SlotPresence:
    """The exporter's local view of a slot (labgrid's ``local`` resource): available while the
    slot is simulated, or its serial port or USB serial number is present."""

    def __init__(self, station: str, slot: str, **_: object) -> None:
        self.station_path = str(Path(station).resolve())
        self.station = config.load_station(self.station_path)
        self.slot = self.station.slot(slot)
        self.board_type = self.station.board_of(self.slot)
        self.avail = False
        self._checked = 0.0

    def poll(self) -> None:
        if time.monotonic() - self._checked < PRESENCE_EVERY:
            return
        self._checked = time.monotonic()
        if self.slot.simulated is not None:
            self.avail = True
            return
        try:
            url = PortSpec(self.slot.port, self.slot.usb_serial).resolve()
            self.avail = "://" in url or os.path.exists(url)
        except PortNotFound:
            self.avail = False


@attr.s(eq=False)
class RigServeExport(lg_exporter.ResourceExport):
    """``RigServePort: {station: FILE, slot: ID, bind: 127.0.0.1, backup: auto}`` in an exporter
    config: the slot's ``rig serve`` while a place holds it, published as a NetworkSerialPort."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        params = self.local_params
        self.bind = str(params.get("bind", "127.0.0.1"))
        self.backup = str(params.get("backup", "auto"))
        self.local = SlotPresence(params["station"], params["slot"])
        self.data["cls"] = "NetworkSerialPort"
        self.child: subprocess.Popen | None = None
        self.port: int | None = None
        self.refused = ""

    def poll(self) -> bool:
        """labgrid's exporter polls every resource (every 0.25 s): a rig serve that died while
        a place held the slot (the OOM killer, a crash) is noticed here, its relays released
        (:meth:`_end`) and its port withdrawn - not left energised until the place is
        released."""
        child = self.child
        if child is not None and child.poll() is not None:
            self.child, self.port = None, None
            code = self._end(child)
            slot = self.local.slot.id
            self.logger.error("rig serve for %s ended while serving (exit %s)", slot, code)
        return super().poll()

    # -- what clients see ----------------------------------------------------------------------
    def _get_start_params(self) -> dict:
        return {"station": self.local.station_path, "slot": self.local.slot.id}

    def _get_params(self) -> dict:
        local = self.local
        return {
            "host": self.host,
            "port": self.port,
            "speed": local.board_type.serial.console_baud,
            "protocol": "rfc2217",
            "extra": {
                "rig_station": local.station.name,
                "rig_slot": local.slot.id,
                "rig_board": local.slot.board,
                "rig_expected_mac": local.slot.expected_mac or "",
                "rig_refused": self.refused,
            },
        }

    # -- acquire: start rig serve, or refuse without breaking the resource -----------------
    def acquire(self, place_name: str, *args, **kwargs) -> None:
        if self.broken:
            raise lg_exporter.BrokenResourceError(f"cannot acquire broken resource: {self.broken}")
        ResourceEntry.acquire(self, place_name)
        try:
            self.poll()
        except Refused:
            self.data["acquired"] = None  # free again; the reason stays in extra.rig_refused
            self.poll()
            raise

    def start(self) -> None:
        start_params = self._get_start_params()
        try:
            self._start(start_params)
        except Refused as err:
            self.refused = str(err)
            self.logger.warning("acquire refused: %s", err)
            raise
        except Exception as err:
            self.broken = "start failed"
            self.logger.exception("failed to start rig serve for %s", start_params)
            raise lg_exporter.BrokenResourceError(f"rig serve did not start: {err}") from err
        self.refused = ""
        self.start_params = start_params

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "rig.cli.serve", "--station", self.local.station_path]
        cmd += ["--slot", self.local.slot.id, "--port", "0", "--bind", self.bind]
        cmd += ["--backup", self.backup, "--defer-backup", "--until-stdin-closes"]
        if self.bind not in ("127.0.0.1", "localhost", "::1"):
            cmd.append("--allow-remote")  # the operator chose it in the exporter config
        return cmd

    @property
    def log_path(self) -> Path:
        """rig serve's log for this slot: in the station's state dir (``labgrid/<slot>.log``),
        a file rather than a pipe, so it survives the exporter and a dead exporter's pipe cannot
        break rig serve's clean stop."""
        return self.local.station.state_dir / "labgrid" / f"{self.local.slot.id}.log"

    def _start(self, start_params: dict) -> None:
        assert self.child is None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            offset = log.tell()
            child = subprocess.Popen(
                self._command(),
                stdin=subprocess.PIPE,  # our end closes when this process dies: rig serve stops
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # a Ctrl-C at the exporter's terminal is the exporter's
            )
        line = _first_line(child, ACQUIRE_WINDOW)
        if line is None:  # still checking: too late for the coordinator
            self._end(child)
            raise Refused(
                f"{self.local.station.name}/{self.local.slot.id}: rig serve did not vouch for "
                f"the board within {ACQUIRE_WINDOW:.0f} s, the time labgrid's coordinator gives "
                f"an acquire (stopped; see {self.log_path})"
            )
        if line.startswith("SERVE "):
            self.child = child
            self.port = int(line.rsplit(":", 1)[1])
            self.logger.info("started rig serve for %s on port %d", self.local.slot.id, self.port)
            return
        code = self._end(child, exiting=True)
        with self.log_path.open() as log:
            log.seek(offset)
            reason = _reason(log.read().splitlines()) or f"rig serve exited with status {code}"
        if code == EXIT_BAD_INPUT or code is None:
            raise RuntimeError(reason)
        raise Refused(f"{self.local.station.name}/{self.local.slot.id}: {reason}")

    def _stop(self, start_params: dict) -> None:
        child, self.child = self.child, None
        port, self.port = self.port, None
        if child is None:
            return
        code = self._end(child)
        self.logger.info("stopped rig serve for %s (port %s, exit %s)", start_params, port, code)

    def _end(self, child: subprocess.Popen, *, exiting: bool = False) -> int | None:
        """Stop ``child`` and return its exit status; ``exiting``: it ended its stdout without
        serving (its error is in the log), so its own exit is awaited first.

        A rig serve that did not end by itself - killed after ignoring SIGTERM, or dead by a
        signal (the OOM killer, a crash) - released nothing, and a Pi's kernel keeps the relay
        lines driven: the exporter releases the slot's relays itself
        (:func:`~rig.board.station.release_abandoned_slot`)."""
        if exiting:
            # it closes stdout a moment before it is gone: a signal now would replace its status
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(EXIT_GRACE)
        code = _stop_child(child)
        if code is not None and code >= 0:
            return code
        slot = self.local.slot.id
        try:
            states = release_abandoned_slot(self.local.station, slot)
        except Exception as err:  # SlotBusy: another process holds it, and its relays
            self.logger.error(
                "rig serve for %s ended with %s; relays not released: %s", slot, code, err
            )
            return code
        if any(states.values()):  # a relay still reads closed: say so, not "released"
            self.logger.error(
                "rig serve for %s ended with %s; releasing its relays failed (%s): "
                "rig relay --release-all",
                slot,
                code,
                describe_relays(states),
            )
        else:
            self.logger.warning(
                "rig serve for %s ended with %s; the exporter released its relays (%s)",
                slot,
                code,
                describe_relays(states),
            )
        return code


def _first_line(child: subprocess.Popen, timeout: float) -> str | None:
    """rig serve's first stdout line (``SERVE <slot> <url>``), "" if its stdout ends first (it is
    exiting: an error), None if ``timeout`` passes first (it is still checking the board)."""
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    return child.stdout.readline().strip()


def _stop_child(child: subprocess.Popen) -> int | None:
    """Close its stdin and TERM it (it releases the relays and exits 0); KILL if it hangs."""
    try:
        child.stdin.close()
    except OSError:
        pass
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        return child.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return None


def _reason(log: list[str]) -> str:
    """The error rig serve printed (``failed: ...`` / ``error: ...``), without the prefix."""
    for line in reversed(log):
        for prefix in ("failed: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return ""


def main(argv: list[str] | None = None) -> None:
    """labgrid's exporter (same options: ``-c``, ``-n``, ``--hostname``, ``--isolated``, the
    config file) with ``RigServePort`` registered."""
    lg_exporter.exports[SERVE_CLASS] = RigServeExport
    sys.argv = ["rig labgrid exporter", *(sys.argv[1:] if argv is None else argv)]
    lg_exporter.main()


if __name__ == "__main__":
    main()
