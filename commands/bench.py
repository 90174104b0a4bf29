"""``codedance bench``: the benchmarks that write docs/benchmarks.md, from a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("bench")
def bench_group() -> None:
    """Run the benchmarks that write docs/benchmarks.md (from a source checkout)."""


@bench_group.command("sandbox")
@click.option("--quick", is_flag=True, help="Fewer iterations; skips 256 sessions for baselines.")
def bench_sandbox(quick: bool) -> None:
    """Local sandbox vs a fresh subprocess vs a Jupyter kernel, side by side."""
    import runpy

    script = Path(__file__).resolve().parent.parent / "bench" / "sandbox.py"
    if not script.is_file():
        raise click.ClickException(
            "the sandbox benchmark ships with the source checkout, not the wheel: clone "
            "the repository, `pip install -e '.[dev,tools]'`, then `codedance bench sandbox`."
        )
    sys.argv = [str(script), *(["--quick"] if quick else [])]
    runpy.run_path(str(script), run_name="__main__")
