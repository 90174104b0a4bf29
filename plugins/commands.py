"""Built-in plugin: every ``codedance`` subcommand, registered like any plugin's.

Each command lives in :mod:`codedance.commands` (``commands/<name>.py`` holds
``codedance <name>``); this module only registers them, through the public
``register_commands`` hook a third-party package uses. The command modules import
their engines inside the command, so loading this plugin stays cheap.
"""

from __future__ import annotations

from codedance import hookimpl
from codedance.core.hookspecs import Register

__all__ = ["register_commands"]


@hookimpl
def register_commands(register: Register) -> None:
    from codedance.commands.bench import bench_group
    from codedance.commands.config import config_group
    from codedance.commands.data import data_group
    from codedance.commands.doctor import doctor_command
    from codedance.commands.eval import eval_command
    from codedance.commands.exec import exec_command
    from codedance.commands.plugins import plugins_command
    from codedance.commands.run import run_command
    from codedance.commands.sandbox import sandbox_group
    from codedance.commands.score import score_command
    from codedance.commands.synth import synth_command
    from codedance.commands.tools import tools_command
    from codedance.commands.train import train_command
    from codedance.commands.view import view_command

    register(plugins_command)
    register(config_group)
    register(doctor_command)
    register(tools_command)
    register(exec_command)
    register(bench_group)
    register(sandbox_group)
    register(run_command)
    register(view_command)
    register(score_command)
    register(eval_command)
    register(data_group)
    register(synth_command)
    register(train_command)
