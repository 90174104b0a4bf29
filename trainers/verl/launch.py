"""Compose, validate and launch one verl run of a codedance configuration.

Shared by ``codedance train`` and ``codedance train --smoke``: the codedance
configuration is written for the workers (secrets left out), verl's overrides are
generated (:func:`codedance.trainers.verl.config.verl_overrides`), composed with
verl's own schema and checked by verl's ``validate_config`` before anything starts,
and the run itself is stock ``verl.trainer.main_ppo`` in a subprocess, locally or
on an existing Ray cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from codedance.core.errors import ConfigError

if TYPE_CHECKING:
    from codedance.core.config import Config

__all__ = ["Prepared", "launch", "prepare"]


@dataclass(frozen=True)
class Prepared:
    """A validated run: its overrides, the files written for it, its device."""

    overrides: list[str]
    config_file: Path
    workdir: Path
    device: str


def prepare(config: Config, extra: Sequence[str] = ()) -> Prepared:
    """Write the worker config, compose verl's config with ``extra`` last, validate it."""
    from codedance.trainers.verl.config import compose, verl_overrides

    workdir = Path(config.training.output_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = _write_codedance_config(config, workdir)
    overrides = [*verl_overrides(config, workdir, config_file), *extra]
    composed = compose(overrides)
    _validate(composed)
    _write_verl_config(composed, workdir)
    return Prepared(overrides, config_file, workdir, config.training.device)


def launch(
    run: Prepared,
    ray_address: str | None = None,
    env: Mapping[str, str] | None = None,
    output: IO[str] | None = None,
) -> int:
    """Run verl's ``main_ppo`` on ``run``; its exit status. ``output``: where its log goes."""
    from codedance.trainers.verl.config import CONFIG_ENV, cpu_environment

    variables = {**os.environ, CONFIG_ENV: str(run.config_file), **(env or {})}
    if run.device == "cpu":
        variables.update(cpu_environment())
    if ray_address:
        variables["RAY_ADDRESS"] = ray_address
    # Hydra's own files (the composed config, main_ppo.log) go to the run's folder, not
    # to ./outputs/<date>/ in whatever directory codedance was started from.
    hydra_dir = f"hydra.run.dir={run.workdir / 'hydra'}"
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *run.overrides, hydra_dir]
    return subprocess.call(command, env=variables, stdout=output, stderr=output)


def _write_codedance_config(config: Config, workdir: Path) -> Path:
    """The merged codedance configuration for the workers (secrets left out)."""
    import yaml

    data = config.model_dump(mode="json", exclude={"model": {"api_key"}})
    path = workdir / "codedance.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _validate(composed: Any) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        validate_config(
            config=composed,
            use_reference_policy=need_reference_policy(composed),
            use_critic=need_critic(composed),
        )
    except Exception as exc:  # verl raises assertions and instantiation errors
        raise ConfigError(
            f"verl's validate_config rejected the configuration: {exc}. Fix: adjust the "
            f"training section or pass a verl override."
        ) from None


def _write_verl_config(composed: Any, workdir: Path) -> None:
    from omegaconf import OmegaConf

    (workdir / "verl_config.yaml").write_text(OmegaConf.to_yaml(composed), encoding="utf-8")
