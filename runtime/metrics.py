"""Run metrics: accuracy, tool use, turns and rewards of a set of trajectories.

What ``codedance run`` prints and writes to summary.json; evaluation and the
progress bar read the same numbers. They read ``Trajectory.rewards`` as scored
before (by :func:`codedance.rewards.composition.composition_scorer`), so this
module needs no reward code.
"""

from __future__ import annotations

from typing import Any

from codedance.runtime.types import Trajectory

__all__ = ["accuracy", "accuracy_text", "summarize"]


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
