"""Scorer parity: codedance's default scores against the official scorers' own verdicts.

``tests/data/parity/<benchmark>.jsonl`` holds cases built from the authors' real
records (tests/data/real/; CountBench and V* have none, so their tasks are made up
to the published schema): a task as codedance loads it, a model response, the kind
of variant it is (the gold answer, the gold in another form, a wrong answer, ...) and
``official``, the verdict of the benchmark's official scoring code, run unmodified
in a throwaway environment (tests/data/parity/SOURCES.md says which code and how).
:func:`parity` scores every case with the benchmark's default scorer (and its
lenient one, where it has one) and counts the agreements; ``scripts/scorer_parity.py``
writes the table into docs/benchmarks.md and a test checks that it is current.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codedance.evaluation.benchmark import Benchmark
from codedance.runtime.types import Message, Task, Trajectory

__all__ = ["Parity", "load_cases", "parity", "parity_markdown"]

#: What each benchmark's official verdicts come from (shown in the table).
OFFICIAL_CODE = {
    "mathvista": "lupantech/MathVista `calculate_score.py` (normalize + safe_equal) on extractions",
    "mathvision": "mathllm/MATH-V `evaluate.py` + `utils.is_equal` (latex2sympy)",
    "chartqa": "lmms-eval `chartqa/utils.py` `relaxed_correctness`",
    "wemath": "We-Math `four_dimensional_metrics.py` letter rule",
    "countbench": "lmms-eval `countbench/utils.py` `countbench_process_results`",
    "vstar": "lmms-eval `vstar_bench/utils.py` `extract_answer_letter`",
}


@dataclass
class Parity:
    """Agreement of one benchmark's scorer modes with the official verdicts."""

    benchmark: str
    cases: int = 0
    agree: dict[str, int] = field(default_factory=dict)
    #: mode -> the variant kinds where it disagreed, with counts
    differ: dict[str, dict[str, int]] = field(default_factory=dict)

    def rate(self, mode: str) -> float:
        return 100.0 * self.agree.get(mode, 0) / self.cases if self.cases else 0.0


def load_cases(path: Path) -> list[dict[str, Any]]:
    """The cases of one parity file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def parity(make: Callable[[str], Benchmark], name: str, cases: Sequence[dict[str, Any]]) -> Parity:
    """Score ``cases`` with every scorer mode of the benchmark ``make(mode)`` builds."""
    result = Parity(name, len(cases))
    for mode in make("official").scorer_modes:
        bench = make(mode)
        result.agree[mode] = 0
        result.differ[mode] = {}
        for case in cases:
            ours = _score(bench, Task.from_json(case["task"]), case["response"]) >= 1.0
            if ours == bool(case["official"]):
                result.agree[mode] += 1
            else:
                kind = f"{case['variant']} (official {'1' if case['official'] else '0'})"
                result.differ[mode][kind] = result.differ[mode].get(kind, 0) + 1
    return result


def _score(bench: Benchmark, task: Task, response: str) -> float:
    trajectory = Trajectory(task, "", Message.text("user", task.question), answer=response)
    return bench.score(trajectory)


def parity_markdown(results: Sequence[Parity]) -> str:
    """The parity table and, per benchmark and mode, where the scores differ."""
    lines = [
        "| benchmark | official code | cases | default (official) agrees | lenient agrees |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        lenient = (
            f"{r.agree['lenient']}/{r.cases} ({r.rate('lenient'):.1f}%)"
            if "lenient" in r.agree
            else "-"
        )
        lines.append(
            f"| {r.benchmark} | {OFFICIAL_CODE.get(r.benchmark, '?')} | {r.cases} | "
            f"{r.agree['official']}/{r.cases} ({r.rate('official'):.1f}%) | {lenient} |"
        )
    lines.append("")
    for r in results:
        for mode, kinds in r.differ.items():
            if kinds:
                listed = "; ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
                lines.append(f"- {r.benchmark}, {mode}: differs on {listed}.")
    return "\n".join(lines) + "\n"
