"""The codedance plugin hooks: one ``register_<kind>(register)`` hook per kind.

Every hook is called once per process, the first time the registry is used, and
hands the plugin a ``register`` callback instead of asking it to return a list.
The host can then detect name clashes, record which plugin supplied what, and add
keyword arguments to ``register`` later without breaking anyone.

Write an implementation with :data:`hookimpl`::

    from codedance import hookimpl

    @hookimpl
    def register_tools(register):
        register(count_red_pixels)

Built-in plugins use exactly these hooks. Hook parameters are only ever added,
never removed or renamed. docs/plugins.md documents each hook with an example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pluggy

__all__ = ["KINDS", "PROJECT", "Register", "hookimpl", "hookspec"]

PROJECT = "codedance"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

_F = TypeVar("_F", bound=Callable[..., Any])

#: kind -> the hook that registers it (kinds singular, hooks plural), in the order the
#: registry runs them. Filled by :func:`_registers`, so adding a kind is one edit: a new
#: hookspec below.
KINDS: dict[str, str] = {}


def _registers(kind: str) -> Callable[[_F], _F]:
    """Mark a function as the hookspec that registers components of ``kind``."""

    def mark(function: _F) -> _F:
        KINDS[kind] = function.__name__
        return hookspec(function)

    return mark


class Register(Protocol):
    """The callback a ``register_<kind>`` hook receives.

    ``obj`` is the component; ``name`` defaults to ``obj.name`` when that is a
    string, else ``obj.__name__``. Registering a name another plugin already
    registered for the same kind is a :class:`~codedance.core.errors.DuplicateNameError`.
    """

    def __call__(self, obj: Any, /, *, name: str | None = None) -> None: ...


# -- components the runtime, evaluation and training look up by name -------------


@_registers("tool")
def register_tools(register: Register) -> None:
    """Register tool functions that model-written code may call inside a sandbox.

    Called once per process, when the registry is first used.

    :param register: ``register(function, name=None)``. A tool is a plain typed
        function: its name (a Python identifier) comes from ``__name__``, its
        description from the docstring and its schema from the type hints.
        ``tools.enabled`` in registry.yaml chooses which tools the model sees.

    Registers: plain functions (no base class); :func:`codedance.core.tools.tool_docs`
    reads what the model is told about each.
    """


@_registers("sandbox")
def register_sandboxes(register: Register) -> None:
    """Register sandbox backends that run model-written code in stateful sessions.

    Called once per process, when the registry is first used.

    :param register: ``register(backend_class, name=None)``. ``sandbox.backend`` in
        registry.yaml selects one by name; ``sandbox.options`` are passed to it.

    Registers: subclasses of :class:`codedance.sandboxes.base.SandboxBackend`
    (docs/sandboxes.md states the contract its conformance suite checks).
    """


@_registers("reward")
def register_rewards(register: Register) -> None:
    """Register reward components that score groups of trajectories.

    Called once per process, when the registry is first used.

    :param register: ``register(reward, name=None)``. The ``rewards`` list in
        registry.yaml composes them by name with a weight and params.

    Registers: subclasses of :class:`codedance.rewards.base.RewardComponent`, or
    functions ``f(trajectory, **params) -> float``.
    """


@_registers("model")
def register_models(register: Register) -> None:
    """Register model backends (inference engines) that produce assistant turns.

    Called once per process, when the registry is first used.

    :param register: ``register(backend_class, name=None)``. ``model.backend`` in
        registry.yaml selects one by name.

    Registers: subclasses of :class:`codedance.runtime.model.ModelBackend`.
    """


@_registers("benchmark")
def register_benchmarks(register: Register) -> None:
    """Register benchmark loaders that turn a published dataset into tasks.

    Called once per process, when the registry is first used.

    :param register: ``register(loader, name=None)``. ``codedance eval --benchmark
        NAME`` selects one by name.

    Registers: subclasses of :class:`codedance.evaluation.benchmark.Benchmark`.
    """


@_registers("protocol")
def register_protocols(register: Register) -> None:
    """Register protocols: the system prompt, turn parsing and observation format.

    Called once per process, when the registry is first used.

    :param register: ``register(protocol_class, name=None)``. ``protocol.name`` in
        registry.yaml selects one by name.

    Registers: subclasses of :class:`codedance.runtime.protocol.Protocol`.
    """


# -- the command line ------------------------------------------------------------


@_registers("command")
def register_commands(register: Register) -> None:
    """Register subcommands of the ``codedance`` command line.

    Called once per process, when the CLI lists or resolves a command.

    :param register: ``register(command, name=None)`` with a ``click.Command`` or
        ``click.Group``; the name defaults to the command's own name.

    Registers: :class:`click.Command` objects (a :class:`click.Group` is one); the
    built-in commands live in :mod:`codedance.commands`.
    """
