"""The ``rig`` command line (click + rich): ``rig = "rig.cli:main"``.

Exit codes: 0 ok, 1 an operation failed, 2 bad input or config (nothing was touched); mapped from
:mod:`rig.errors` in one place, :class:`rig.cli.common.RigCommand`. One module per group of
commands: :mod:`~rig.cli.configs`, :mod:`~rig.cli.relay`, :mod:`~rig.cli.ops`,
:mod:`~rig.cli.cycle`, :mod:`~rig.cli.batch`, :mod:`~rig.cli.serve`, :mod:`~rig.cli.sim`.
"""

from __future__ import annotations

import click

from rig import __version__
from rig.cli import batch, configs, cycle, ops, relay, serve, sim

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """Hardware-in-the-loop flashing rig for ESP32 boards without auto-reset."""


for _command in [
    *configs.COMMANDS,
    relay.relay_command,
    sim.sim_command,
    *ops.COMMANDS,
    *cycle.COMMANDS,
    *batch.COMMANDS,
    serve.serve_command,
]:
    main.add_command(_command)
