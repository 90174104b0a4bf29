"""Built-in CLI commands (``plugins``, ``config``, ``doctor``), registered as a plugin.

This module is an ordinary plugin: it implements the public ``register_commands``
hook exactly as a third-party package would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance import __version__
from codedance.core.cli import App, pass_app
from codedance.core.hookspecs import Register, hookimpl
from codedance.core.registry import KINDS, PluginInfo
from codedance.core.tools_cli import tools_command

if TYPE_CHECKING:
    from rich.console import Console

    from codedance.core.registry import Registry
    from codedance.core.sources import ConfigSources


@hookimpl
def register_commands(register: Register) -> None:
    register(plugins_command)
    register(config_group)
    register(doctor_command)
    register(tools_command)


def _console() -> Console:
    from rich.console import Console

    # Wide enough for paths when piped; a terminal keeps its own width.
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)


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


# -- codedance plugins --------------------------------------------------------------


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

    console = _console()
    console.print(_components_table(registry, kind))
    console.print(_plugins_table(registry))
    for problem in registry.problems:
        console.print(Text.assemble(("problem", "red"), f" ({problem.plugin}): {problem}"))


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


# -- codedance config ---------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Show and check the merged configuration (registry.yaml + --config + -o)."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@click.option("--origins", is_flag=True, help="Also show where each value was set.")
@pass_app
def config_show(app: App, as_json: bool, origins: bool) -> None:
    """Print the validated, merged configuration (secrets masked)."""
    data = app.config.public_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
    if origins:
        click.echo("\n# where each value was set", err=as_json)
        for line in _origin_lines(app.sources.data, app.sources, ()):
            click.echo(line, err=as_json)


def _origin_lines(value: Any, sources: ConfigSources, path: tuple[str | int, ...]) -> list[str]:
    """``# key.path: file:line`` for every leaf, in the order the config lists them."""
    from codedance.core.sources import format_path

    if isinstance(value, dict) and value:
        children: list[tuple[str | int, Any]] = list(value.items())
    elif isinstance(value, list) and value:
        children = list(enumerate(value))
    else:
        return [f"# {format_path(path)}: {sources.where(path)}"]
    return [line for key, item in children for line in _origin_lines(item, sources, (*path, key))]


# -- codedance doctor ---------------------------------------------------------------

_MARK = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}


@click.command("doctor")
@click.option("--strict", is_flag=True, help="Exit 1 on any warning, not only on failures.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def doctor_command(app: App, strict: bool, as_json: bool) -> None:
    """Check which extras, system tools and backends are usable here, with fixes."""
    from rich.table import Table
    from rich.text import Text

    from codedance.core.doctor import run_checks

    checks = run_checks(app)
    if as_json:
        click.echo(json.dumps([vars(c) for c in checks], indent=2))
    else:
        table = Table(title="codedance doctor", title_justify="left")
        for column in ("area", "check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.area, Text(c.name), _MARK[c.status], Text(c.detail), Text(c.fix))
        _console().print(table)
    bad = {"fail", "warn"} if strict else {"fail"}
    if any(c.status in bad for c in checks):
        raise SystemExit(1)
