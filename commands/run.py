"""``codedance run``: the main job. Tasks in, trajectories and a score out.

With no tasks and no ``--image`` it solves the built-in example tasks by replaying
their reference programs as the model's turns, through the real protocol and
sandbox, and says plainly that no model was used and how to add one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, invocation, pass_app

if TYPE_CHECKING:
    from codedance.runtime.loop import Runner
    from codedance.runtime.store import RunWriter
    from codedance.runtime.types import Task, Trajectory

__all__ = ["run_command", "solve_with_progress"]

NO_MODEL = (
    "No model was used: these {n} built-in example tasks were solved by replaying their "
    "reference programs as the model's turns, through the real protocol and sandbox.\n"
    "To run a model: {cmd} run TASKS.jsonl --model openai:http://127.0.0.1:8000/v1 "
    "(any OpenAI-compatible server, e.g. `vllm serve`), or --model vllm:PATH, hf:PATH, replay:FILE."
)


@click.command("run")
@click.argument("tasks", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="One image.")
@click.option("--question", help="The question about --image (instead of a tasks file).")
@click.option("--answer", help="Known answer for --question, to score it.")
@click.option("--answer-type", default="text", show_default=True, help="How --answer is matched.")
@click.option("--model", "model_spec", metavar="NAME:TARGET", help="e.g. openai:URL, hf:PATH.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue a killed run in --out, skipping done tasks.")
@click.option("--limit", type=int, help="Only the first N tasks.")
@click.option("--concurrency", type=int, help="Trajectories in flight (runtime.concurrency).")
@pass_app
def run_command(
    app: App,
    tasks: Path | None,
    image: Path | None,
    question: str | None,
    answer: str | None,
    answer_type: str,
    model_spec: str | None,
    out: Path | None,
    resume: bool,
    limit: int | None,
    concurrency: int | None,
) -> None:
    """Solve TASKS (a JSONL file) or one --image/--question, writing trajectories to --out."""
    from codedance.rewards.composition import RewardComposition, composition_scorer
    from codedance.runtime.build import build_runner, model_config_for
    from codedance.runtime.metrics import missing_packages, summarize
    from codedance.runtime.store import RunWriter

    config = app.config
    out = out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    todo, replay = _tasks(tasks, image, question, answer, answer_type, out)
    config = config.model_copy(update={"model": model_config_for(config.model, model_spec)})
    runner = build_runner(config, app.registry, model=replay)
    rewards = RewardComposition.from_config(config.rewards, app.registry, where=config.where)
    writer = RunWriter(out, resume=resume)
    todo = [task for task in todo if task.id not in writer.done][: limit or None]
    width = concurrency or config.runtime.concurrency
    try:
        scorer = composition_scorer(rewards)
        finished = asyncio.run(solve_with_progress(runner, todo, width, writer, scorer))
    finally:
        writer.close()
    done = _all(out) if resume else finished
    summary = summarize(done)
    writer.write_summary(summary)
    _report(summary, out, replay is not None, rewards.explain(done), missing_packages(done))
    echo_failures(done, out)


def _tasks(
    tasks: Path | None,
    image: Path | None,
    question: str | None,
    answer: str | None,
    answer_type: str,
    out: Path,
) -> tuple[list[Task], Any]:
    """The tasks to run, and a replay model when they are the built-in examples."""
    from codedance.runtime.tasks import load_tasks, single_task

    if tasks is not None:
        return load_tasks(tasks), None
    if question is not None:
        return [single_task(image, question, answer, answer_type)], None
    if image is not None:
        raise click.UsageError("--image needs --question (what should the model find out?)")
    return _examples(out)


def _examples(out: Path) -> tuple[list[Task], Any]:
    from codedance.core.config import ModelConfig
    from codedance.runtime.examples import write_examples
    from codedance.runtime.replay import ReplayModel, load_replay
    from codedance.runtime.tasks import load_tasks

    tasks_path, replay_path = write_examples(out / "examples")
    model = ReplayModel(
        ModelConfig(backend="replay", name=str(replay_path)), load_replay(replay_path)
    )
    return load_tasks(tasks_path), model


async def solve_with_progress(
    runner: Runner,
    tasks: list[Task],
    concurrency: int,
    writer: RunWriter,
    score: Callable[[Trajectory], None],
) -> list[Trajectory]:
    """Solve ``tasks`` under a rich progress bar; each one is scored, then saved at once."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from codedance.runtime.metrics import accuracy_text

    columns = (
        TextColumn("[bold]solving"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("acc {task.fields[acc]}"),
    )
    finished: list[Trajectory] = []
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("run", total=len(tasks), rate="", acc="-")
        started = time.perf_counter()
        try:
            async with runner.model:
                async for trajectory in runner.iter_solved(tasks, concurrency):
                    score(trajectory)
                    writer.write(trajectory)
                    finished.append(trajectory)
                    rate = len(finished) / max(time.perf_counter() - started, 1e-9)
                    acc = accuracy_text(finished)
                    progress.update(bar, advance=1, rate=f"{rate:.2f}/s", acc=acc)
        finally:
            runner.sandbox.close()
    return finished


def _all(out: Path) -> list[Trajectory]:
    from codedance.runtime.store import read_trajectories

    return read_trajectories(out)


def _report(
    summary: dict[str, Any],
    out: Path,
    examples: bool,
    reward_lines: list[str],
    missing: dict[str, list[str]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Run summary", title_justify="left")
    table.add_column("metric")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
    _explain(reward_lines, missing)
    view = f"{invocation()} view {out}"
    click.echo(f"Trajectories: {out / 'trajectories.jsonl'}  (view them: {view})")
    if examples:
        click.secho(NO_MODEL.format(n=summary["trajectories"], cmd=invocation()), fg="yellow")


def _explain(reward_lines: list[str], missing: dict[str, list[str]]) -> None:
    """Why the mean reward is what it is, and which tools could not run here."""
    for line in reward_lines:
        click.echo(line)
    if reward_lines:
        click.echo(
            "  (each trajectory is scored as a group of one here; in training a prompt's "
            "rollouts form its group)"
        )
    warn_missing_tools(missing)


def warn_missing_tools(missing: dict[str, list[str]]) -> None:
    """One warning per missing package (``runtime.metrics.missing_packages``), naming the tools."""
    for message, tools in missing.items():
        names = ", ".join(tools)
        click.secho(f"warning: tools unavailable in this run ({names}): {message}", fg="yellow")


def echo_failures(trajectories: list[Trajectory], out: Path) -> None:
    """Print the errors by kind; raise ``RunFailedError`` when one reason failed them all.

    Called by ``run`` and ``eval`` after their reports are written, so a failed run
    still leaves its records, and exits non-zero with the reason.
    """
    from codedance.runtime.failures import (
        RunFailedError,
        console_lines,
        fatal_message,
        summarize_failures,
    )

    for line in console_lines(summarize_failures(trajectories), str(out)):
        click.secho(line, fg="yellow", err=True)
    fatal = fatal_message(trajectories)
    if fatal is not None:
        raise RunFailedError(fatal)
