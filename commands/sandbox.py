"""``codedance sandbox ...``: commands about sandbox images (Docker)."""

from __future__ import annotations

from pathlib import Path

import click

from codedance.sandboxes.docker_image import DEFAULT_IMAGE

__all__ = ["sandbox_group"]


@click.group("sandbox")
def sandbox_group() -> None:
    """Sandbox images and backends."""


@sandbox_group.command("build-image")
@click.option(
    "--base",
    default="python:3.11-slim",
    show_default=True,
    help="Image to build on: any image with Python 3.10+ (pulled if the engine lacks it).",
)
@click.option("--tag", default=DEFAULT_IMAGE, show_default=True, help="Name of the new image.")
@click.option("--python", default="python3", show_default=True, help="The base's interpreter.")
@click.option(
    "--pip-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle for pip inside the build (networks that intercept TLS).",
)
@click.option("--base-url", help="Docker engine URL (default: DOCKER_HOST or the local socket).")
def build_image_command(
    base: str, tag: str, python: str, pip_cert: Path | None, base_url: str | None
) -> None:
    """Build the sandbox image: BASE plus the `tools` extra and codedance's worker.

    Then run sessions in it with `-o sandbox.backend=docker -o sandbox.options.image=TAG`
    (TAG is the docker backend's default image).
    """
    from codedance.sandboxes.docker_build import build_image

    image_id = build_image(base, tag, python=python, pip_cert=pip_cert, base_url=base_url)
    click.echo(f"built {tag} ({image_id}) from {base}")
