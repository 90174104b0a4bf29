"""``codedance synth``: the SFT cold-start data builder.

The work lives in :mod:`codedance.trainers.synth` (candidates, the runtime, verification)
and :mod:`codedance.trainers.sft_export` (ShareGPT and verl exports); this module keeps
only click and the CLI helpers at import time, so ``codedance --help`` stays fast.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codedance.core.cli import App, invocation, pass_app

if TYPE_CHECKING:
    from codedance.trainers.synth import Candidate, Verdict

__all__ = ["resolve_kinds", "synth_command"]

FORMATS = ("sharegpt", "verl")


@click.command("synth")
@click.option(
    "--kinds",
    "kinds_text",
    metavar="NAMES",
    help="Comma list of example kinds or skills, each optionally NAME=COUNT "
    "(e.g. crop_zoom=20,triangle). Default: all, or none when --annotations is given.",
)
@click.option("--per-skill", default=8, show_default=True, help="Examples of each kind picked.")
@click.option("--seed", default=0, show_default=True, help="Seed of the generated examples.")
@click.option(
    "--annotations",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Annotated tasks JSONL (schema: pydoc codedance.trainers.synth_annotations).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue in --out, skipping ids kept or rejected.")
@click.option("--concurrency", type=int, help="Trajectories in flight (runtime.concurrency).")
@click.option(
    "--format",
    "formats_text",
    default=",".join(FORMATS),
    show_default=True,
    help="Exports to write: sharegpt, verl (comma list; empty for none).",
)
@pass_app
def synth_command(
    app: App,
    kinds_text: str | None,
    per_skill: int,
    seed: int,
    annotations: Path | None,
    out: Path | None,
    resume: bool,
    concurrency: int | None,
    formats_text: str,
) -> None:
    """Build verified SFT trajectories: reference programs run through the real runtime.

    Each candidate (a generated example, or an annotated task's template program) is
    replayed through the codedance protocol and the configured sandbox; it is kept only
    if every execution ran cleanly and its answer matches the ground truth.
    """
    from codedance.trainers.sft_export import export
    from codedance.trainers.synth import run_synth

    formats = _formats(formats_text)
    default = "" if annotations is not None else "all"
    kinds = resolve_kinds(_split(kinds_text if kinds_text is not None else default), per_skill)
    if not kinds and annotations is None:
        raise click.UsageError("nothing to build: name --kinds or pass --annotations")
    out = out or Path("runs") / f"synth-{time.strftime('%Y%m%d-%H%M%S')}"
    with _Progress() as progress:
        summary = run_synth(
            app.config,
            app.registry,
            out,
            kinds=kinds,
            seed=seed,
            annotations=annotations,
            resume=resume,
            concurrency=concurrency,
            on_start=progress.start,
            on_result=progress.advance,
        )
    summary["exports"] = {name: str(path) for name, path in export(out, formats).items()}
    _write_summary(out, summary)
    _report(summary, out)


def resolve_kinds(names: Sequence[str], per_skill: int) -> dict[str, int]:
    """``["small_tag", "compute=5"]`` -> ``{kind: count}``; a name is a kind, a skill or "all"."""
    from codedance.core.errors import ConfigError
    from codedance.runtime.examples import KINDS
    from codedance.trainers.synth import KIND_SKILLS, SKILLS

    counts: dict[str, int] = {}
    for item in names:
        name, _, number = item.strip().partition("=")
        if name == "all":
            kinds = list(KINDS)
        else:
            kinds = [name] if name in KINDS else [k for k in KINDS if KIND_SKILLS.get(k) == name]
        if not kinds:
            raise ConfigError(
                f"--kinds: {name!r} is neither a kind ({', '.join(KINDS)}) nor a skill "
                f"({', '.join(SKILLS)}). Fix: pick names from these, e.g. --kinds crop_zoom=20."
            )
        if number and not number.isdigit():
            raise ConfigError(f"--kinds: {item!r} needs a whole count after '=', e.g. compute=5")
        counts.update(dict.fromkeys(kinds, int(number) if number else per_skill))
    return counts


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _formats(text: str) -> list[str]:
    formats = _split(text)
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise click.BadParameter(
            f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}",
            param_hint="--format",
        )
    return formats


class _Progress:
    """A rich progress bar that counts kept and rejected trajectories as they finish."""

    def __enter__(self) -> _Progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]synth"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]kept {task.fields[kept]}[/] [red]rejected {task.fields[rejected]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.progress.__enter__()
        self.bar = self.progress.add_task("synth", total=None, kept=0, rejected=0)
        self.counts: Counter[str] = Counter()
        return self

    def start(self, candidates: list[Candidate]) -> None:
        self.progress.update(self.bar, total=len(candidates))

    def advance(self, candidate: Candidate, verdict: Verdict) -> None:
        self.counts["kept" if verdict.kept else "rejected"] += 1
        kept, rejected = self.counts["kept"], self.counts["rejected"]
        self.progress.update(self.bar, advance=1, kept=kept, rejected=rejected)

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    import json

    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _report(summary: dict[str, Any], out: Path) -> None:
    """The kept/rejected table per skill and the top rejection reasons."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Synth summary", title_justify="left")
    for column in ("skill", "kept", "rejected", "kept %"):
        table.add_column(column, justify="left" if column == "skill" else "right")
    for skill, counts in summary["per_skill"].items():
        total = counts["kept"] + counts["rejected"]
        share = f"{100 * counts['kept'] / total:.0f}" if total else "-"
        table.add_row(skill, str(counts["kept"]), str(counts["rejected"]), share)
    table.add_row("total", str(summary["kept"]), str(summary["rejected"]), "", style="bold")
    console.print(table)
    if summary["top_rejections"]:
        reasons = Table(title="Top rejection reasons", title_justify="left")
        for column in ("reason", "count", "example"):
            reasons.add_column(column, overflow="fold")
        for row in summary["top_rejections"]:
            reasons.add_row(row["reason"], str(row["count"]), row["example"])
        console.print(reasons)
    if summary.get("framework_failures"):
        click.secho(
            f"{summary['framework_failures']} candidates were not verified because the framework "
            "failed (see 'framework failure' above), not their programs; they are no evidence "
            "against the programs. Fix: lower runtime.concurrency or run `codedance doctor`.",
            fg="yellow",
            err=True,
        )
    for name, path in summary.get("exports", {}).items():
        click.echo(f"{name} export: {path}")
    view = f"{invocation()} view {out}"
    click.echo(f"Kept trajectories: {out / 'trajectories.jsonl'}  (view: {view})")
