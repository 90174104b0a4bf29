"""Evaluation reports: accuracy per category, tool-use statistics, plots, comparisons.

:func:`summarize_run` reduces a run's trajectories to numbers; :func:`write_report`
writes ``report.md``, ``report.html`` (self-contained, plots embedded) and the plots
as PNG files; :func:`compare_runs` puts two runs side by side. Accuracy is the
benchmark's official score stored as ``rewards["accuracy"]`` by ``codedance eval``.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codedance.evaluation.problems import DataProblem
from codedance.evaluation.report_sections import (
    common_tasks_lines,
    manifest_html,
    manifest_lines,
    problems_html,
    problems_lines,
    task_links_html,
)
from codedance.runtime.failures import (
    FailureRow,
    failures_html,
    failures_markdown,
    summarize_failures,
)
from codedance.runtime.types import Trajectory

__all__ = ["RunSummary", "compare_runs", "summarize_run", "write_report"]

ALL = "all"


@dataclass
class Bucket:
    """Counts of one slice of a run (a category, or everything)."""

    n: int = 0
    correct: float = 0.0
    calls: int = 0
    failed: int = 0
    turns: int = 0

    def add(self, trajectory: Trajectory, accuracy: float) -> None:
        self.n += 1
        self.correct += accuracy
        self.calls += trajectory.tool_calls
        self.failed += trajectory.failed_calls
        self.turns += len(trajectory.turns)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.n if self.n else 0.0

    @property
    def calls_per_trajectory(self) -> float:
        return self.calls / self.n if self.n else 0.0

    @property
    def success_rate(self) -> float | None:
        return 100.0 * (self.calls - self.failed) / self.calls if self.calls else None

    @property
    def turns_per_trajectory(self) -> float:
        return self.turns / self.n if self.n else 0.0


@dataclass
class RunSummary:
    """What a report shows about one run."""

    benchmark: str
    model: str
    categories: dict[str, Bucket] = field(default_factory=dict)
    by_calls: dict[str, Bucket] = field(default_factory=dict)
    stops: dict[str, int] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    failures: list[FailureRow] = field(default_factory=list)  # errors by kind
    #: How the run was made (:mod:`codedance.evaluation.manifest`); empty if unknown.
    manifest: dict[str, Any] = field(default_factory=dict)
    #: Rows skipped and references scored by the fallback (the "Data problems" section).
    problems: list[DataProblem] = field(default_factory=list)
    #: (task id, accuracy) of every trajectory, in run order.
    results: list[tuple[str, float]] = field(default_factory=list)

    @property
    def overall(self) -> Bucket:
        return self.categories[ALL]

    def to_json(self) -> dict[str, Any]:
        def bucket(b: Bucket) -> dict[str, Any]:
            return {
                **asdict(b),
                "accuracy": round(b.accuracy, 2),
                "calls_per_trajectory": round(b.calls_per_trajectory, 3),
                "success_rate": None if b.success_rate is None else round(b.success_rate, 2),
                "turns_per_trajectory": round(b.turns_per_trajectory, 3),
            }

        return {
            "benchmark": self.benchmark,
            "model": self.model,
            "categories": {k: bucket(v) for k, v in self.categories.items()},
            "by_calls": {k: bucket(v) for k, v in self.by_calls.items()},
            "stops": self.stops,
            "reported": self.reported,
            "metrics": self.metrics,
            "failures": [row.to_json() for row in self.failures],
            "manifest": self.manifest,
            "data_problems": [p.to_json() for p in self.problems],
            "results": dict(self.results),
        }


def summarize_run(
    trajectories: Sequence[Trajectory],
    benchmark: str = "",
    reported: Mapping[str, float] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Per-category accuracy, accuracy by number of tool calls, stop reasons, extra metrics."""
    model = trajectories[0].model if trajectories else ""
    summary = RunSummary(benchmark, model, {ALL: Bucket()}, reported=dict(reported or {}))
    summary.metrics = dict(metrics or {})
    summary.failures = summarize_failures(trajectories)
    for trajectory in trajectories:
        if trajectory.failure is not None:  # the framework's failure: no score, an error row
            summary.stops["infrastructure"] = summary.stops.get("infrastructure", 0) + 1
            continue
        accuracy = float(trajectory.rewards.get("accuracy", 0.0))
        summary.overall.add(trajectory, accuracy)
        category = trajectory.task.metadata.get("category")
        if category is not None:
            summary.categories.setdefault(str(category), Bucket()).add(trajectory, accuracy)
        calls = trajectory.tool_calls
        key = str(calls) if calls < 3 else "3+"
        summary.by_calls.setdefault(key, Bucket()).add(trajectory, accuracy)
        summary.stops[trajectory.stop] = summary.stops.get(trajectory.stop, 0) + 1
        summary.results.append((trajectory.task.id, accuracy))
    summary.by_calls = dict(sorted(summary.by_calls.items()))
    return summary


# -- markdown --------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(summary: RunSummary) -> str:
    """The report as markdown tables."""
    lines = [f"# {summary.benchmark or 'evaluation'}: {summary.model}", ""]
    lines += ["| category | n | accuracy (%) | calls / traj | call success (%) | turns / traj |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for name, b in summary.categories.items():
        label = f"**{name}**" if name == ALL else name
        lines.append(
            f"| {label} | {b.n} | {b.accuracy:.1f} | {b.calls_per_trajectory:.2f} | "
            f"{_percent(b.success_rate)} | {b.turns_per_trajectory:.2f} |"
        )
    lines += ["", "Accuracy by number of tool calls:", ""]
    lines += ["| tool calls | n | accuracy (%) |", "|---|---:|---:|"]
    lines += [f"| {k} | {b.n} | {b.accuracy:.1f} |" for k, b in summary.by_calls.items()]
    stops = ", ".join(f"{k}: {v}" for k, v in summary.stops.items())
    lines += ["", f"Stop reasons: {stops}."]
    if summary.metrics:
        lines += ["", "Benchmark metrics:", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {_value(v)} |" for k, v in _flat(summary.metrics).items()]
    if summary.reported:
        lines += ["", "Reported in the CodeDance paper (accuracy %):", ""]
        lines += ["| model | accuracy (%) |", "|---|---:|"]
        lines += [f"| {m} | {v:.1f} |" for m, v in summary.reported.items()]
        lines += [f"| **this run** ({summary.model}) | {summary.overall.accuracy:.1f} |"]
    lines += failures_markdown(summary.failures)
    lines += manifest_lines(summary.manifest)
    lines += problems_lines(summary.problems)
    return "\n".join(lines) + "\n"


def _flat(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as ``a.b`` keys."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _value(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


# -- plots -----------------------------------------------------------------------------


def plots(summary: RunSummary, folder: Path) -> list[Path]:
    """Accuracy by category, and accuracy against tool calls, as PNG files."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    categories = {k: v for k, v in summary.categories.items() if k != ALL} or summary.categories
    made = []
    for name, buckets, title, xlabel in (
        ("accuracy_by_category.png", categories, "Accuracy by category", "category"),
        ("accuracy_by_tool_calls.png", summary.by_calls, "Accuracy by tool calls", "tool calls"),
    ):
        figure = Figure(figsize=(7, 4), dpi=100)
        axes = figure.add_subplot()
        labels = list(buckets)
        bars = axes.bar(labels, [b.accuracy for b in buckets.values()], color="#3b6ea8")
        for bar, bucket in zip(bars, buckets.values(), strict=True):
            axes.annotate(
                f"n={bucket.n}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        axes.set(title=title, xlabel=xlabel, ylabel="accuracy (%)", ylim=(0, 105))
        axes.tick_params(axis="x", labelrotation=30 if len(labels) > 4 else 0)
        figure.tight_layout()
        figure.savefig(folder / name)
        made.append(folder / name)
    return made


# -- html and files --------------------------------------------------------------------


def _html(summary: RunSummary, images: Sequence[Path]) -> str:
    """A self-contained page: the markdown tables as HTML, the plots embedded."""
    body = [
        f"<h1>{html.escape(summary.benchmark or 'evaluation')}: {html.escape(summary.model)}</h1>"
    ]
    body.append(
        _table(
            ["category", "n", "accuracy (%)", "calls / traj", "call success (%)", "turns / traj"],
            [
                [
                    name,
                    str(b.n),
                    f"{b.accuracy:.1f}",
                    f"{b.calls_per_trajectory:.2f}",
                    _percent(b.success_rate),
                    f"{b.turns_per_trajectory:.2f}",
                ]
                for name, b in summary.categories.items()
            ],
        )
    )
    body.append(
        _table(
            ["tool calls", "n", "accuracy (%)"],
            [[k, str(b.n), f"{b.accuracy:.1f}"] for k, b in summary.by_calls.items()],
        )
    )
    if summary.reported:
        rows = [[m, f"{v:.1f}"] for m, v in summary.reported.items()]
        rows.append([f"this run ({summary.model})", f"{summary.overall.accuracy:.1f}"])
        body.append(_table(["model (reported in the paper)", "accuracy (%)"], rows))
    body.append(failures_html(summary.failures))
    for image in images:
        data = base64.b64encode(image.read_bytes()).decode()
        body.append(f'<img alt="{html.escape(image.stem)}" src="data:image/png;base64,{data}">')
    body.append(manifest_html(summary.manifest))
    body.append(problems_html(summary.problems))
    body.append(task_links_html(summary.results))
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}"
    )
    return f"<!doctype html><meta charset=utf-8><style>{style}</style>{''.join(body)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{cells}</table>"


def write_report(summary: RunSummary, out: Path) -> dict[str, Path]:
    """``report.md``, ``report.html``, ``report.json`` and the plots under ``out``."""
    images = plots(summary, out / "plots")
    files = {
        "markdown": out / "report.md",
        "html": out / "report.html",
        "json": out / "report.json",
    }
    files["markdown"].write_text(markdown(summary), encoding="utf-8")
    files["html"].write_text(_html(summary, images), encoding="utf-8")
    files["json"].write_text(json.dumps(summary.to_json(), indent=2), encoding="utf-8")
    return files


def compare_runs(first: RunSummary, second: RunSummary) -> str:
    """Two runs side by side, per category, as markdown."""
    a, b = first.model or "run 1", second.model or "run 2"
    if a == b:  # the same model on two subsets or settings: number the runs
        a, b = f"{a} [1]", f"{b} [2]"
    benchmarks = dict.fromkeys(x.benchmark or "evaluation" for x in (first, second))
    lines = [f"# {' vs '.join(benchmarks)}: {a} vs {b}", ""]
    lines += [f"| category | n | {a} (%) | {b} (%) | delta | calls/traj {a} | calls/traj {b} |"]
    lines += ["|---|---:|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys([*first.categories, *second.categories]):
        x, y = first.categories.get(name, Bucket()), second.categories.get(name, Bucket())
        delta = y.accuracy - x.accuracy
        lines.append(
            f"| {name} | {max(x.n, y.n)} | {x.accuracy:.1f} | {y.accuracy:.1f} | {delta:+.1f} | "
            f"{x.calls_per_trajectory:.2f} | {y.calls_per_trajectory:.2f} |"
        )
    lines += common_tasks_lines(first, second, a, b)
    return "\n".join(lines) + "\n"
