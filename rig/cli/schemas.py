"""JSON Schemas of the commands' ``--json`` output (``rig schema --output NAME``), so a machine
reader can check what it parses; the tests validate real output against them."""

from __future__ import annotations

from typing import Any

__all__ = ["OUTPUTS", "output_schema"]

_S = {"type": "string"}
_I = {"type": "integer", "minimum": 0}
_B = {"type": "boolean"}
_N = {"type": "number", "minimum": 0}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_MAC = {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"}
_MAYBE_MAC = {"anyOf": [_MAC, {"const": ""}]}
_TIME = {"type": "string", "format": "date-time"}
_STRINGS = {"type": "array", "items": _S}


def _object(props: dict[str, Any], required: list[str] | None = None, **extra) -> dict:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        **extra,
    }


def _listing(key: str, row: dict) -> dict:
    return _object(
        {"station": _S, "simulated": _B, key: {"type": "array", "items": row}},
        additionalProperties=False,
    )


_BACKUP = _object(
    {
        "id": _S, "mac": _MAC, "created": _TIME, "size": _I, "sha256": _SHA256,
        "slot": _S, "intact": _B, "path": _S,
    }
)  # fmt: skip
_STEP = _object({"name": _S, "ok": _B, "seconds": _N, "detail": _S, "data": {"type": "object"}})
_REPORT = _object(
    {
        "operation": _S, "slot": _S, "mac": _MAYBE_MAC, "ok": _B, "error": _S,
        "steps": {"type": "array", "items": _STEP}, "data": {"type": "object"},
        "station": _S, "simulated": _B,
    }
)  # fmt: skip
_BOARD = _object(
    {
        "slot": _S, "result": {"enum": ["ok", "failed", "quarantined", "stopped", "not started",
        "skipped"]}, "mac": _MAYBE_MAC, "bytes_written": _I, "bytes_skipped": _I,
        "seconds": _N, "error": _S, "attempts": _I, "attempt_errors": _STRINGS,
        "steps": {"type": "array", "items": _STEP}, "not_done": _STRINGS, "started": _S,
        "ended": _S, "log": _S,
    }
)  # fmt: skip
_FLASH = _object(
    {
        "station": _S, "simulated": _B, "board": _S, "run_dir": _S, "started": _TIME,
        "jobs": _I, "retries": _I, "seconds": _N, "ok": _B, "summary": _S,
        "interrupted": {"type": ["string", "null"]},
        "counts": {"type": "object", "additionalProperties": _I},
        "firmware": _object({"name": _S, "sha256": _SHA256, "size": _I}),
        "boards": {"type": "array", "items": _BOARD},
    }
)  # fmt: skip
_NULLABLE_OBJECT = {"type": ["object", "null"]}

OUTPUTS: dict[str, dict] = {
    "report": _REPORT,  # identify, dump, erase, write, verify, restore, cycle, demo
    "flash": _FLASH,
    "backups": _listing("backups", _BACKUP),
    "boards": _listing(
        "boards",
        _object(
            {
                "name": _S,
                "chip": _S,
                "flash_size": _I,
                "modem_lines": _B,
                "relays": _STRINGS,
                "firmware": _STRINGS,
                "description": _S,
            }
        ),  # fmt: skip
    ),
    "stations": _listing(
        "slots",
        _object(
            {
                "slot": _S,
                "board": _S,
                "port": _S,
                "relays": _STRINGS,
                "expected_mac": _MAYBE_MAC,
                "simulated": _B,
            }
        ),  # fmt: skip
    ),
    "quarantine": _listing(
        "quarantined",
        _object(
            {
                "slot": _S,
                "mac": _MAYBE_MAC,
                "since": _TIME,
                "attempts": _I,
                "reason": _S,
                "run_dir": _S,
            }
        ),  # fmt: skip
    ),
    "firmware-list": _listing(
        "firmware",
        _object(
            {
                "name": _S,
                "board": _S,
                "parts": _STRINGS,
                "sha256": _SHA256,
                "console": _S,
                "files": _S,
                "catalog": _S,
            }
        ),  # fmt: skip
    ),
    "status": _listing(
        "slots",
        _object(
            {
                "slot": _S,
                "board": _S,
                "simulated": _B,
                "expected_mac": _MAYBE_MAC,
                "mac": _MAYBE_MAC,
                "lock_holder": {"type": ["string", "null"]},
                "quarantined": _NULLABLE_OBJECT,
                "last_run": _NULLABLE_OBJECT,
                "backups": _I,
                "macs": {"type": "array", "items": _MAC},
                "latest_backup": {
                    "anyOf": [
                        {"type": "null"},
                        _object({"id": _S, "created": _TIME, "size": _I, "sha256": _SHA256}),
                    ]
                },
            }
        ),  # fmt: skip
    ),
}


def output_schema(name: str) -> dict:
    """The JSON Schema (draft 2020-12) of the ``--json`` output ``name`` (:data:`OUTPUTS`)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"rig {name} --json",
        **OUTPUTS[name],
    }
