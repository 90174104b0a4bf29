"""codedance-hello-tool: the example plugin from docs/writing-a-plugin.md.

It registers two tools through the ``register_tools`` hook. A tool is a plain
typed function: its registered name is its ``__name__``, and its docstring and
type hints are what describe it to the model. The distribution's ``codedance``
entry point (see pyproject.toml) is what makes codedance load this module once
the distribution is installed.
"""

from __future__ import annotations

from codedance import hookimpl
from codedance.core.hookspecs import Register

__all__ = ["count_words", "hello", "register_tools"]


def hello(name: str = "world") -> str:
    """Return a friendly greeting for ``name``, e.g. ``hello("Ada") == "Hello, Ada!"``."""
    return f"Hello, {name}!"


def count_words(text: str) -> int:
    """Count the words in ``text``, splitting on any run of whitespace."""
    return len(text.split())


@hookimpl
def register_tools(register: Register) -> None:
    register(hello)
    register(count_words)
