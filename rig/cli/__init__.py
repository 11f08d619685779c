"""The ``rig`` command line (click + rich): ``rig = "rig.cli:main"``.

Exit codes: 0 ok, 1 an operation failed, 2 bad input or config (nothing was touched); mapped from
:mod:`rig.errors` in one place, :class:`rig.cli.common.RigCommand`. One module per group of
commands (:data:`COMMAND_MODULES`), each with its ``COMMANDS``.

The group loads those modules when it is first asked for a command, not when this package is
imported: ``python -m rig.cli.batch`` and ``python -m rig.cli.serve`` import this package first,
and a module that is already imported when ``-m`` runs it is imported twice (runpy warns).
"""

from __future__ import annotations

import importlib

import click

from rig import __version__

__all__ = ["COMMAND_MODULES", "main"]

COMMAND_MODULES = (
    "configs",
    "relay",
    "sim",
    "ops",
    "cycle",
    "firmware",
    "batch",
    "serve",
    "lab",
    "status",
)


class _RigGroup(click.Group):
    """A group whose ``commands`` are the ``COMMANDS`` of :data:`COMMAND_MODULES`."""

    _loaded = False

    @property
    def commands(self) -> dict[str, click.Command]:
        if not self._loaded:
            self._loaded = True
            for name in COMMAND_MODULES:
                for command in importlib.import_module(f"rig.cli.{name}").COMMANDS:
                    self.add_command(command)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value


@click.group(cls=_RigGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """Hardware-in-the-loop flashing rig for ESP32 boards without auto-reset."""
