"""What the rig does with a board: flasher sessions, the verified fast write, backups and the
policy that guards every destructive step, boot checks, reports, the reported steps
(:mod:`~rig.operations.steps`, the one pipeline every front end composes), the selection of
slots (:mod:`~rig.operations.selection`), the scripted cycle.

The face of the layer; the modules say what they own. :mod:`~rig.operations.batch` (``rig flash``)
and :mod:`~rig.operations.serve` (``rig serve``) are packages of their own, and
:mod:`~rig.operations.hil` holds the building blocks of the pytest plugin.
"""

from rig.operations.backups import Backup, BackupError, BackupStore
from rig.operations.bootcheck import BootCheck, boot_check
from rig.operations.cycle import run_cycle
from rig.operations.fastwrite import FlashDefect, PartialWrite, WriteStats
from rig.operations.images import FlashImage, resolve_images
from rig.operations.report import Report, ReportStep
from rig.operations.safeguards import ensure_backup, prepare_backups, take_backup
from rig.operations.session import FlasherError, FlasherSession, Identity, Refused, WrongBoard

__all__ = [
    "Backup",
    "BackupError",
    "BackupStore",
    "BootCheck",
    "FlashDefect",
    "FlashImage",
    "FlasherError",
    "FlasherSession",
    "Identity",
    "PartialWrite",
    "Refused",
    "Report",
    "ReportStep",
    "WriteStats",
    "WrongBoard",
    "boot_check",
    "ensure_backup",
    "prepare_backups",
    "resolve_images",
    "run_cycle",
    "take_backup",
]
