"""One board position: relays + serial port + boot sequences, and the station that opens them.

The face of the layer: :class:`Board` (:mod:`rig.board.board`), :class:`LiveStation` and
:class:`LiveSlot` (:mod:`rig.board.station`), what the layers above may rely on
(:mod:`rig.board.protocols`), the sequence interpreter (:mod:`rig.board.sequences`).
"""

from rig.board.board import Board, DownloadEvidence, DownloadModeError
from rig.board.protocols import BoardHandle
from rig.board.station import LiveSlot, LiveStation

__all__ = [
    "Board",
    "BoardHandle",
    "DownloadEvidence",
    "DownloadModeError",
    "LiveSlot",
    "LiveStation",
]
