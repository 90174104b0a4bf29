"""The tool catalog: enabled patterns, descriptions, the prompt within its budget, the CLI."""

from __future__ import annotations

import json
import types

from codedance import hookimpl
from codedance.core.tools import (
    TOOLS_HEADER,
    describe_tool,
    enabled_tools,
    estimate_tokens,
    render_tools_prompt,
    tool_docs,
)
from codedance.tools._images import resolve_box
from tests.sample_tools import format_length, rect_area, undocumented


def _plugin() -> types.SimpleNamespace:
    @hookimpl
    def register_tools(register):  # type: ignore[no-untyped-def]
        register(format_length)
        register(rect_area)
        register(undocumented)

    return types.SimpleNamespace(register_tools=register_tools, __name__="catalog_plugin")


def test_signature_and_first_paragraph_describe_a_tool():
    doc = describe_tool("format_length", format_length, "p")
    assert doc.signature == "format_length(length: float, unit: str = 'cm') -> str"
    assert doc.summary == "Format `length` with its unit. Rounds to two decimals."
    assert doc.first_sentence == "Format `length` with its unit."
    assert "Longer explanation" in doc.doc


def test_qualified_type_names_are_shortened():
    doc = describe_tool("resolve_box", resolve_box)
    assert doc.signature == (
        "resolve_box(box: Box, width: int, height: int, coords: Coords = 'auto') "
        "-> tuple[int, int, int, int]"
    )


def test_undocumented_tools_say_so():
    doc = describe_tool("undocumented", undocumented)
    assert (doc.signature, doc.summary) == ("undocumented(x)", "(undocumented)")


def test_enabled_patterns_choose_and_order_tools(register_plugin):
    registry = register_plugin(_plugin())
    assert list(enabled_tools(registry, ["rect_area", "format_len*"])) == [
        "rect_area",
        "format_length",
    ]
    assert list(enabled_tools(registry, ["*"]))[-3:] == [
        "format_length",
        "rect_area",
        "undocumented",
    ]
    assert enabled_tools(registry, []) == {}


def test_full_prompt_lists_every_tool_with_its_summary():
    docs = [describe_tool("format_length", format_length), describe_tool("rect_area", rect_area)]
    text = render_tools_prompt(docs, 2000)
    assert text.startswith(TOOLS_HEADER)
    assert "format_length(length: float, unit: str = 'cm') -> str\n    Format `length`" in text
    assert "Rounds to two decimals." in text
    assert "Longer explanation" not in text


def test_glossary_explains_only_the_type_names_in_use():
    plain = render_tools_prompt([describe_tool("rect_area", rect_area)], 2000)
    boxes = render_tools_prompt([describe_tool("resolve_box", resolve_box)], 2000)
    assert "- Box:" not in plain
    assert "- Box:" in boxes
    assert "- Coords:" in boxes


def test_a_tight_budget_keeps_first_sentences_then_names():
    docs = [
        describe_tool("format_length", format_length),
        describe_tool("rect_area", rect_area),
    ] * 1
    full = render_tools_prompt(docs, 2000)
    short = render_tools_prompt(docs, estimate_tokens(full) - 1)
    assert "Rounds to two decimals." not in short
    assert "Format `length` with its unit." in short
    tiny = render_tools_prompt(docs, estimate_tokens(TOOLS_HEADER) + 12)
    assert "Also available:" in tiny
    assert "rect_area" in tiny


def test_prompt_respects_the_budget_for_many_tools():
    docs = [describe_tool(f"tool_{i}", format_length) for i in range(200)]
    text = render_tools_prompt(docs, 500)
    assert estimate_tokens(text) <= 500
    assert "more." in text


def test_no_tools_means_no_section():
    assert render_tools_prompt([], 100) == ""


def test_tool_docs_name_the_plugin(register_plugin):
    registry = register_plugin(_plugin())
    docs = {d.name: d for d in tool_docs(registry, ["format_length"])}
    assert docs["format_length"].plugin == "catalog_plugin"


def test_tools_command_lists_signatures_and_docs(register_plugin, codedance_cli):
    register_plugin(_plugin())
    result = codedance_cli("-o", "tools.enabled=[format_length, rect_area]", "tools")
    assert result.exit_code == 0, result.output
    assert "format_length(length: float, unit: str = 'cm') -> str" in result.output
    assert "Longer explanation the prompt leaves out." in result.output
    assert "undocumented" not in result.output


def test_tools_command_prompt_is_the_system_prompt_the_model_sees(register_plugin, codedance_cli):
    """The configured protocol's system prompt with the rendered tools section in it."""
    from codedance.plugins.protocols.codedance import SYSTEM
    from codedance.plugins.protocols.tagged import TaggedCodeProtocol

    registry = register_plugin(_plugin())
    section = render_tools_prompt(tool_docs(registry, ["rect_area"]), 2000)
    result = codedance_cli("-o", "tools.enabled=[rect_area]", "tools", "--prompt")
    assert result.exit_code == 0, result.output
    assert result.output == f"{SYSTEM}\n\n{section}\n"
    tagged = codedance_cli(
        "-o", "tools.enabled=[rect_area]", "-o", "protocol.name=tagged-code", "tools", "--prompt"
    )
    assert tagged.output == TaggedCodeProtocol().system_prompt(section) + "\n"


def test_the_runtime_sends_that_same_system_prompt(codedance_registry, codedance_cli):
    from codedance.core.config import Config
    from codedance.runtime.build import build_runner
    from codedance.sandboxes.handler import HandlerSandbox

    config = Config.model_validate({"tools": {"enabled": ["crop", "zoom"]}})
    runner = build_runner(config, codedance_registry, sandbox=HandlerSandbox())
    printed = codedance_cli("-o", "tools.enabled=[crop, zoom]", "tools", "--prompt").output
    assert runner.system + "\n" == printed
    assert "crop(image: ImageLike" in printed
    assert runner.tools is not None
    assert runner.tools.names == ("crop", "zoom")


def test_tools_command_json_and_all(register_plugin, codedance_cli):
    register_plugin(_plugin())
    result = codedance_cli("-o", "tools.enabled=[rect_area]", "tools", "--json", "--all")
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {"format_length", "rect_area", "undocumented"} <= set(rows)
    assert rows["rect_area"]["plugin"] == "catalog_plugin"
    assert rows["rect_area"]["signature"] == "rect_area(width: float, height: float) -> float"
