"""The registry: registration through the hooks, lookups, and loud failures."""

from __future__ import annotations

import io
import re
import sys

import click
import pytest

from codedance import hookimpl
from codedance.core.discovery import BUILTIN_PLUGINS
from codedance.core.errors import (
    DuplicateNameError,
    HookCallError,
    PluginLoadError,
    PluginLoadWarning,
    UnknownNameError,
)
from codedance.core.registry import KINDS, PluginInfo, Registry
from tests.sample_tools import magnify


def _names_not_builtin(registry: Registry, kind: str) -> list[str]:
    """Names of ``kind`` registered by the test's plugins, whatever the built-ins register."""
    return sorted(e.name for e in registry.entries(kind) if e.plugin.origin != "builtin")


class ToolPlugin:
    @hookimpl
    def register_tools(self, register):
        register(magnify)


def test_registered_tool_is_found_with_its_plugin(register_plugin):
    registry = register_plugin(ToolPlugin(), name="vision")
    entry = registry.entry("tool", "magnify")
    assert entry.obj is magnify
    assert entry.plugin.name == "vision"
    assert entry.plugin.origin == "test"
    assert entry.source == sys.modules[magnify.__module__].__file__


def test_explicit_name_overrides_function_name(register_plugin):
    class Named:
        @hookimpl
        def register_tools(self, register):
            register(magnify, name="magnify_more")

    assert register_plugin(Named()).get("tool", "magnify_more") is magnify


def test_name_defaults_to_name_attribute_for_classes(register_plugin):
    class Local:
        name = "local-fast"

    class Plugin:
        @hookimpl
        def register_sandboxes(self, register):
            register(Local)

    assert register_plugin(Plugin()).get("sandbox", "local-fast") is Local


def test_unknown_name_lists_registered_names_and_suggests(register_plugin):
    registry = register_plugin(ToolPlugin())
    with pytest.raises(UnknownNameError) as raised:
        registry.get("tool", "magnfy")
    listed = re.search(
        r"no tool named 'magnfy' is registered \(registered: ([^)]*)\)", str(raised.value)
    )
    assert listed, str(raised.value)
    assert listed.group(1).split(", ") == registry.names("tool")
    assert "Did you mean 'magnify'?" in str(raised.value)


def test_unknown_kind_is_an_error_listing_kinds(codedance_registry):
    with pytest.raises(Exception, match="unknown kind 'tools'; the kinds are: tool, sandbox"):
        codedance_registry.entries("tools")


def test_duplicate_name_names_both_plugins_and_blocks_the_name(register_plugin):
    class Again:
        @hookimpl
        def register_tools(self, register):
            register(magnify)

    register_plugin(ToolPlugin(), name="first-plugin")
    registry = register_plugin(Again(), name="second-plugin")
    with pytest.warns(PluginLoadWarning, match="first-plugin"):
        problems = registry.problems
    assert isinstance(problems[0], DuplicateNameError)
    assert "'first-plugin' and 'second-plugin'" in str(problems[0])
    with pytest.raises(DuplicateNameError, match="first-plugin"):
        registry.get("tool", "magnify")


def test_hook_that_raises_is_reported_and_others_keep_working(register_plugin):
    class Broken:
        @hookimpl
        def register_tools(self, register):
            register(magnify, name="half_registered")
            raise RuntimeError("no GPU here")

    register_plugin(Broken(), name="broken")
    registry = register_plugin(ToolPlugin(), name="healthy")
    with pytest.warns(PluginLoadWarning, match="broken"):
        assert _names_not_builtin(registry, "tool") == ["magnify"]
    (problem,) = registry.problems
    assert isinstance(problem, HookCallError)
    assert problem.plugin == "broken"
    assert "RuntimeError: no GPU here" in str(problem)


def test_misspelled_hook_is_rejected_with_a_suggestion(codedance_registry):
    class Typo:
        @hookimpl
        def register_tool(self, register):  # missing the "s"
            register(magnify)

    with pytest.warns(PluginLoadWarning):
        added = codedance_registry.add_plugin(Typo(), PluginInfo("typo", "test"))
    assert not added
    (problem,) = codedance_registry.problems
    assert isinstance(problem, PluginLoadError)
    assert "unknown hook 'register_tool'" in str(problem)
    assert "did you mean 'register_tools'?" in str(problem)
    assert "typo" not in [p.name for p in codedance_registry.plugins]


def test_wrong_hook_argument_is_rejected(codedance_registry):
    class WrongArgs:
        @hookimpl
        def register_tools(self, registrar):
            registrar(magnify)

    with pytest.warns(PluginLoadWarning, match="registrar"):
        assert not codedance_registry.add_plugin(WrongArgs(), PluginInfo("wrong", "test"))


def test_register_fixture_fails_loudly_for_rejected_plugin(register_plugin):
    class Typo:
        @hookimpl
        def register_sandboxs(self, register):
            pass

    with pytest.warns(PluginLoadWarning), pytest.raises(AssertionError, match="register_sandboxes"):
        register_plugin(Typo())


@pytest.mark.parametrize(
    ("kind", "obj", "name", "message"),
    [
        ("tool", lambda: 1, None, "'<lambda>' .* is not a Python identifier"),
        ("tool", magnify, "class", "'class' .* is not a Python identifier"),
        ("tool", 42, "answer", "is a int, not a function"),
        ("sandbox", object, "has space", "must start with a letter"),
        ("command", magnify, "magnify", "not a click.Command"),
    ],
)
def test_invalid_registrations_are_reported(register_plugin, kind, obj, name, message):
    class Plugin:
        pass

    def hook(self, register):
        register(obj, name=name)

    setattr(Plugin, KINDS[kind], hookimpl(hook))
    registry = register_plugin(Plugin(), name="bad")
    with pytest.warns(PluginLoadWarning):
        (problem,) = registry.problems
    assert problem.plugin == "bad"
    assert re.search(message, str(problem)), str(problem)


def test_plugins_are_listed_in_load_order_with_their_hooks(register_plugin):
    registry = register_plugin(ToolPlugin(), name="vision")
    names = [p.name for p in registry.plugins]
    assert names == [*BUILTIN_PLUGINS, "vision"]
    assert registry.hooks_of("vision") == ["register_tools"]


def test_entries_of_every_kind_can_be_listed(codedance_registry):
    commands = codedance_registry.entries("command")
    assert {"plugins", "config", "doctor", "exec", "bench"} <= {e.name for e in commands}
    assert all(isinstance(e.obj, click.Command) for e in commands)
    for kind in KINDS:
        assert all(e.kind == kind for e in codedance_registry.entries(kind))


def test_adding_a_plugin_after_lookup_is_seen(codedance_registry):
    before = codedance_registry.names("tool")
    assert "magnify" not in before
    codedance_registry.add_plugin(ToolPlugin(), PluginInfo("late", "test"))
    assert codedance_registry.names("tool") == sorted([*before, "magnify"])


def test_trace_reports_loading_and_registration():
    trace = io.StringIO()
    registry = Registry(trace=trace)
    registry.add_plugin(ToolPlugin(), PluginInfo("traced", "test", source="x.py"))
    registry.entries()
    lines = trace.getvalue()
    assert "loaded plugin 'traced' (test, x.py)" in lines
    assert "calling register_tools of plugin 'traced'" in lines
    assert "registered tool 'magnify' from plugin 'traced'" in lines


def test_plugin_without_any_hook_is_rejected_with_the_reason(codedance_registry):
    class Forgot:
        def register_tools(self, register):  # no @hookimpl
            register(magnify)

    with pytest.warns(PluginLoadWarning):
        assert not codedance_registry.add_plugin(Forgot(), PluginInfo("forgot", "test"))
    (problem,) = codedance_registry.problems
    assert "defines register_tools without @hookimpl" in str(problem)
    with pytest.warns(PluginLoadWarning, match="implements no codedance hook"):
        codedance_registry.add_plugin(object(), PluginInfo("empty", "test"))
