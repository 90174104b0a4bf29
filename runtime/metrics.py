"""Run metrics: accuracy, tool use, turns and rewards of a set of trajectories.

What ``codedance run`` prints and writes to summary.json; evaluation and the
progress bar read the same numbers. They read ``Trajectory.rewards`` as scored
before (by :func:`codedance.rewards.composition.composition_scorer`), so this
module needs no reward code.
"""

from __future__ import annotations

from typing import Any

from codedance.runtime.types import Trajectory

__all__ = ["accuracy", "accuracy_text", "missing_packages", "summarize"]


def accuracy(trajectory: Trajectory) -> float | None:
    """The accuracy reward, or None when the task had no known answer."""
    rewards = trajectory.rewards
    if "accuracy" not in rewards or rewards.get("accuracy.unscored"):
        return None
    return rewards["accuracy"]


def _scored(trajectories: list[Trajectory]) -> list[float]:
    return [a for a in map(accuracy, trajectories) if a is not None]


def accuracy_text(trajectories: list[Trajectory]) -> str:
    """The mean accuracy so far with three decimals, or ``-`` before any scored one."""
    scored = _scored(trajectories)
    return f"{sum(scored) / len(scored):.3f}" if scored else "-"


def summarize(trajectories: list[Trajectory]) -> dict[str, Any]:
    """Counts, accuracy and tool use of a run, as summary.json holds them."""
    n = len(trajectories)
    scored = _scored(trajectories)
    calls = sum(t.tool_calls for t in trajectories)
    stops: dict[str, int] = {}
    for trajectory in trajectories:
        stops[trajectory.stop] = stops.get(trajectory.stop, 0) + 1
    return {
        "trajectories": n,
        "scored": len(scored),
        "accuracy": round(sum(scored) / len(scored), 4) if scored else None,
        "tool_calls_per_trajectory": round(calls / n, 3) if n else 0.0,
        "tool_success_rate": round(1 - sum(t.failed_calls for t in trajectories) / calls, 4)
        if calls
        else None,
        "turns_per_trajectory": round(sum(len(t.turns) for t in trajectories) / n, 3) if n else 0.0,
        "mean_reward": round(sum(t.rewards.get("total", 0.0) for t in trajectories) / n, 4)
        if n
        else None,
        "stop_reasons": stops,
        "errors": _errors(trajectories),
        "mean_duration_s": round(sum(t.duration_s for t in trajectories) / n, 4) if n else 0.0,
    }


def _errors(trajectories: list[Trajectory]) -> dict[str, int]:
    """Failures by kind (framework kinds, then ``code:<error type>``), as counts."""
    from codedance.runtime.failures import summarize_failures

    return {row.kind: row.count for row in summarize_failures(trajectories)}


def missing_packages(trajectories: list[Trajectory]) -> dict[str, list[str]]:
    """Install hints of the packages tool calls found missing -> the tools that hit them.

    A tool whose package is not installed (the OCR tools without the ``ocr`` extra)
    raises ``ModuleNotFoundError`` in the sandbox; the model sees that, and the run
    says so once at the end instead of just scoring lower.
    """
    found: dict[str, list[str]] = {}
    for trajectory in trajectories:
        for turn in trajectory.turns:
            error = turn.record.error if turn.record is not None else None
            if error is None or error.type != "ModuleNotFoundError":
                continue
            tools = found.setdefault(error.message, [])
            for tool in _tools_in(error.traceback or ""):
                if tool not in tools:
                    tools.append(tool)
    return found


def _tools_in(traceback: str) -> list[str]:
    """Tool functions on a trimmed traceback (``File "<codedance-tools>/...", in name``)."""
    names = []
    for line in traceback.splitlines():
        if "<codedance-tools>/" in line and ", in " in line:
            name = line.rsplit(", in ", 1)[1].strip()
            if not name.startswith(("_", "<")):  # tools, not their helpers
                names.append(name)
    return names
