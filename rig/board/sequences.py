"""The interpreter for a board type's relay sequences (``download``, ``run``, ``off``).

Sequences are data in the board's YAML - the order and timing of IO0 and power/reset that a board
needs - so one small interpreter serves every board. Each step acts on the slot's relay bank by
role; time goes through the injected clock, so a test can assert the exact timing diagram.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rig.board.protocols import RelayLike, StepLike
from rig.clock import SYSTEM, Clock
from rig.errors import OperationError

__all__ = ["SequenceError", "run_sequence"]


class SequenceError(OperationError):
    """A step names a relay the slot does not wire, or an action the interpreter does not know
    (the station and board checks make this rare: it is a bug or a config the checks missed)."""


def run_sequence(
    steps: Iterable[StepLike],
    relays: Mapping[str, RelayLike],
    clock: Clock = SYSTEM,
    *,
    name: str = "sequence",
) -> None:
    """Play ``steps`` on ``relays``. ``press``/``release`` are ``close``/``open`` of a button."""
    for index, step in enumerate(steps):
        if step.action == "wait":
            clock.sleep(step.seconds or 0.0)
            continue
        try:
            relay = relays[step.role]
        except KeyError:
            raise SequenceError(
                f"{name} step {index + 1}: no relay wired for role {step.role!r}"
            ) from None
        if step.action in ("close", "press"):
            relay.close()
        elif step.action in ("open", "release"):
            relay.open()
        elif step.action == "pulse":
            relay.close()
            clock.sleep(step.seconds or 0.0)
            relay.open()
        else:
            raise SequenceError(f"{name} step {index + 1}: unknown action {step.action!r}")
