"""``codedance score``: rescore saved trajectories with a reward composition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.rewards.composition import ScoreCard
    from codedance.runtime.types import Trajectory

__all__ = ["score_command"]


@click.command("score")
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--reward",
    "rewards",
    multiple=True,
    metavar="NAME[=WEIGHT]",
    help="Use these components instead of the config's rewards (repeatable).",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Scores file.")
@pass_app
def score_command(app: App, run: Path, rewards: tuple[str, ...], output: Path | None) -> None:
    """Score RUN (a run folder or trajectories .jsonl) with the reward composition.

    Trajectories of the same task form a group (their rollouts), as in training.
    Writes one JSON line per trajectory (default: scores.jsonl beside the input)
    and prints the mean of every component.
    """
    from codedance.rewards.composition import RewardComposition
    from codedance.runtime.store import read_trajectories

    trajectories = read_trajectories(run)
    where = None if rewards else app.config.where  # --reward entries have no file
    composition = RewardComposition.from_config(
        _reward_configs(app, rewards), app.registry, where=where
    )
    cards = composition.score_all(trajectories)
    target = output or (run if run.is_dir() else run.parent) / "scores.jsonl"
    _write(target, trajectories, cards)
    _print_summary(cards, target)


def _reward_configs(app: App, rewards: tuple[str, ...]) -> list[Any]:
    from codedance.core.config import RewardConfig

    if not rewards:
        return list(app.config.rewards)
    configs = []
    for spec in rewards:
        name, _, weight = spec.partition("=")
        try:
            configs.append(RewardConfig(name=name, weight=float(weight or 1.0)))
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: the weight must be a number, e.g. bat=1.0"
            ) from None
    return configs


def _write(target: Path, trajectories: list[Trajectory], cards: list[ScoreCard]) -> None:
    with target.open("w", encoding="utf-8") as handle:
        for index, (trajectory, card) in enumerate(zip(trajectories, cards, strict=True)):
            row = {
                "index": index,
                "task": trajectory.task.id,
                "total": card.total,
                "components": card.components,
                "parts": card.parts,
                "turn_values": card.turn_values,
            }
            handle.write(json.dumps(row) + "\n")


def _print_summary(cards: list[ScoreCard], target: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(cards)} trajectories scored", title_justify="left")
    table.add_column("component")
    table.add_column("mean", justify="right")
    names = ["total", *dict.fromkeys(n for card in cards for n in card.components)]
    for name in names:
        values = [
            card.total if name == "total" else card.components.get(name, 0.0) for card in cards
        ]
        table.add_row(name, f"{sum(values) / len(values):.4f}" if values else "-")
    console = Console()
    console.print(table)
    console.print(f"Scores: {target}")
