"""A faithful fake of the libgpiod v2 Python bindings (PyPI ``gpiod`` 2.x) over a fake kernel.

Same public names and behaviour as the real module for what a GPIO output user touches:
``gpiod.Chip`` (``get_info``, ``line_offset_from_id``, ``get_line_info``, ``request_lines``,
context manager), ``gpiod.request_lines``, ``gpiod.is_gpiochip_device``, ``gpiod.LineSettings``,
``gpiod.LineRequest`` (``set_value(s)``, ``get_value(s)``, ``release``), ``gpiod.ChipInfo``,
``gpiod.LineInfo``, the exceptions, and the ``gpiod.line`` submodule with ``Value``,
``Direction``, ``Bias``, ``Drive``, ``Edge``, ``Clock`` (as in the real package, these enums are
*not* exported at the top level).

Behind it a :class:`Kernel` holds the chips, each line's physical level, direction, active-low
flag, and whether (and by whom) it is requested, and rejects misuse as the kernel and the
bindings do: a line requested twice -> ``OSError(EBUSY)``; an unknown path ->
``FileNotFoundError``; an unknown line name -> ``FileNotFoundError`` (ENOENT) from
``line_offset_from_id``; an offset past the chip -> ``ValueError``; using a released request ->
``RequestReleasedError``; a closed chip -> ``ChipClosedError``; ``set_value`` on an input line
-> ``PermissionError`` (EPERM, as the GPIO_V2_LINE_SET_VALUES ioctl answers).

On release, a stock Raspberry Pi kernel keeps the line an output at its last level (only the
request and the active-low flag go); ``Kernel(strict=True)`` models ``dtparam=strict_gpiod``,
where a released line reverts to an input.

Use: ``kernel = fakes.gpiod.boot("pi5", dev_dir=tmp_path)``, then put this module in
``sys.modules["gpiod"]`` (and ``gpiod.line`` in ``sys.modules["gpiod.line"]``).

Across processes: ``boot(..., state=FILE)`` keeps the kernel's line state in FILE (JSON, every
access under an ``flock``), and a process that imports this module as ``gpiod`` with
``FAKE_GPIOD_STATE=FILE`` in its environment (and this directory on ``PYTHONPATH``) drives the
same lines - as every process of a machine drives the one kernel. As in the kernel, a request
belongs to its process: when the process is gone (exited, killed, even not yet reaped) its
requests are released, with the release semantics above (stock: the level stays driven).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import types
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

__version__ = "2.5.0-fake"
api_version = "2.5.0-fake"


# -- gpiod.line -----------------------------------------------------------------------------------
class Value(Enum):
    INACTIVE = 0
    ACTIVE = 1

    def __bool__(self) -> bool:
        return self == self.ACTIVE


class Direction(Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Bias(Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


class Drive(Enum):
    PUSH_PULL = 1
    OPEN_DRAIN = 2
    OPEN_SOURCE = 3


class Edge(Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class Clock(Enum):
    MONOTONIC = 1
    REALTIME = 2
    HTE = 3


line = types.ModuleType("gpiod.line")
line.__doc__ = "Fake gpiod.line"
for _enum in (Value, Direction, Bias, Drive, Edge, Clock):
    setattr(line, _enum.__name__, _enum)
line.__all__ = ["Value", "Direction", "Bias", "Drive", "Edge", "Clock"]


# -- gpiod.exception -----------------------------------------------------------------------------
class ChipClosedError(Exception):
    def __init__(self) -> None:
        super().__init__("I/O operation on closed chip")


class RequestReleasedError(Exception):
    def __init__(self) -> None:
        super().__init__("GPIO lines have been released")


# -- value objects --------------------------------------------------------------------------------
@dataclass(repr=False)
class LineSettings:
    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    debounce_period: timedelta = timedelta()
    event_clock: Clock = Clock.MONOTONIC
    output_value: Value = Value.INACTIVE


@dataclass(frozen=True)
class ChipInfo:
    name: str
    label: str
    num_lines: int


@dataclass(frozen=True)
class LineInfo:
    offset: int
    name: str
    used: bool
    consumer: str
    direction: Direction
    active_low: bool
    bias: Bias = Bias.UNKNOWN
    drive: Drive = Drive.PUSH_PULL
    edge_detection: Edge = Edge.NONE
    event_clock: Clock = Clock.MONOTONIC
    debounced: bool = False
    debounce_period: timedelta = timedelta()


# -- the fake kernel ------------------------------------------------------------------------------
@dataclass
class KLine:
    """One line as the kernel sees it. ``level``: physical, ``True`` = high, ``None`` = input."""

    name: str
    direction: Direction = Direction.INPUT
    level: bool | None = None
    active_low: bool = False
    used: bool = False
    consumer: str = ""
    history: list[bool] = field(default_factory=list)  # every physical level driven
    owner: int | None = None  # the PID of the process whose request holds the line

    def drive(self, level: bool) -> None:
        self.level = level
        self.history.append(level)

    # The state a shared kernel keeps in its file (the name is the chip's, fixed at boot).
    STATE = ("level", "active_low", "used", "consumer", "history", "owner")

    def state(self) -> dict:
        return {"direction": self.direction.name, **{k: getattr(self, k) for k in self.STATE}}

    def load(self, state: dict) -> None:
        self.direction = Direction[state["direction"]]
        for key in self.STATE:
            setattr(self, key, state[key])


@dataclass
class KChip:
    path: str
    label: str
    lines: list[KLine]
    denied: bool = False  # open() fails with EACCES (user not in the gpio group)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


class Kernel:
    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.chips: dict[str, KChip] = {}
        self.state_path: str | None = None  # shared with other processes through this file
        self.boot_args: dict = {}
        self._depth = 0
        self._lock_fd: int | None = None

    # -- a kernel shared by processes -----------------------------------------------------------
    @contextlib.contextmanager
    def synced(self):
        """Hold the shared state's lock, with the lines loaded from the file; save on the way
        out. Re-entrant; a no-op for a kernel of this process only."""
        if self.state_path is None or self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        fd = os.open(self.state_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._depth = 1
        try:
            self._load()
            yield self
            self._save()
        finally:
            self._depth = 0
            os.close(fd)

    def refresh(self) -> Kernel:
        """Load what other processes did (a shared kernel); returns the kernel."""
        with self.synced():
            pass
        return self

    def _load(self) -> None:
        with open(self.state_path) as f:
            state = json.load(f)
        for path, lines in state["lines"].items():
            for kline, line_state in zip(self.chips[path].lines, lines, strict=True):
                kline.load(line_state)
        for chip in self.chips.values():  # the kernel frees a dead process's requests
            offsets = [i for i, k in enumerate(chip.lines) if k.used and not _alive(k.owner)]
            self.release(chip, offsets)

    def _save(self) -> None:
        state = {
            "boot": self.boot_args,
            "lines": {p: [k.state() for k in c.lines] for p, c in self.chips.items()},
        }
        tmp = f"{self.state_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def share(self, path: str | os.PathLike) -> Kernel:
        """Keep this kernel's state in ``path`` from now on (other processes attach to it)."""
        self.state_path = os.fspath(path)
        fd = os.open(self.state_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._save()
        finally:
            os.close(fd)
        return self

    @classmethod
    def attach(cls, path: str | os.PathLike) -> Kernel:
        """The kernel shared through ``path`` (made by ``boot(..., state=path)``)."""
        with open(path) as f:
            kernel = _build(**json.load(f)["boot"])
        kernel.state_path = os.fspath(path)
        return kernel.refresh()

    def add_chip(self, path: str, label: str, names: list[str]) -> KChip:
        chip = KChip(str(path), label, [KLine(n) for n in names])
        self.chips[chip.path] = chip
        if os.path.isdir(os.path.dirname(chip.path)) and not os.path.exists(chip.path):
            with open(chip.path, "w"):
                pass  # so that globbing the device directory finds it
        return chip

    def chip(self, path_or_label: str) -> KChip:
        for chip in self.chips.values():
            if path_or_label in (chip.path, chip.label, chip.name):
                return chip
        raise KeyError(path_or_label)

    def line(self, path_or_label: str, offset: int) -> KLine:
        return self.chip(path_or_label).lines[offset]

    def open(self, path: str) -> KChip:
        path = str(path)
        if path not in self.chips:
            if os.path.exists(path):
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV), path)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        chip = self.chips[path]
        if chip.denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return chip

    def release(self, chip: KChip, offsets: list[int]) -> None:
        for offset in offsets:
            kline = chip.lines[offset]
            kline.used = False
            kline.consumer = ""
            kline.owner = None
            kline.active_low = False
            if self.strict:
                kline.direction = Direction.INPUT
                kline.level = None


def _alive(pid: int | None) -> bool:
    """The process exists and has not exited (a zombie's files are closed already)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


STATE_ENV = "FAKE_GPIOD_STATE"


def _from_environment() -> Kernel:
    path = os.environ.get(STATE_ENV)
    return Kernel.attach(path) if path else Kernel()


def kernel() -> Kernel:
    return _kernel


def _pi_header_names(n: int) -> list[str]:
    return [f"GPIO{i}" if i < 28 else f"-{i}" for i in range(n)]


def boot(
    machine: str = "pi5",
    dev_dir: str | os.PathLike = "/dev",
    strict: bool = False,
    state: str | os.PathLike | None = None,
) -> Kernel:
    """Start a fresh fake kernel with the GPIO chips of ``machine`` under ``dev_dir``; with
    ``state``, shared with other processes through that file (see the module's docstring).

    ``pi5``: an early Raspberry Pi OS kernel's Pi 5, where the header's chip ``pinctrl-rp1`` is
    /dev/gpiochip4 after four ``gpio-brcmstb`` chips of the SoC (kernels since 6.6.45 renumber
    it to gpiochip0 - which is why the rig never trusts a number). ``pi4``: ``pinctrl-bcm2711``
    as gpiochip0 plus the firmware expander. ``pi3``: ``pinctrl-bcm2835``. ``none``: no chips.
    """
    global _kernel
    _kernel = _build(machine, os.fspath(dev_dir), strict)
    if state is not None:
        _kernel.share(state)
    return _kernel


def _build(machine: str, dev_dir: str, strict: bool) -> Kernel:
    _kernel = Kernel(strict=strict)
    _kernel.boot_args = {"machine": machine, "dev_dir": dev_dir, "strict": strict}
    d = dev_dir
    if machine == "pi5":
        for i, addr in enumerate(("107d508500", "107d508520", "107d517c00", "107d517c20")):
            _kernel.add_chip(
                os.path.join(d, f"gpiochip{i}"),
                f"gpio-brcmstb@{addr}",
                [f"-{j}" for j in range(32 if i < 2 else 17)],
            )
        _kernel.add_chip(os.path.join(d, "gpiochip4"), "pinctrl-rp1", _pi_header_names(54))
    elif machine == "pi4":
        _kernel.add_chip(os.path.join(d, "gpiochip0"), "pinctrl-bcm2711", _pi_header_names(58))
        _kernel.add_chip(
            os.path.join(d, "gpiochip1"),
            "raspberrypi-exp-gpio",
            ["BT_ON", "WL_ON", "PWR_LED_OFF", "GLOBAL_RESET", "VDD_SD_IO_SEL", "CAM_GPIO",
             "SD_PWR_ON", "SD_OC_N"],
        )  # fmt: skip
    elif machine == "pi3":
        _kernel.add_chip(os.path.join(d, "gpiochip0"), "pinctrl-bcm2835", _pi_header_names(54))
    elif machine != "none":
        raise ValueError(f"unknown fake machine {machine!r}")
    return _kernel


_kernel = _from_environment()


def install(monkeypatch) -> types.ModuleType:
    """Put this fake in ``sys.modules`` as ``gpiod`` / ``gpiod.line`` for one test."""
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "gpiod", module)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    return module


# -- the bindings ---------------------------------------------------------------------------------
def is_gpiochip_device(path: str) -> bool:
    return str(path) in _kernel.chips


class LineRequest:
    def __init__(self, chip: KChip, offsets: list[int], name_map: dict[str, int]) -> None:
        self._chip: KChip | None = chip
        self._kernel = _kernel
        self.chip_name = chip.name
        self.offsets = list(offsets)
        self._name_map = name_map
        self.lines = list(offsets)

    def __bool__(self) -> bool:
        return self._chip is not None

    def __enter__(self) -> LineRequest:
        self._check_released()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _check_released(self) -> None:
        if self._chip is None:
            raise RequestReleasedError()

    def release(self) -> None:
        if self._chip is not None:
            with self._kernel.synced():
                self._kernel.release(self._chip, self.offsets)
            self._chip = None

    def _line_to_offset(self, line_id: int | str) -> int:
        if isinstance(line_id, int):
            return line_id
        if line_id not in self._name_map:
            raise ValueError(f"unknown line name: {line_id}")
        return self._name_map[line_id]

    def _kline(self, offset: int) -> KLine:
        if offset not in self.offsets:
            raise ValueError(os.strerror(errno.EINVAL))  # the C library: EINVAL
        return self._chip.lines[offset]

    def get_value(self, line_id: int | str) -> Value:
        return self.get_values([line_id])[0]

    def get_values(self, lines=None) -> list[Value]:
        with self._kernel.synced():
            return self._get_values(lines)

    def _get_values(self, lines) -> list[Value]:
        self._check_released()
        values = []
        for line_id in lines or self.lines:
            kline = self._kline(self._line_to_offset(line_id))
            level = bool(kline.level)
            values.append(Value.ACTIVE if level != kline.active_low else Value.INACTIVE)
        return values

    def set_value(self, line_id: int | str, value: Value) -> None:
        self.set_values({line_id: value})

    def set_values(self, values: dict) -> None:
        with self._kernel.synced():
            self._set_values(values)

    def _set_values(self, values: dict) -> None:
        self._check_released()
        mapped = {self._line_to_offset(k): v for k, v in values.items()}
        for offset, value in mapped.items():
            if not isinstance(value, Value):
                raise TypeError("value must be a gpiod.line.Value")
            kline = self._kline(offset)
            if kline.direction is not Direction.OUTPUT:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        for offset, value in mapped.items():
            kline = self._chip.lines[offset]
            kline.drive(bool(value) != kline.active_low)

    def __repr__(self) -> str:
        if not self:
            return "<LineRequest RELEASED>"
        return f"<LineRequest chip_name={self.chip_name!r} offsets={self.offsets}>"


class Chip:
    def __init__(self, path: str) -> None:
        self._chip: KChip | None = _kernel.open(path)
        self._path = str(path)

    def __bool__(self) -> bool:
        return self._chip is not None

    def __enter__(self) -> Chip:
        self._check_closed()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_closed(self) -> None:
        if self._chip is None:
            raise ChipClosedError()

    def close(self) -> None:
        self._chip = None

    @property
    def path(self) -> str:
        self._check_closed()
        return self._path

    def get_info(self) -> ChipInfo:
        self._check_closed()
        return ChipInfo(self._chip.name, self._chip.label, len(self._chip.lines))

    def line_offset_from_id(self, id: str | int) -> int:
        self._check_closed()
        if not isinstance(id, int):
            for offset, kline in enumerate(self._chip.lines):
                if kline.name == id:
                    return offset
            try:
                offset = int(id)
            except ValueError:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)) from None
        else:
            offset = id
        if offset >= len(self._chip.lines):
            raise ValueError("line offset of out range")
        return offset

    def get_line_info(self, line_id: int | str) -> LineInfo:
        with _kernel.synced():
            return self._get_line_info(line_id)

    def _get_line_info(self, line_id: int | str) -> LineInfo:
        offset = self.line_offset_from_id(line_id)
        kline = self._chip.lines[offset]
        return LineInfo(
            offset=offset,
            name=kline.name,
            used=kline.used,
            consumer=kline.consumer,
            direction=kline.direction,
            active_low=kline.active_low,
        )

    def request_lines(self, config, consumer=None, event_buffer_size=None, output_values=None):
        with _kernel.synced():
            return self._request_lines(config, consumer, output_values)

    def _request_lines(self, config, consumer, output_values):
        self._check_closed()
        chip = self._chip
        requested: dict[int, LineSettings] = {}
        name_map: dict[str, int] = {}
        for key, settings in config.items():
            for line_id in [key] if isinstance(key, (int, str)) else list(key):
                offset = self.line_offset_from_id(line_id)
                if offset in requested:
                    raise ValueError(
                        f"line must be configured exactly once - offset {offset} repeats"
                    )
                requested[offset] = settings or LineSettings()
                if isinstance(line_id, str):
                    name_map[line_id] = offset
                elif chip.lines[offset].name and chip.lines[offset].name not in name_map:
                    name_map[chip.lines[offset].name] = offset
        if output_values:
            for line_id, value in output_values.items():
                requested[self.line_offset_from_id(line_id)].output_value = value
        for offset in requested:
            if chip.lines[offset].used:  # the kernel: GPIO_V2_GET_LINE_IOCTL -> EBUSY
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        for offset, settings in requested.items():
            kline = chip.lines[offset]
            kline.used = True
            kline.owner = os.getpid()
            kline.consumer = (consumer or "?")[:31]
            kline.active_low = settings.active_low
            if settings.direction is Direction.OUTPUT:
                kline.direction = Direction.OUTPUT
                kline.drive(bool(settings.output_value) != settings.active_low)
            elif settings.direction is Direction.INPUT:
                kline.direction = Direction.INPUT
                kline.level = None
        return LineRequest(chip, list(requested), name_map)


def request_lines(path, config, consumer=None, event_buffer_size=None, output_values=None):
    with Chip(path) as chip:
        return chip.request_lines(
            config=config,
            consumer=consumer,
            event_buffer_size=event_buffer_size,
            output_values=output_values,
        )
