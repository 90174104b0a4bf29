"""Tests for the example plugin, using the fixtures of the codedance.testing pytest plugin."""

from __future__ import annotations

import json

import codedance_hello_tool
from codedance_hello_tool import count_words, hello


def test_hello_is_registered_under_its_function_name(register_plugin):
    registry = register_plugin(codedance_hello_tool)
    assert registry.get("tool", "hello") is hello
    assert registry.get("tool", "hello")("Ada") == "Hello, Ada!"


def test_hello_greets_the_world_by_default():
    assert hello() == "Hello, world!"


def test_count_words_splits_on_any_whitespace(register_plugin):
    registry = register_plugin(codedance_hello_tool)
    assert registry.get("tool", "count_words") is count_words
    assert count_words("  one two\tthree\nfour ") == 4
    assert count_words("") == 0


def test_plugin_registers_without_problems(register_plugin):
    registry = register_plugin(codedance_hello_tool)
    assert registry.problems == []
    assert registry.names("tool") == ["count_words", "hello"]


def test_plugins_command_lists_the_tools_and_the_plugin(register_plugin, codedance_cli):
    register_plugin(codedance_hello_tool)
    result = codedance_cli("plugins", "--json", "--kind", "tool")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    tools = {c["name"]: c["plugin"] for c in report["components"]}
    assert tools == {"hello": "codedance_hello_tool", "count_words": "codedance_hello_tool"}
    assert "codedance_hello_tool" in [p["name"] for p in report["plugins"]]
    assert report["problems"] == []
