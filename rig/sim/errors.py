"""Errors inside the simulator (below the board, so every part can raise them)."""

from __future__ import annotations

__all__ = ["PowerLost"]


class PowerLost(Exception):
    """Raised inside a slow flash operation when the supply or EN drops under it: the chip is
    gone mid-operation, and the contact change that cut it finishes the job."""
