"""labgrid drivers and a strategy for the rig's slots: name ``rig.labgrid.drivers`` under
``imports:`` in a labgrid environment config, and an L7X is driven like any other target::

    imports: [rig.labgrid.drivers]
    targets:
      main:
        resources:
          RemotePlace: {name: pi-a-l7x-1}
        drivers:
          RigPowerDriver: {}
          RigFlashDriver: {backup: auto}
          RigStrategy: {image: custom-grbl}

The place's resources are the exporter's (:mod:`rig.labgrid.config`): a ``NetworkSerialPort`` (the
slot's ``rig serve``) and a ``RigSlot`` (station, slot, board type, relay roles, expected MAC).

* :class:`RigPowerDriver` (Power, Reset) - the relay-strap driver: ``on`` / ``off`` / ``cycle`` /
  ``reset`` and ``download`` play the board type's sequences on the Pi through the slot's port.
  The relays stay on the Pi inside ``rig serve`` (a driver toggling single relays from here would
  bypass the slot lock and the board's sequences); the driver's board is a remote slot
  (:class:`rig.board.remote.RemoteBoard`): DTR/RTS patterns on the one connection it holds while
  active, which ``rig serve`` decodes into the sequences.
* :class:`RigFlashDriver` (Bootstrap) - esptool through the rig's verified flasher session: the
  MAC guard (the slot's expected MAC), the backup policy before anything destructive (``auto``:
  a verified backup of this MAC matching the chip, else one is taken; ``require``; ``skip``
  needs ``force``), the verified fast write; ``labgrid-client bootstrap IMAGE`` works.
* :class:`RigStrategy` - states ``off`` / ``flashed`` / ``running``. There is no lasting
  ``download`` state: download mode lives inside one flasher session (an L7X in download mode is
  powered only while its button is held). ``running`` boots the image and checks the console
  for the firmware's banner (the catalog entry's ``console`` regex, or ``console:``).
"""

from __future__ import annotations

import enum

import attr
from labgrid.driver import Driver
from labgrid.factory import target_factory
from labgrid.protocol import BootstrapProtocol, PowerProtocol, ResetProtocol
from labgrid.resource import Resource
from labgrid.step import step
from labgrid.strategy import Strategy, StrategyError, never_retry
from labgrid.util.proxy import proxymanager

from rig import config
from rig.board.remote import RemoteBoard, remote_url
from rig.errors import OperationError
from rig.labgrid.client import Leased
from rig.labgrid.station import lab_board_type
from rig.operations.backups import BackupStore
from rig.operations.bootcheck import BootCheck, boot_check
from rig.operations.cycle import install
from rig.operations.fastwrite import WriteStats
from rig.operations.images import check_placement, layout_table, resolve_images
from rig.operations.report import Report
from rig.operations.safeguards import BackupCheck, BackupPolicy, prepare_backups
from rig.operations.session import FlasherSession, Identity
from rig.operations.steps import verify_images

__all__ = ["RigFlashDriver", "RigPowerDriver", "RigSlot", "RigStrategy", "Status"]

DEFAULT_BACKUPS = "~/.local/share/rig/lab-backups"


@target_factory.reg_resource
@attr.s(eq=False)
class RigSlot(Resource):
    """A rig slot's facts, passed through by the exporter (``rig labgrid exporter-config``)."""

    station = attr.ib(default="", converter=str)
    slot = attr.ib(default="", converter=str)
    board = attr.ib(default="", converter=str)
    relays = attr.ib(default="", converter=str)  # roles, comma-separated (labgrid: scalars only)
    expected_mac = attr.ib(default=None)


@target_factory.reg_driver
@attr.s(eq=False)
class RigPowerDriver(Driver, PowerProtocol, ResetProtocol):
    """The board type's sequences on the Pi, through the slot's ``rig serve`` (see module doc).

    ``station``: a station file on this side whose board types (and their firmware catalog)
    to use; default: the shipped board types with the lab client's catalog
    (``$RIG_LAB_FIRMWARE``, else ``~/.local/share/rig/lab-firmware``: see
    :func:`rig.labgrid.station.lab_board_type`) - never the simulated station's synthetic images,
    which only simulated boards understand.
    """

    bindings = {"port": "NetworkSerialPort", "slot": "RigSlot"}
    station = attr.ib(default=None)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.board: RemoteBoard | None = None
        self._on: bool | None = None

    @property
    def board_type(self) -> config.BoardType:
        if not self.station:
            leased = Leased(
                place=self.slot.slot,
                url="rfc2217://localhost:1",  # the station file needs one; never opened
                board=self.slot.board,
                station=self.slot.station,
                slot=self.slot.slot,
                expected_mac=self.slot.expected_mac or None,
                waited=0.0,
            )
            return lab_board_type(leased)
        station = config.load_station(self.station)
        try:
            return station.boards[self.slot.board]
        except KeyError:
            raise OperationError(
                f"{self.slot.slot}: station {station.name} has no {self.slot.board} slot to take "
                "the board type from (RigPowerDriver: station: FILE)"
            ) from None

    def on_activate(self) -> None:
        host, port = proxymanager.get_host_and_port(self.port)
        url = remote_url(f"rfc2217://{host}:{port}")
        self.board = RemoteBoard(f"{self.slot.station}/{self.slot.slot}", self.board_type, url)

    def on_deactivate(self) -> None:
        if self.board is not None:
            self.board.disconnect()  # rig serve releases every relay of the slot
        self.board = None

    @Driver.check_active
    @step()
    def on(self) -> None:
        self.board.run()
        self._on = True

    @Driver.check_active
    @step()
    def off(self) -> None:
        self.board.off()
        self._on = False

    @Driver.check_active
    @step()
    def cycle(self) -> None:
        self.off()
        self.on()

    @Driver.check_active
    def get(self) -> bool | None:
        """What this driver last did (the relays cannot be read back over RFC 2217)."""
        return self._on

    @Driver.check_active
    @step()
    def reset(self) -> None:
        self.on()

    @Driver.check_active
    @step()
    def download(self):
        """Into ROM download mode (the straps), confirmed by the ROM's banner or a SYNC."""
        self._on = True
        return self.board.download_mode()


@target_factory.reg_driver
@attr.s(eq=False)
class RigFlashDriver(Driver, BootstrapProtocol):
    """esptool through the rig's verified flasher session on the power driver's board."""

    bindings = {"power": RigPowerDriver}
    backups = attr.ib(default=DEFAULT_BACKUPS, converter=str)
    backup = attr.ib(default="auto", converter=str)
    force = attr.ib(default=False, converter=bool)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.last_backup: BackupCheck | None = None

    @property
    def store(self) -> BackupStore:
        return BackupStore(self.backups)

    def on_activate(self) -> None:
        prepare_backups(self.store, self.backup, self.force)  # bad policy: before any line moves

    def _session(self) -> FlasherSession:
        slot = self.power.slot
        return FlasherSession(self.power.board, expected_mac=slot.expected_mac or None)

    @Driver.check_active
    @step()
    def identify(self) -> Identity:
        with self._session() as session:
            return session.identity

    @Driver.check_active
    @step(args=["filename"])
    def load(self, filename: str) -> WriteStats:
        """Write ``filename`` - a catalog firmware name or ``FILE@OFFSET`` (a plain file goes to
        the app offset, as ``rig write`` does) - after the backup policy, verified by the chip's
        MD5."""
        board = self.power.board
        images = resolve_images([filename], board.type)
        check_placement(images, layout_table(board.type) or None, force=self.force)
        meta = {"station": self.power.slot.station, "slot": self.power.slot.slot, "via": "labgrid"}
        policy = BackupPolicy(self.store, self.backup, meta)
        report = Report("write", self.power.slot.slot)
        with self._session() as session:
            check, plan, stats = install(
                report, session, images, policy, board.type, force=self.force
            )
            verify_images(session, plan.images)
        self.last_backup = check
        return stats


class Status(enum.Enum):
    unknown = 0
    off = 1
    flashed = 2
    running = 3


@target_factory.reg_driver
@attr.s(eq=False)
class RigStrategy(Strategy):
    """off / flashed / running for a rig slot (see module doc)."""

    bindings = {"power": RigPowerDriver, "flash": RigFlashDriver}
    image = attr.ib(default=None)
    console = attr.ib(default=None)  # regex; default: the catalog firmware's banner
    status = attr.ib(default=Status.unknown)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.boot: BootCheck | None = None

    def _banner(self) -> str:
        if self.console:
            return str(self.console)
        try:
            return self.power.board_type.firmware_named(str(self.image)).console
        except KeyError:
            raise StrategyError(f"{self.image} is no catalog firmware: give console:") from None

    @never_retry
    @step(args=["status"])
    def transition(self, status, *, step):  # noqa: ARG002 - labgrid's step signature
        if not isinstance(status, Status):
            status = Status[status]
        if status is Status.unknown:
            raise StrategyError(f"can not transition to {status}")
        if status is self.status:
            return
        self.target.activate(self.power)
        if status is Status.off:
            self.power.off()
        elif status is Status.flashed:
            if self.image is None:
                raise StrategyError("RigStrategy needs image: (a catalog name or FILE@OFFSET)")
            self.target.activate(self.flash)
            self.flash.load(str(self.image))
            self.power.off()
        elif status is Status.running:
            if self.status is not Status.flashed:
                self.transition(Status.flashed)
            self.boot = boot_check(self.power.board, self._banner())
            if not self.boot.ok:
                raise StrategyError(
                    f"no {self.boot.pattern!r} on the console after {self.boot.seconds:.1f} s: "
                    f"{self.boot.console[-300:]!r}"
                )
        self.status = status

    def force(self, status) -> None:
        self.status = status if isinstance(status, Status) else Status[status]
