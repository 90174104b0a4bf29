"""The docker backend's ``sandbox.options``, validated (kept apart so pydantic loads lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codedance.core.errors import ConfigError

__all__ = ["DockerOptions", "parse_options"]


class DockerOptions(BaseModel):
    """``sandbox.options`` of the docker backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field("python:3.11-slim", min_length=1, description="image to run")
    python: str = Field("python3", min_length=1, description="the image's interpreter")
    base_url: str | None = Field(None, description="engine URL; default: DOCKER_HOST")
    cpus: float | None = Field(None, gt=0, description="CPUs per container (nano_cpus)")
    pull: bool = Field(False, description="pull the image when the engine lacks it")
    user: str | None = Field("65534:65534", description="uid[:gid]; None: the image's")
    preload: list[str] | None = Field(None, description="modules imported before ready")


def parse_options(options: Mapping[str, Any]) -> DockerOptions:
    """Validate ``sandbox.options``; ConfigError naming each bad ``sandbox.options.<key>``."""
    try:
        return DockerOptions.model_validate(dict(options))
    except ValidationError as exc:
        known = ", ".join(DockerOptions.model_fields)
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            problems.append(f"sandbox.options.{key}={error.get('input')!r}: {error['msg']}")
        raise ConfigError(
            f"invalid docker sandbox options: {'; '.join(problems)} (known options: {known})"
        ) from None
