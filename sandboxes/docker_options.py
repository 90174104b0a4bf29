"""The docker backend's ``sandbox.options``, validated (kept apart so pydantic loads lazily)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codedance.core.errors import ConfigError
from codedance.sandboxes.docker_image import DEFAULT_IMAGE

__all__ = ["DEFAULT_IMAGE", "DockerOptions", "parse_options"]

_USER = re.compile(r"^([0-9]+)(?::([0-9]+))?$")


class DockerOptions(BaseModel):
    """``sandbox.options`` of the docker backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(DEFAULT_IMAGE, min_length=1, description="image to run")
    python: str = Field("python3", min_length=1, description="the image's interpreter")
    base_url: str | None = Field(None, description="engine URL; default: DOCKER_HOST")
    cpus: float | None = Field(1.0, gt=0, description="CPUs per container; null: no quota")
    pull: bool = Field(False, description="pull the image when the engine lacks it")
    user: str = Field("65534:65534", description="numeric uid[:gid] that model code runs as")
    preload: list[str] | None = Field(None, description="modules imported before ready")
    pool_size: int = Field(2, ge=0, le=64, description="containers kept booted and warm")

    @field_validator("user")
    @classmethod
    def _numeric_non_root(cls, user: str) -> str:
        match = _USER.match(user)
        if match is None or int(match.group(1)) == 0:
            raise ValueError(
                "must be a numeric uid[:gid] other than 0 (model code never runs as root; "
                "the container's relay is root), for example '65534:65534'"
            )
        return user

    def ids(self) -> tuple[int, int]:
        """(uid, gid) of model code; gid defaults to uid."""
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)


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
