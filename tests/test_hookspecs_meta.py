"""Meta-tests: every hook is documented in docs/plugins.md, its example runs, and it
has a registration test; docs and code cannot drift apart silently."""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import click
import pytest

from codedance import hookimpl
from codedance.core import hookspecs
from codedance.core.registry import KINDS
from tests.sample_tools import sample_tool

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = sorted(
    name for name, obj in vars(hookspecs).items() if name.startswith("register_") and callable(obj)
)


@click.command("sample")
def _sample_command() -> None:
    """A sample command."""


#: one sample registration per hook, used to prove each hook really registers.
SAMPLES = {
    "register_tools": ("tool", sample_tool),
    "register_sandboxes": ("sandbox", type("SampleSandbox", (), {"name": "sample"})),
    "register_rewards": ("reward", lambda group: [0.0 for _ in group]),
    "register_models": ("model", type("SampleModel", (), {"name": "sample"})),
    "register_benchmarks": ("benchmark", lambda path: []),
    "register_protocols": ("protocol", type("SampleProtocol", (), {"name": "sample"})),
    "register_commands": ("command", _sample_command),
}


def _doc_sections() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_kinds_table_matches_the_hookspecs():
    assert sorted(KINDS.values()) == HOOKS


def test_every_hook_has_a_registration_sample():
    assert sorted(SAMPLES) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_typed_and_documented_in_code(hook):
    spec = getattr(hookspecs, hook)
    assert spec.__doc__
    assert "Called once per process" in spec.__doc__
    assert ":param register:" in spec.__doc__
    assert spec.__annotations__ == {"register": "Register", "return": "None"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_names_what_it_registers(hook):
    """A ``Registers:`` paragraph names the base class (or function shape) of the kind."""
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "\nRegisters: " in doc, f"{hook}'s docstring has no 'Registers:' paragraph"
    for dotted in re.findall(r":(?:class|func|mod):`([\w.]+)`", doc.split("Registers: ")[1]):
        module, _, attribute = dotted.rpartition(".")
        try:
            target = importlib.import_module(dotted)
        except ImportError:
            target = getattr(importlib.import_module(module), attribute, None)
        assert target is not None, f"{hook}'s docstring names {dotted}, which does not exist"


def test_a_new_hookspec_is_a_new_kind():
    """KINDS is derived from the hookspecs, so adding a kind is one edit."""
    assert list(KINDS) == ["tool", "sandbox", "reward", "model", "benchmark", "protocol", "command"]
    assert all(getattr(hookspecs, hook) for hook in KINDS.values())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_registers_its_kind(hook, register_plugin):
    kind, obj = SAMPLES[hook]

    def implementation(register):
        register(obj, name="sample")

    plugin = types.SimpleNamespace(**{hook: hookimpl(implementation)})
    registry = register_plugin(plugin, name=f"sample-{kind}")
    assert registry.get(kind, "sample") is obj
    assert registry.problems == []


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docs_section_headed_by_its_signature(hook):
    signature = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    signature = signature.replace(": 'Register'", "").replace(" -> 'None'", "")
    assert signature in _doc_sections(), f"docs/plugins.md needs a '## {signature}' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_docs_example_runs_and_registers_its_kind(
    hook, register_plugin, tmp_path, monkeypatch
):
    """The section's last ```python block is the plugin; blocks headed ``# name.py: ...``
    before it are modules it imports (tools live apart from the plugin module)."""
    (section,) = [body for title, body in _doc_sections().items() if title.startswith(hook)]
    *helpers, plugin = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    for helper in helpers:
        name = re.match(r"# (\w+)\.py", helper)
        assert name, f"a helper block of {hook} starts with '# <module>.py: ...'"
        (tmp_path / f"{name[1]}.py").write_text(helper)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType(f"docs_example_{hook}")
    exec(compile(plugin, f"docs/plugins.md:{hook}", "exec"), module.__dict__)
    registry = register_plugin(module, name=f"docs-{hook}")
    kind = SAMPLES[hook][0]
    assert [e for e in registry.entries(kind) if e.plugin.name == f"docs-{hook}"]
    assert registry.problems == []
