"""What the layers above may rely on about a board position, and nothing more.

Like labgrid's ``protocol/`` modules (a reset driver names the one protocol it binds to), the
operations layer types its parameters against these instead of ``Any``: a flasher session needs
download mode and a port; a boot check needs ``run`` and the console. :class:`rig.board.Board`
implements :class:`BoardHandle`, and so does the batch runner's watched board, which puts a safe
point before every download sequence.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import serial

from rig import config
from rig.clock import Clock
from rig.hardware.ports import PortSpec

__all__ = ["BoardHandle", "DownloadEvidenceLike", "RelayLike", "StepLike"]


class StepLike(Protocol):
    """One step of a relay sequence (``config.SequenceStep`` in a board type's YAML)."""

    action: str  # close | open | press | release | pulse | wait
    role: str | None
    seconds: float | None


class RelayLike(Protocol):
    """What the sequence interpreter does to a relay (a :class:`rig.hardware.Relay`)."""

    def close(self) -> None: ...
    def open(self) -> None: ...


class DownloadEvidenceLike(Protocol):
    attempt: int  # the download sequences it took (1 = the first one worked)
    how: str  # "banner" or "sync"


@runtime_checkable
class BoardHandle(Protocol):
    """One slot's board: its identity and type, its port, its clock and the operations on it."""

    slot_id: str
    type: config.BoardType
    port: PortSpec
    clock: Clock

    @property
    def console_baud(self) -> int: ...

    def download_mode(self, retries: int | None = None) -> DownloadEvidenceLike:
        """Into ROM download mode by relays, confirmed; raise with the likely cause."""

    def loader_port(self) -> str | serial.SerialBase:
        """What esptool talks through after :meth:`download_mode`: a URL it opens (and closes)
        itself, or a connection the board holds open (a remote slot, whose serving host ends
        download mode when the connection closes) that the session must leave open."""

    def run(self) -> None:
        """Boot the firmware from flash."""

    def off(self) -> None: ...

    def console(self, baud: int | None = None) -> AbstractContextManager[serial.SerialBase]:
        """The board's UART, open for the ``with`` block."""

    def expect(self, ser: serial.SerialBase, pattern: str, timeout: float) -> tuple[bool, str]:
        """Read until ``pattern`` (regex) shows up or ``timeout``: (seen, the text read)."""
