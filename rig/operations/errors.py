"""The errors of a flasher session, in their own module so that the session
(:mod:`rig.operations.session`) and its verified write (:mod:`rig.operations.fastwrite`) both
import them without importing each other.

What each one means for another attempt (:func:`rig.errors.is_transient`): a failure of the link
(:class:`FlasherError`: no sync, a timeout, a port gone) is worth a reconnect; the wrong board in
the slot (:class:`WrongBoard`) and a refusal (:class:`Refused`: reconnecting cannot change the
answer) are not.
"""

from __future__ import annotations

from rig.errors import OperationError, Transient

__all__ = ["FlashSizeError", "FlasherError", "Refused", "SecurityEnabled", "WrongBoard"]


class FlasherError(OperationError, Transient):
    """An esptool session failed on the link; the message says what and on which board.
    esptool's ``FatalError`` and the port's ``OSError`` arrive wrapped in it, so the retry
    logic needs to know only the rig's own errors."""


class WrongBoard(OperationError):
    """The chip on the port is not the board this operation was started for."""


class Refused(OperationError):
    """The session will not do this to the board: it could destroy data that no backup covers.

    Not a fault of the link: reconnecting or retrying cannot change the answer, so this is not a
    :class:`FlasherError` (which the session and the batch runner retry)."""


class FlashSizeError(Refused):
    """The flash size is unknown, or not the board type's: a dump would be empty or partial."""


class SecurityEnabled(Refused):
    """Flash encryption or secure boot is enabled in the chip's eFuses, and nothing forced it."""
