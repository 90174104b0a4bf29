"""Built-in plugin: the runtime's commands (``run``, ``view``), registered like any plugin's."""

from __future__ import annotations

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.runtime.cli import run_command
from codedance.runtime.viewer import view_command

__all__ = ["register_commands"]


@hookimpl
def register_commands(register: Register) -> None:
    register(run_command)
    register(view_command)
