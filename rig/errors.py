"""One root for every error the rig raises on purpose, and what each branch means to a user.

Modelled on gpiozero's ``exc.py``: a root (:class:`RigError`) and two branches that say what
happened to the board, which the command line maps to its exit codes in one place
(``rig.cli.common``):

* :class:`BadInput` - rejected before anything was touched (a config error at file:line, an
  unknown slot, an image that does not fit): exit 2. It is also a ``ValueError``.
* :class:`OperationError` - an operation on a board failed; the message says in what state the
  board is: exit 1. It is also a ``RuntimeError``.

:class:`Transient` is a marker, not a branch: an error that also derives from it is worth another
attempt after a reconnect (the board's download sequence re-run), e.g. a board that did not
answer or a port that went away. The retry logic asks :func:`is_transient` and nothing else; the
wrong board in a slot, a flash defect or a refusal are not transient.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "BadInput",
    "OperationError",
    "RigError",
    "Transient",
    "is_transient",
]

EXIT_OK = 0
EXIT_FAILED = 1  # an operation failed (OperationError, or any other error while working)
EXIT_BAD_INPUT = 2  # bad input or config: nothing was touched (BadInput)


class RigError(Exception):
    """The root of the rig's own errors."""


class BadInput(RigError, ValueError):
    """Rejected before a relay moved, a port was opened or a lock was taken."""


class OperationError(RigError, RuntimeError):
    """An operation on a board failed; the message says what state the board is in."""


class Transient:
    """Mixin: another attempt, after the board's download sequence is run again, may succeed."""


def is_transient(err: BaseException) -> bool:
    return isinstance(err, Transient)
