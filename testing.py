"""``codedance.testing``: pytest fixtures for plugin authors (loaded automatically).

Installing codedance registers this module as a pytest plugin (entry point
``pytest11``), so any test suite can use these fixtures without imports:

- ``codedance_registry``: a fresh registry holding only the built-in plugins,
  made the process-wide one (``get_registry()`` and the CLI use it) for one test.
- ``register_plugin``: add a plugin object (module, class or instance with
  ``@hookimpl`` functions) to that registry for one test; returns the registry.
- ``codedance_cli``: run ``codedance ...`` in-process against that registry.
- ``codedance_config``: build a validated :class:`~codedance.Config` from YAML
  text plus ``-o`` overrides, exactly as ``--config`` would.

Classes, imported on first use: ``SandboxConformance`` (the suite every sandbox
backend runs: subclass it, provide a class-scoped ``sandbox_backend`` fixture,
optionally set ``unsupported`` and ``time_limit_s``; each failure names the broken
guarantee of docs/sandboxes.md and its anchor), ``ScriptedModel`` (a model backend
that plays given turns or asks a handler) and ``HandlerSandbox`` (a sandbox whose
runs a function answers), for runtime tests without a model or a sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from codedance.core.discovery import load_registry, use_registry
from codedance.core.registry import PluginInfo, Registry

if TYPE_CHECKING:
    from click.testing import Result

    from codedance.core.config import Config
    from codedance.runtime.scripted import ScriptedModel
    from codedance.sandboxes.conformance import SandboxConformance
    from codedance.sandboxes.handler import HandlerSandbox

# The conformance suite's plain asserts get pytest's detailed failure messages.
pytest.register_assert_rewrite("codedance.sandboxes.conformance")

__all__ = [
    "HandlerSandbox",
    "SandboxConformance",
    "ScriptedModel",
    "codedance_cli",
    "codedance_config",
    "codedance_registry",
    "register_plugin",
]

RegisterPlugin = Callable[..., Registry]


@pytest.fixture
def codedance_registry() -> Iterator[Registry]:
    """A registry with only the built-in plugins, used by everything during the test."""
    registry = load_registry(env={"CODEDANCE_LOAD_PLUGINS": ""})
    with use_registry(registry):
        yield registry


@pytest.fixture
def register_plugin(codedance_registry: Registry) -> RegisterPlugin:
    """``register_plugin(plugin, name=None)``: load ``plugin`` for this test only.

    Raises ``AssertionError`` with the recorded problem if the plugin is rejected
    (unknown hook, bad signature), so a broken plugin fails its own test loudly.
    """

    def register(plugin: object, name: str | None = None) -> Registry:
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        source = getattr(plugin, "__file__", None)
        if not codedance_registry.add_plugin(plugin, PluginInfo(label, "test", source=source)):
            raise AssertionError(str(codedance_registry.problems[-1]))
        return codedance_registry

    return register


@pytest.fixture
def codedance_cli(codedance_registry: Registry) -> Callable[..., Result]:
    """``codedance_cli("plugins", "--json")``: run the CLI in-process, return click's Result."""
    from click.testing import CliRunner

    from codedance.core.cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def codedance_config(tmp_path: Path) -> Callable[..., Config]:
    """``codedance_config("runtime: {max_turns: 3}", "sandbox.timeout_s=5")`` -> Config."""
    from codedance.core.config import load_config

    def make(yaml_text: str = "", *overrides: str, env: dict[str, str] | None = None) -> Config:
        path = tmp_path / "config.yaml"
        path.write_text(yaml_text, encoding="utf-8")
        return load_config(path, overrides, env=dict(os.environ) if env is None else env)

    return make


def __getattr__(name: str) -> object:
    """``SandboxConformance`` and ``ScriptedModel`` load on first use (light pytest start-up)."""
    if name == "SandboxConformance":
        from codedance.sandboxes.conformance import SandboxConformance

        return SandboxConformance
    if name == "ScriptedModel":
        from codedance.runtime.scripted import ScriptedModel

        return ScriptedModel
    if name == "HandlerSandbox":
        from codedance.sandboxes.handler import HandlerSandbox

        return HandlerSandbox
    raise AttributeError(f"module 'codedance.testing' has no attribute {name!r}")
