"""``codedance train``: compose verl's configuration from registry.yaml and launch verl.

The composed configuration is validated by verl itself (its Hydra schema and its
``validate_config``) before anything starts; ``--dry-run`` stops there and prints
the overrides. The run itself is stock ``verl.trainer.main_ppo`` in a subprocess,
locally or on an existing Ray cluster (``--ray-address``); see
:mod:`codedance.trainers.verl.launch`. ``--smoke`` runs two real GRPO steps on a tiny
model first (:mod:`codedance.trainers.verl.smoke`) and prints a verdict.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.core.config import Config
    from codedance.trainers.verl.smoke import Verdict

__all__ = ["train_command"]


@click.command("train")
@click.option("--ray-address", help="An existing Ray cluster (ray://host:10001 or auto).")
@click.option("--dry-run", is_flag=True, help="Compose and validate, print, do not train.")
@click.option(
    "--device",
    type=click.Choice(["gpu", "cpu"]),
    help="Where verl runs (training.device); cpu: the CPU profile (docs/training.md).",
)
@click.option(
    "--smoke",
    is_flag=True,
    help="Two real GRPO steps on a tiny model of the policy's architecture, then a verdict.",
)
@click.option("--json", "as_json", is_flag=True, help="With --smoke: the verdict as one JSON.")
@click.argument("verl_overrides", nargs=-1, metavar="[VERL_OVERRIDE]...")
@pass_app
def train_command(
    app: App,
    ray_address: str | None,
    dry_run: bool,
    device: str | None,
    smoke: bool,
    as_json: bool,
    verl_overrides: tuple[str, ...],
) -> None:
    """RL-train the policy on verl with codedance's protocol, sandbox, tools and rewards.

    Settings come from the `training` section of the config (--config train.yaml);
    extra VERL_OVERRIDEs (Hydra syntax, e.g. trainer.save_freq=20) are applied last.
    With --smoke, two GRPO steps on a tiny random-weight model check the whole
    pipeline in minutes; the exit status is non-zero when a step fails or nothing moved.
    """
    from codedance.trainers.verl.config import check_versions

    version = check_versions()
    config = app.config
    if device is not None:
        config.training.device = device  # type: ignore[assignment]
    if smoke:
        _smoke(app, ray_address, as_json)
        return
    if as_json:
        raise click.UsageError("--json goes with --smoke")
    from codedance.trainers.verl.launch import launch, prepare

    run = prepare(config, verl_overrides)
    click.echo(f"verl {version}: configuration validated; {len(run.overrides)} overrides:")
    click.echo("\n".join(f"  {override}" for override in run.overrides))
    click.echo(f"Composed config: {run.workdir / 'verl_config.yaml'}")
    _check_inputs(config, dry_run)
    if dry_run:
        return
    sys.exit(launch(run, ray_address))


def _check_inputs(config: Config, dry_run: bool) -> None:
    """The model path and the rows on disk: warnings for --dry-run, an error before a run."""
    from codedance.core.errors import ConfigError
    from codedance.trainers.verl.inputs import input_problems

    problems = input_problems(config.training)
    if problems and not dry_run:
        raise ConfigError("\n".join(problems))
    for problem in problems:
        click.secho(f"warning: {problem} (a run would stop here)", fg="yellow", err=True)


def _smoke(app: App, ray_address: str | None, as_json: bool) -> None:
    from codedance.trainers.verl.smoke import run_smoke

    if not as_json:
        click.echo("Smoke run: two GRPO steps on a tiny model (a few minutes on a CPU)...")
    verdict = run_smoke(app.config, app.registry, ray_address=ray_address)
    if as_json:
        click.echo(json.dumps(verdict.to_json(), sort_keys=True))
    else:
        _print_verdict(verdict)
    if not verdict.ok:
        sys.exit(1)


def _print_verdict(verdict: Verdict) -> None:
    yes = {True: "yes", False: "no"}
    click.echo(f"architecture: {verdict.architecture} (tiny, random) on {verdict.device}")
    click.echo(f"steps run: {verdict.steps}")
    click.echo(
        f"weights changed: {yes[verdict.weights_changed]} (max |delta| "
        f"{verdict.max_weight_delta:.3g})"
    )
    versions = "; ".join(",".join(map(str, step)) for step in verdict.weights_versions)
    click.echo(f"rollout weights (trainer step) per step: {versions}")
    click.echo("policy loss per step: " + ", ".join(f"{v:.4g}" for v in verdict.policy_loss))
    for step, (means, stds) in enumerate(
        zip(verdict.reward_mean, verdict.reward_std, strict=True), 1
    ):
        groups = ", ".join(f"{means[uid]:.3g}±{stds[uid]:.3g}" for uid in means)
        click.echo(f"step {step} reward mean±std per group: {groups}")
    for step, metrics in enumerate(verdict.metrics, 1):
        click.echo(f"step {step} metrics:")
        click.echo("\n".join(f"  {key}: {value:.4g}" for key, value in sorted(metrics.items())))
    click.echo(f"checkpoint: {verdict.checkpoint or 'none'}")
    click.echo(f"wall time: {verdict.wall_s:.0f} s; files: {verdict.workdir}")
    if verdict.error:
        click.echo(verdict.error)
    click.echo("verdict: OK" if verdict.ok else "verdict: FAILED (a step failed or nothing moved)")
