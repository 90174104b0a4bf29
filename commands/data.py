"""``codedance data``: turn tasks into training data (``to-verl``: verl's RL parquet).

Tasks come from a tasks JSONL file (``--tasks``) or a registered benchmark read
from local files (``--benchmark NAME --data PATH``, as ``codedance eval`` reads
it; ``--benchmark synthetic --data DIR`` generates the built-in examples). The
prompt, tools section and image bounds come from the configuration (``--config``,
``-o``), so training sees what ``codedance run`` and ``eval`` send.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, pass_app

if TYPE_CHECKING:
    from codedance.runtime.types import Task

__all__ = ["data_group", "to_verl_command"]


@click.group("data")
def data_group() -> None:
    """Prepare training data from tasks or benchmarks."""


@data_group.command("to-verl")
@click.option("--tasks", "tasks_path", type=click.Path(path_type=Path), help="A tasks JSONL file.")
@click.option("--benchmark", "benchmark_name", help="A registered benchmark (with --data).")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="The benchmark's files as published (synthetic: the folder to generate into).",
)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Benchmark option.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for train.parquet and val.parquet.",
)
@click.option(
    "--split-ratio",
    type=float,
    default=1.0,
    show_default=True,
    help="Share of the tasks in train.parquet; the rest go to val.parquet.",
)
@click.option("--shuffle", is_flag=True, help="Shuffle the tasks (with --seed) before splitting.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --shuffle.")
@click.option("--limit", type=int, help="Only the first N tasks (after shuffling).")
@click.option(
    "--data-source", help="The data_source column (default: the benchmark or the file's stem)."
)
@click.option(
    "--agent-name", default="codedance", show_default=True, help="verl agent loop of the rows."
)
@pass_app
def to_verl_command(app: App, **kwargs: Any) -> None:
    """Write tasks as verl RL parquet: the protocol's prompt, resized images, ground truth.

    Every row is prompted exactly as inference prompts (system prompt, tools
    section, format instruction) and carries its images smart-resized as PNG, so
    the model and the sandbox see the same pixels during training.
    """
    from codedance.trainers.verl.data import RowBuilder, write_verl_parquet

    tasks_path, name = kwargs["tasks_path"], kwargs["benchmark_name"]
    if (tasks_path is None) == (name is None):
        raise click.UsageError("give either --tasks FILE or --benchmark NAME --data PATH")
    if name is not None and kwargs["data"] is None:
        raise click.UsageError(f"--benchmark {name} needs --data PATH (the benchmark's files)")
    source = kwargs["data_source"] or (name if name is not None else Path(tasks_path).stem)
    builder = RowBuilder.from_config(
        app.config, app.registry, data_source=source, agent_name=kwargs["agent_name"]
    )
    out: Path = kwargs["out"]
    split = {k: kwargs[k] for k in ("shuffle", "seed", "limit")}
    with tempfile.TemporaryDirectory(prefix="codedance-to-verl-") as scratch:
        tasks = _load(app, kwargs, Path(scratch))
        counts = write_verl_parquet(tasks, out, builder, split_ratio=kwargs["split_ratio"], **split)
    for split_name, count in counts.items():
        click.echo(f"{out / (split_name + '.parquet')}: {count} rows")


def _load(app: App, kwargs: dict[str, Any], scratch: Path) -> list[Task]:
    """The tasks of ``--tasks`` or of ``--benchmark`` (embedded images written to ``scratch``)."""
    if kwargs["tasks_path"] is not None:
        from codedance.runtime.tasks import load_tasks

        return load_tasks(kwargs["tasks_path"])
    from codedance.evaluation.benchmark import Benchmark

    benchmark_class: type[Benchmark] = app.registry.get("benchmark", kwargs["benchmark_name"])
    benchmark = benchmark_class(kwargs["data"], _options(kwargs["options"]))
    return list(benchmark.tasks(scratch))


def _options(items: tuple[str, ...]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs, the values read as YAML (numbers, booleans, lists)."""
    import yaml

    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: write --option KEY=VALUE", param_hint="--option")
        parsed[key] = yaml.safe_load(value)
    return parsed
