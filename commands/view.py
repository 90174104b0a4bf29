"""``codedance view``: a run's trajectories as one self-contained HTML page."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from codedance.core.errors import CodedanceError
from codedance.runtime.viewer import default_output, load_run, render_html, save_page


@click.command("view")
@click.argument("out", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page [default: OUT/view.html, or <name>.html beside a .jsonl].",
)
@click.option("--limit", type=click.IntRange(min=1), help="Show only the first N trajectories.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
def view_command(out: Path, output: Path | None, limit: int | None, open_page: bool) -> None:
    """Write a run's trajectories as one self-contained HTML page.

    OUT is a run's output folder (with trajectories.jsonl) or a trajectories .jsonl
    file. Images are embedded, so the page can be moved or mailed on its own.
    """
    try:
        run = load_run(out)
    except CodedanceError as exc:
        raise click.ClickException(str(exc)) from None
    target = save_page(render_html(run, limit=limit), output or default_output(out))
    shown = len(run.trajectories) if limit is None else min(limit, len(run.trajectories))
    click.echo(f"wrote {target} ({shown} of {len(run.trajectories)} trajectories)")
    if run.broken:
        click.secho(
            f"warning: {len(run.broken)} unreadable lines in {run.source}", fg="yellow", err=True
        )
    if open_page:
        webbrowser.open(target.resolve().as_uri())
