"""Boot sequences as data: the steps a board type's ``download``, ``run`` and ``off`` play.

A step closes/opens/presses/releases the relay of a role, pulses it, or waits; waits and pulses
are bounded by :data:`MAX_WAIT` (a step that waits minutes is a typo, not a boot sequence). The
relay layer plays them (:mod:`rig.board.sequences`); :func:`step_schema` is their JSON schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, model_validator

from .errors import fail
from .types import ROLES, FrozenModel, Role

__all__ = ["ACTIONS", "MAX_WAIT", "SequenceName", "SequenceStep", "Sequences"]

Action = Literal["close", "open", "press", "release", "pulse", "wait"]
ACTIONS: tuple[str, ...] = get_args(Action)
MAX_WAIT = 60.0  # seconds: the longest wait or pulse a sequence step may ask for


def step_schema() -> dict[str, Any]:
    role = {"enum": list(ROLES)}

    def shape(key: str, value: dict, extra: dict | None = None) -> dict[str, Any]:
        props = {key: value, **(extra or {})}
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    return {
        "title": "Step",
        "description": "One sequence step: close/open/press/release a relay role, "
        "pulse it for ms milliseconds, or wait seconds.",
        "oneOf": [shape(action, role) for action in ("close", "open", "press", "release")]
        + [
            shape(
                "pulse",
                role,
                {"ms": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT * 1000}},
            ),
            shape("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT}),
        ],
    }


def _number(value: Any, what: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"{what} takes a number (got {value!r})", key)
    return float(value)


class SequenceStep(FrozenModel):
    """One step of a sequence. In YAML: ``{close: io0}``, ``{open: io0}``, ``{press: power}``,
    ``{release: power}``, ``{pulse: reset, ms: 100}``, ``{wait: 0.3}``.

    ``close``/``press`` energise the relay of ``role`` (contact closed, button pressed),
    ``open``/``release`` de-energise it; ``pulse`` closes it for ``seconds`` then opens it;
    ``wait`` sleeps ``seconds``.
    """

    # Its YAML keys are the action names, not its fields (for unknown-key messages).
    yaml_keys: ClassVar[None] = None

    action: Action
    role: Role | None = None
    seconds: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, SequenceStep):
            return data
        if not isinstance(data, dict):
            raise fail(
                f"a step is a mapping such as {{close: io0}} or {{wait: 0.3}} (got {data!r})"
            )
        if "action" in data and info.context is None:
            return data  # programmatic: SequenceStep(action="wait", seconds=0.3)
        actions = [key for key in data if key in ACTIONS]
        if len(actions) != 1:
            found = ", ".join(map(str, data)) or "nothing"
            raise fail(f"a step has exactly one of {', '.join(ACTIONS)} (found {found})")
        action = actions[0]
        allowed = {action, "ms"} if action == "pulse" else {action}
        for key in data:
            if key not in allowed:
                raise fail(f"unknown key {key!r} in a {action} step", key)
        value = data[action]
        if action == "wait":
            seconds = _number(value, "wait", action)
            if not 0 <= seconds <= MAX_WAIT:
                raise fail(f"wait must be between 0 and {MAX_WAIT:g} seconds (got {value})", action)
            return {"action": action, "seconds": seconds}
        if value not in ROLES:
            raise fail(f"unknown relay role {value!r} (roles: {', '.join(ROLES)})", action)
        if action != "pulse":
            return {"action": action, "role": value}
        if "ms" not in data:
            raise fail("a pulse needs its length: {pulse: ROLE, ms: 100}")
        ms = _number(data["ms"], "ms", "ms")
        if not 0 < ms <= MAX_WAIT * 1000:
            raise fail(
                f"ms must be above 0 and at most {MAX_WAIT * 1000:g} (got {data['ms']})", "ms"
            )
        return {"action": action, "role": value, "seconds": ms / 1000}

    @model_validator(mode="after")
    def _consistent(self) -> SequenceStep:
        timed = self.action in ("wait", "pulse")
        if (self.role is None) != (self.action == "wait") or (self.seconds is None) == timed:
            raise fail(f"a {self.action} step needs " + ("seconds" if timed else "a role"))
        if self.seconds is not None and not 0 <= self.seconds <= MAX_WAIT:
            raise fail(f"seconds must be between 0 and {MAX_WAIT:g}", "seconds")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler) -> dict[str, Any]:
        return step_schema()

    def as_yaml(self) -> dict[str, Any]:
        """The YAML form: ``{"pulse": "reset", "ms": 100}``."""
        if self.action == "wait":
            return {"wait": self.seconds}
        if self.action == "pulse":
            return {"pulse": self.role, "ms": round(self.seconds * 1000, 3)}
        return {self.action: self.role}

    def __str__(self) -> str:
        if self.action == "wait":
            return f"wait {self.seconds:g} s"
        if self.action == "pulse":
            return f"pulse {self.role} {self.seconds * 1000:g} ms"
        return f"{self.action} {self.role}"


SequenceSteps = Annotated[tuple[SequenceStep, ...], Field(min_length=1)]


class Sequences(FrozenModel):
    """The board's boot sequences, played by the relay layer."""

    download: SequenceSteps  # into ROM download mode (serial bootloader)
    run: SequenceSteps  # boot the firmware in flash
    off: SequenceSteps  # leave the board off / held, relays at rest where possible

    def __getitem__(self, name: str) -> tuple[SequenceStep, ...]:
        if name not in type(self).model_fields:
            raise KeyError(f"unknown sequence {name!r} (sequences: download, run, off)")
        return getattr(self, name)

    def items(self) -> Iterable[tuple[str, tuple[SequenceStep, ...]]]:
        return ((name, getattr(self, name)) for name in type(self).model_fields)


SequenceName = Literal["download", "run", "off"]
