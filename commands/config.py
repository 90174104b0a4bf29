"""``codedance config show``: the merged configuration and where each value was set."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.core.sources import ConfigSources


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
