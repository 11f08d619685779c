"""pytest-xdist scheduling for board tests: each slot's tests on one worker.

A slot is locked by the process that opens it, so two workers must never get tests of the same
slot. :class:`SlotScheduling` is xdist's scope scheduler with one scope per slot (found in the
test id, which the plugin parametrises with slot ids); every other test is its own scope, so
the project's other tests spread over the workers as with ``--dist load``.

(xdist's own ``loadgroup`` would do this with ``xdist_group`` marks, but it renames node ids
through a private attribute that pytest 9 no longer uses.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from xdist.scheduler import LoadScopeScheduling

SCOPE_PREFIX = "rig-slot:"


def slot_in_nodeid(nodeid: str, slot_ids: Iterable[str]) -> str | None:
    """The slot id among the parameters of ``nodeid`` (``...::test_x[l7x-1-custom-grbl]``)."""
    head, sep, params = nodeid.rpartition("::")
    start = params.find("[")
    if not sep or start < 0 or not params.endswith("]"):
        return None
    params = params[start + 1 : -1]
    for slot_id in sorted(slot_ids, key=len, reverse=True):  # l7x-10 before l7x-1
        if re.search(rf"(?:^|-){re.escape(slot_id)}(?:-|$)", params):
            return slot_id
    return None


class SlotScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any, slot_ids: Iterable[str]) -> None:
        super().__init__(config, log)
        self.slot_ids = tuple(slot_ids)

    def _split_scope(self, nodeid: str) -> str:
        slot = slot_in_nodeid(nodeid, self.slot_ids)
        return SCOPE_PREFIX + slot if slot is not None else nodeid
