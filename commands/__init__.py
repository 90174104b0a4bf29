"""The ``codedance`` CLI commands: one module per command, on top of every other subpackage.

``codedance/commands/<name>.py`` holds the command ``codedance <name>`` (a group holds
its subcommands) and nothing else: each command parses its options, calls the engine
in its domain package (``runtime``, ``sandboxes``, ``rewards``, ``evaluation``,
``trainers``) and prints. :mod:`codedance.plugins.commands` registers them through the
public ``register_commands`` hook, as a third-party plugin registers its own. This
package sits above the domain packages, so a command that composes two of them (``run``
scores with the rewards) adds no import cycle; nothing but ``plugins/`` imports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console:
    """A rich console for tables: wide enough for paths when piped; a terminal keeps its width."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)
