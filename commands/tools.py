"""``codedance tools``: what the model can call, and the exact prompt text it reads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.core.tools import ToolDoc

__all__ = ["tools_command"]


@click.command("tools")
@click.option("--prompt", "as_prompt", is_flag=True, help="Print the system prompt the model sees.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Also tools that tools.enabled hides.")
@pass_app
def tools_command(app: App, as_prompt: bool, as_json: bool, show_all: bool) -> None:
    """List the enabled tools with their signatures and documentation.

    ``tools.enabled`` in registry.yaml chooses the tools (names or glob patterns) and
    ``tools.prompt_token_budget`` caps their share of the system prompt. ``--prompt``
    prints the whole system prompt of the configured protocol, tools section included.
    """
    from codedance.core.tools import render_tools_prompt, tool_docs

    config = app.config
    docs = tool_docs(app.registry, ["*"] if show_all else config.tools.enabled)
    if as_prompt:
        section = render_tools_prompt(docs, config.tools.prompt_token_budget)
        protocol = app.registry.get("protocol", config.protocol.name)(config.protocol.options)
        click.echo(protocol.system_prompt(section))
    elif as_json:
        click.echo(json.dumps([_as_dict(doc) for doc in docs], indent=2))
    else:
        _print_docs(docs)


def _as_dict(doc: ToolDoc) -> dict[str, str]:
    return {
        "name": doc.name,
        "signature": doc.signature,
        "summary": doc.summary,
        "doc": doc.doc,
        "module": doc.module,
        "plugin": doc.plugin,
    }


def _print_docs(docs: list[ToolDoc]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(soft_wrap=True)
    if not docs:
        console.print("No tools enabled (see tools.enabled in registry.yaml; --all lists all).")
    for doc in docs:
        console.print(Text(doc.signature, style="bold"), Text(f"  [{doc.plugin}]", style="dim"))
        for line in (doc.doc or "(undocumented)").splitlines():
            console.print(Text(f"    {line}"))
        console.print()
