"""``codedance plugins``: the registered components and the plugins that provide them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance import __version__
from codedance.commands import console
from codedance.core.cli import App, pass_app
from codedance.core.registry import KINDS, PluginInfo

if TYPE_CHECKING:
    from codedance.core.registry import Registry


def _short(path: str | None) -> str:
    if not path:
        return "-"
    marker = f"site-packages{os.sep}"
    if marker in path:
        return path.split(marker, 1)[1]
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


@click.command("plugins")
@click.option("--kind", type=click.Choice(list(KINDS)), help="Only components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plugins_command(app: App, kind: str | None, as_json: bool) -> None:
    """List registered components and the plugins that provide them."""
    registry = app.registry
    if app.config_warning():
        click.secho(app.config_warning(), fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(_plugins_report(registry, kind), indent=2))
        return
    from rich.text import Text

    out = console()
    out.print(_components_table(registry, kind))
    out.print(_plugins_table(registry))
    for problem in registry.problems:
        out.print(Text.assemble(("problem", "red"), f" ({problem.plugin}): {problem}"))


def _plugins_report(registry: Registry, kind: str | None) -> dict[str, Any]:
    return {
        "components": [
            {
                "kind": e.kind,
                "name": e.name,
                "plugin": e.plugin.name,
                "distribution": e.plugin.distribution,
                "version": e.plugin.version,
                "source": e.source,
            }
            for e in registry.entries(kind)
        ],
        "plugins": [
            {**vars(info), "hooks": registry.hooks_of(info.name)} for info in registry.plugins
        ],
        "problems": [
            {"plugin": p.plugin, "type": type(p).__name__, "message": str(p)}
            for p in registry.problems
        ],
    }


def _components_table(registry: Registry, kind: str | None) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Registered components", title_justify="left")
    for column in ("kind", "name", "plugin", "distribution", "source"):
        table.add_column(column, overflow="fold")
    for entry in sorted(registry.entries(kind), key=lambda e: (e.kind, e.name)):
        dist = _distribution(entry.plugin)
        cells = (entry.kind, entry.name, entry.plugin.name, dist, _short(entry.source))
        table.add_row(*map(Text, cells))
    return table


def _distribution(info: PluginInfo) -> str:
    if info.distribution:
        return f"{info.distribution} {info.version or ''}".strip()
    return f"codedance {__version__} (built-in)" if info.origin == "builtin" else "-"


def _plugins_table(registry: Registry) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Loaded plugins", title_justify="left")
    for column in ("plugin", "origin", "distribution", "hooks", "source"):
        table.add_column(column, overflow="fold")
    for info in registry.plugins:
        dist = _distribution(info)
        hooks = ", ".join(registry.hooks_of(info.name))
        cells = (info.name, info.origin, dist, hooks, _short(info.source))
        table.add_row(*map(Text, cells))
    return table
