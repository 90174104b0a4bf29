"""``codedance train``: compose verl's configuration from registry.yaml and launch verl.

The composed configuration is validated by verl itself (its Hydra schema and its
``validate_config``) before anything starts; ``--dry-run`` stops there and prints
the overrides. The run itself is stock ``verl.trainer.main_ppo`` in a subprocess,
locally or on an existing Ray cluster (``--ray-address``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.core.config import Config

__all__ = ["train_command"]


@click.command("train")
@click.option("--ray-address", help="An existing Ray cluster (ray://host:10001 or auto).")
@click.option("--dry-run", is_flag=True, help="Compose and validate, print, do not train.")
@click.argument("verl_overrides", nargs=-1, metavar="[VERL_OVERRIDE]...")
@pass_app
def train_command(
    app: App, ray_address: str | None, dry_run: bool, verl_overrides: tuple[str, ...]
) -> None:
    """RL-train the policy on verl with codedance's protocol, sandbox, tools and rewards.

    Settings come from the `training` section of the config (--config train.yaml);
    extra VERL_OVERRIDEs (Hydra syntax, e.g. trainer.save_freq=20) are applied last.
    """
    from codedance.trainers.verl.config import check_versions, compose
    from codedance.trainers.verl.config import verl_overrides as build

    version = check_versions()
    config = app.config
    workdir = Path(config.training.output_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = _write_codedance_config(config, workdir)
    overrides = [*build(config, workdir, config_file), *verl_overrides]
    composed = compose(overrides)
    _validate(composed)
    _write_verl_config(composed, workdir)
    click.echo(f"verl {version}: configuration validated; {len(overrides)} overrides:")
    click.echo("\n".join(f"  {override}" for override in overrides))
    click.echo(f"Composed config: {workdir / 'verl_config.yaml'}")
    _check_inputs(config, dry_run)
    if dry_run:
        return
    sys.exit(_launch(overrides, config_file, ray_address))


def _check_inputs(config: Config, dry_run: bool) -> None:
    """The model path and the rows on disk: warnings for --dry-run, an error before a run."""
    from codedance.core.errors import ConfigError
    from codedance.trainers.verl.inputs import input_problems

    problems = input_problems(config.training)
    if problems and not dry_run:
        raise ConfigError("\n".join(problems))
    for problem in problems:
        click.secho(f"warning: {problem} (a run would stop here)", fg="yellow", err=True)


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

    from codedance.core.errors import ConfigError

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


def _launch(overrides: list[str], config_file: Path, ray_address: str | None) -> int:
    env = {**os.environ, "CODEDANCE_CONFIG": str(config_file)}
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *overrides]
    return subprocess.call(command, env=env)
