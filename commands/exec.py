"""``codedance exec``: run code in a fresh sandbox session and print the record."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from codedance.core.cli import App, pass_app
from codedance.core.terminal import printable
from codedance.sandboxes.base import ExecutionRecord, InputFile, SandboxBackend, SessionSpec

if TYPE_CHECKING:
    from codedance.sandboxes.tools import ToolBundle


@click.command("exec")
@click.argument("source", metavar="FILE|-", type=click.File("r", encoding="utf-8", lazy=False))
@click.option("--backend", help="Sandbox backend (default: sandbox.backend in the config).")
@click.option("--timeout", type=float, help="Seconds before the run is stopped.")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=(
        "Input image (repeatable), preloaded as in a model's session: `input_image` "
        "(then `input_image_2`, ...), also `image`/`images`; the file keeps its own name too."
    ),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for produced images (default: a new temporary folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-tools", is_flag=True, help="Do not bind the enabled tools in the session.")
@pass_app
def exec_command(
    app: App,
    source: TextIO,
    backend: str | None,
    timeout: float | None,
    images: tuple[Path, ...],
    out: Path | None,
    as_json: bool,
    no_tools: bool,
) -> None:
    """Run FILE (or - for stdin) in a fresh sandbox session and print what happened.

    The tools enabled in the config are bound by name, as in a model's session.
    Exits 0 whenever a record was produced, whatever the code did.
    """
    code = source.read()
    settings = app.config.sandbox
    name = backend or settings.backend
    backend_class: type[SandboxBackend] = app.registry.get("sandbox", name)
    spec = SessionSpec(
        images=[InputFile(name, p.read_bytes()) for name, p in _session_names(images)],
        files=[InputFile(p.name, p.read_bytes()) for p in images],
        on_error=settings.on_error,
        tools=None if no_tools else _tool_bundle(app),
    )
    sandbox = backend_class(settings.model_copy(update={"backend": name}))
    with sandbox, sandbox.open_session(sandbox.session_spec(spec)) as session:
        record = session.run(code, timeout)
    paths = _save_images(record, out)
    if as_json:
        click.echo(json.dumps(record.to_json(paths)))
    else:
        _print_human(record, paths)


def _session_names(images: tuple[Path, ...]) -> list[tuple[str, Path]]:
    """``input_image.png``, ``input_image_2.jpg``, ...: the names a model's session gives images.

    So code tried here with ``exec`` runs unchanged in ``codedance run`` (prompts name
    ``input_image``); ``image``/``images`` are bound in both.
    """
    stems = (f"input_image_{i + 1}" if i else "input_image" for i in range(len(images)))
    return [(stem + (p.suffix.lower() or ".png"), p) for stem, p in zip(stems, images, strict=True)]


def _tool_bundle(app: App) -> ToolBundle | None:
    from codedance.core.tools import enabled_tools
    from codedance.sandboxes.tools import bundle_tools

    tools = enabled_tools(app.registry, app.config.tools.enabled)
    return bundle_tools(tools) if tools else None


def _save_images(record: ExecutionRecord, out: Path | None) -> list[str]:
    if not record.images:
        return []
    folder = out or Path(tempfile.mkdtemp(prefix="codedance-exec-"))
    folder.mkdir(parents=True, exist_ok=True)
    return [str(image.save(folder / f"image_{i}.png")) for i, image in enumerate(record.images)]


def _print_human(record: ExecutionRecord, paths: list[str]) -> None:
    """The record for a person: control characters from the code are shown, not obeyed."""
    stdout, stderr = printable(record.stdout), printable(record.stderr)
    if stdout:
        click.echo(stdout, nl=not stdout.endswith("\n"))
    if stderr:
        click.echo(stderr, nl=not stderr.endswith("\n"), err=True)
    if record.error is not None:
        click.echo(
            printable(record.error.traceback or f"{record.error.type}: {record.error.message}"),
            err=True,
            nl=False,
        )
        if not record.error.traceback:
            click.echo(err=True)
    for path in paths:
        click.echo(f"image: {printable(path)}", err=True)
    status = "ok" if record.ok else ("timed out" if record.timed_out else "failed")
    click.echo(
        f"[{status} in {record.duration_s:.3f} s; isolation: {printable(record.isolation)}]",
        err=True,
    )
    sys.stderr.flush()
