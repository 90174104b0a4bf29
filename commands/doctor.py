"""``codedance doctor``: which extras, system tools and backends are usable here."""

from __future__ import annotations

import json

import click

from codedance.commands import console
from codedance.core.cli import App, pass_app

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
        console().print(table)
    bad = {"fail", "warn"} if strict else {"fail"}
    if any(c.status in bad for c in checks):
        raise SystemExit(1)
