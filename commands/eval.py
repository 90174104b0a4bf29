"""``codedance eval``: run a model on a benchmark, score it officially, report; compare runs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, invocation, pass_app

if TYPE_CHECKING:
    from codedance.evaluation.benchmark import Benchmark
    from codedance.evaluation.judging import OfficialJudge
    from codedance.evaluation.report import RunSummary
    from codedance.runtime.model import ModelBackend
    from codedance.runtime.types import Trajectory

__all__ = ["eval_command"]

META = "eval.json"


@click.command("eval")
@click.option("--benchmark", "benchmark_name", help="A registered benchmark (--list shows them).")
@click.option(
    "--data", type=click.Path(path_type=Path), help="The benchmark's files, as published."
)
@click.option("--model", "model_spec", metavar="NAME:TARGET", help="e.g. openai:URL, vllm:PATH.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue a killed run in --out.")
@click.option("--limit", type=int, help="Only the first N tasks.")
@click.option("--concurrency", type=int, help="Trajectories in flight (runtime.concurrency).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Benchmark option.")
@click.option("--compare", nargs=2, type=click.Path(exists=True, path_type=Path), help="RUN1 RUN2.")
@click.option(
    "--report",
    "report_only",
    type=click.Path(exists=True, path_type=Path),
    help="Rewrite the report of an existing run.",
)
@click.option(
    "--judge",
    "judge_endpoint",
    metavar="URL",
    help="Grade LLM-graded benchmarks (CharXiv, MathVerse, HR-Bench) with their official "
    "grader prompt at this OpenAI-compatible API root (e.g. http://127.0.0.1:8000/v1).",
)
@click.option(
    "--judge-model",
    default="auto",
    show_default=True,
    help="The judge's model name (auto: the first listed).",
)
@click.option("--list", "list_only", is_flag=True, help="List the registered benchmarks.")
@pass_app
def eval_command(app: App, **kwargs: Any) -> None:
    """Evaluate a model on a benchmark read from local files, with the benchmark's scoring.

    Writes trajectories, report.md, report.html (plots embedded) and report.json to
    --out; a killed run continues with --resume, losing and repeating nothing.
    """
    if kwargs["list_only"]:
        return _list(app)
    if kwargs["compare"]:
        return _compare(*kwargs["compare"])
    if kwargs["report_only"]:
        return _rewrite_report(app, kwargs["report_only"])
    if not kwargs["benchmark_name"] or kwargs["data"] is None:
        raise click.UsageError("give --benchmark NAME and --data PATH (or --list, --compare)")
    _evaluate(app, **kwargs)


def _evaluate(app: App, **kwargs: Any) -> None:
    from codedance.commands.run import solve_with_progress, warn_missing_tools
    from codedance.evaluation.judging import judged_score
    from codedance.evaluation.manifest import build_manifest
    from codedance.evaluation.problems import safe_score, write_problems
    from codedance.rewards.composition import RewardComposition, composition_scorer
    from codedance.runtime.build import build_runner, model_config_for
    from codedance.runtime.metrics import missing_packages
    from codedance.runtime.store import RunWriter

    name = kwargs["benchmark_name"]
    benchmark = _benchmark(app, name, kwargs["data"], kwargs["options"])
    benchmark.scorer()  # a bad --option scorer=... fails now, not on every task
    judge = _judge(benchmark, kwargs["judge_endpoint"], kwargs["judge_model"])  # checked first
    out: Path = kwargs["out"] or Path("runs") / f"eval-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    writer = RunWriter(out, resume=kwargs["resume"])
    tasks = list(benchmark.tasks(out / "inputs"))
    write_problems(out, benchmark.problems)  # rows skipped, each with its reason
    config = app.config.model_copy(
        update={"model": model_config_for(app.config.model, kwargs["model_spec"])}
    )
    replay = _reference_model(benchmark) if kwargs["model_spec"] is None else None
    runner = build_runner(config, app.registry, model=replay)
    rewards = composition_scorer(
        RewardComposition.from_config(config.rewards, app.registry, where=config.where)
    )

    missing: dict[str, list[str]] = {}  # from the live records: saved ones keep no error type

    def score(trajectory: Trajectory) -> None:
        for message, tools in missing_packages([trajectory]).items():
            missing.setdefault(message, []).extend(t for t in tools if t not in missing[message])
        rewards(trajectory)
        if trajectory.failure is not None:  # the framework's failures are no wrong answers
            return
        trajectory.rewards["accuracy"] = (  # the official rule, or its LLM grader
            safe_score(benchmark, trajectory)
            if judge is None
            else judged_score(judge, benchmark, trajectory)
        )

    todo = [t for t in tasks if t.id not in writer.done][: kwargs["limit"] or None]
    manifest = build_manifest(benchmark, config, runner.model.describe(), len(tasks))
    if judge is not None:
        manifest["scorer"] = {"mode": "judge", "grader": judge.describe()}
    _write_meta(out, name, kwargs["data"], runner.model.describe(), len(tasks), manifest)
    width = kwargs["concurrency"] or config.runtime.concurrency
    try:
        asyncio.run(solve_with_progress(runner, todo, width, writer, score))
    except BaseException:  # interrupted or failed: still leave a report of what was done
        writer.close()
        _finish(out, benchmark, replay is not None, quiet=True)
        raise
    writer.close()
    _finish(out, benchmark, replay is not None)
    warn_missing_tools(missing)  # as `run` does: a lower score has this reason
    _check_loaded(benchmark, tasks)


def _check_loaded(benchmark: Benchmark, tasks: list[Any]) -> None:
    """Say how many rows were skipped; no task at all is an error (after the report)."""
    problems = benchmark.problems
    if not problems:
        return
    first = f"{problems[0].where}: {problems[0].reason}"
    if not tasks:
        raise click.ClickException(
            f"no task of {benchmark.name!r} could be loaded: all {len(problems)} rows were "
            f"skipped as data problems (report.md lists them). The first: {first}"
        )
    click.secho(
        f"{len(problems)} row(s) skipped as data problems (listed in report.md). The first: "
        f"{first}",
        fg="yellow",
        err=True,
    )


def _judge(benchmark: Benchmark, endpoint: str | None, model: str) -> OfficialJudge | None:
    """The ``--judge`` grader, its endpoint checked now rather than after the first task."""
    if endpoint is None:
        return None
    from codedance.evaluation.judging import OfficialJudge
    from codedance.rewards.judge import JudgeError

    judge = OfficialJudge(benchmark, endpoint=endpoint, model=model)
    try:
        judge.describe_model()
    except JudgeError as error:
        raise click.ClickException(str(error)) from None
    return judge


def _benchmark(app: App, name: str, data: Path, options: tuple[str, ...]) -> Benchmark:
    import yaml

    parsed = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write --option KEY=VALUE", param_hint="--option")
        parsed[key] = yaml.safe_load(value)
    benchmark_class: type[Benchmark] = app.registry.get("benchmark", name)
    return benchmark_class(data, parsed)


def _reference_model(benchmark: Benchmark) -> ModelBackend | None:
    """Without --model, a benchmark with reference programs (synthetic) replays them."""
    examples = getattr(benchmark, "examples", None)
    if examples is None:
        return None
    from codedance.core.config import ModelConfig
    from codedance.runtime.replay import ReplayModel

    turns = {example.task.id: list(example.reference) for example in examples()}
    return ReplayModel(ModelConfig(backend="replay", name="reference programs"), turns)


def _write_meta(
    out: Path, name: str, data: Path, model: str, total: int, manifest: dict[str, Any]
) -> None:
    meta = {"benchmark": name, "data": str(data), "model": model, "tasks": total}
    meta["manifest"] = manifest
    (out / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _finish(out: Path, benchmark: Benchmark, replayed: bool, *, quiet: bool = False) -> None:
    from codedance.commands.run import echo_failures
    from codedance.evaluation.report import markdown, summarize_run, write_report
    from codedance.runtime.store import read_trajectories

    trajectories = read_trajectories(out)
    scored = [
        (t.task, float(t.rewards.get("accuracy", 0.0))) for t in trajectories if t.failure is None
    ]
    metrics = benchmark.metrics(scored)
    summary = summarize_run(trajectories, benchmark.name, benchmark.reported, metrics)
    _add_provenance(summary, out, trajectories)
    files = write_report(summary, out)
    if quiet:  # the run was interrupted: only say where the partial report is
        click.echo(f"Partial report ({len(trajectories)} tasks): {files['markdown']}", err=True)
        return
    click.echo(markdown(summary))
    view = f"{invocation()} view {out}"
    click.echo(f"Report: {files['markdown']} and {files['html']}; trajectories: {view}")
    if replayed:
        click.secho(
            "No model was used: the benchmark's reference programs were replayed as the "
            "model's turns. Add --model openai:URL (or vllm:PATH, hf:PATH) to evaluate one.",
            fg="yellow",
        )
    echo_failures(trajectories, out)


def _rewrite_report(app: App, out: Path) -> None:
    meta = json.loads((out / META).read_text(encoding="utf-8")) if (out / META).exists() else {}
    name = meta.get("benchmark", "")
    benchmark_class = app.registry.get("benchmark", name) if name else None
    from codedance.evaluation.report import markdown, summarize_run, write_report
    from codedance.runtime.store import read_trajectories

    reported = benchmark_class.reported if benchmark_class is not None else {}
    trajectories = read_trajectories(out)
    summary = summarize_run(trajectories, name, reported)
    _add_provenance(summary, out, trajectories)
    write_report(summary, out)
    click.echo(markdown(summary))


def _add_provenance(summary: RunSummary, out: Path, trajectories: list[Trajectory]) -> None:
    """The run's manifest and its data problems (loader's and scorer's) on the summary."""
    from codedance.evaluation.problems import problems_of_run, read_problems

    summary.manifest = dict(_meta(out).get("manifest") or {})
    summary.problems = problems_of_run(read_problems(out), trajectories)


def _compare(first: Path, second: Path) -> None:
    from codedance.evaluation.report import compare_runs, summarize_run
    from codedance.runtime.store import read_trajectories

    summaries = []
    for run in (first, second):
        meta = _meta(run)
        summary = summarize_run(read_trajectories(run), meta.get("benchmark", ""))
        summary.manifest = dict(meta.get("manifest") or {})
        summaries.append(summary)
    click.echo(compare_runs(*summaries))


def _meta(run: Path) -> dict[str, Any]:
    path = run / META
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def _list(app: App) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Benchmarks", title_justify="left")
    for column in ("name", "description", "data from"):
        table.add_column(column, overflow="fold")
    for entry in app.registry.entries("benchmark"):
        table.add_row(entry.name, entry.obj.description, entry.obj.source)
    Console().print(table)
