"""What went wrong in a run, by kind, told apart from what the model got wrong.

A trajectory ends in one of two ways that a score must not confuse. The model's
code may fail (an exception, a timeout, a crash it caused): that is the model's
doing, BAT penalises it and a wrong answer scores 0. Or the framework may fail:
the sandbox session did not start, its worker was lost while the code ran, the
model server did not answer. Those are this module's *kinds* (:data:`KINDS`).
The sandbox kinds are retried with a fresh session (``runtime.infra_retries``)
and, if they persist, the trajectory is marked ``failure`` and left unscored.

:func:`summarize_failures` groups a run's failures by kind, with the first message
of each and the trajectory it came from, for the console (:func:`console_lines`),
report.md (:func:`failures_markdown`) and report.html (:func:`failures_html`);
:func:`fatal_message` is the reason a whole run failed, if one reason explains it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codedance.core.errors import CodedanceError
from codedance.core.terminal import printable
from codedance.runtime.types import Trajectory

__all__ = [
    "KINDS",
    "FailureKind",
    "FailureRow",
    "InfrastructureError",
    "RunFailedError",
    "classify",
    "console_lines",
    "failures_html",
    "failures_markdown",
    "fatal_message",
    "summarize_failures",
    "viewer_link",
]


@dataclass(frozen=True)
class FailureKind:
    """One kind of failure: what happened, how to fix it, and whether the framework did it."""

    title: str
    fix: str
    infrastructure: bool  # the framework's failure: retried, never scored


KINDS: dict[str, FailureKind] = {
    "sandbox_start": FailureKind(
        "the sandbox session did not start",
        "run `codedance doctor`; on a busy machine lower runtime.concurrency or "
        "sandbox.admission.starting",
        True,
    ),
    "sandbox_lost": FailureKind(
        "the sandbox worker was lost while code ran (killed from outside, not by the code)",
        "look for an out-of-memory killer or a process that kills sandboxes (dmesg); "
        "lower runtime.concurrency",
        True,
    ),
    "model": FailureKind(
        "the model backend failed",
        "start the model server (e.g. `vllm serve MODEL`) or point --model / model.endpoint "
        "at a running one; `codedance doctor` checks it",
        False,
    ),
    "task_input": FailureKind(
        "the task's inputs could not be read",
        "check the image paths in the tasks file (relative paths start at its folder)",
        False,
    ),
    "internal": FailureKind(
        "the run failed inside the framework",
        "see the trajectory's error; report it if it is codedance's",
        False,
    ),
}

#: Failures of the model's code, by the record's error type (shown, never retried).
CODE = "code"


class InfrastructureError(CodedanceError):
    """The framework failed a trajectory (``kind`` in :data:`KINDS`); the loop retries it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RunFailedError(CodedanceError):
    """Every task of a run failed for one framework reason; the message names it and the fix."""


def classify(trajectory: Trajectory) -> str | None:
    """The failure kind that ended ``trajectory``, or None when it ended normally."""
    if trajectory.failure is not None:
        return trajectory.failure
    if trajectory.stop == "model_error":
        return "model"
    if trajectory.stop == "error":
        error = trajectory.error or ""
        return "task_input" if error.startswith("could not read the task") else "internal"
    return None


@dataclass
class FailureRow:
    """One kind of failure in a run: how often, and the first time it happened."""

    kind: str
    count: int
    message: str
    task_id: str
    infrastructure: bool
    title: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def summarize_failures(trajectories: Iterable[Trajectory]) -> list[FailureRow]:
    """The run's failures by kind (framework kinds first), then failed code by error type."""
    rows: dict[str, FailureRow] = {}
    for trajectory in trajectories:
        kind = classify(trajectory)
        if kind is not None:
            spec = KINDS.get(kind, KINDS["internal"])
            message = trajectory.error or spec.title
            _count(rows, kind, message, trajectory, spec.infrastructure, spec.title, spec.fix)
        for turn in trajectory.turns:
            if turn.tool_failed and turn.execution is not None:
                error = turn.execution.get("error") or {}
                name = str(error.get("type") or "TimeoutError")
                message = str(error.get("message") or "timed out")
                title = "the model's code failed"
                _count(rows, f"{CODE}:{name}", message, trajectory, False, title, "")
    return sorted(rows.values(), key=lambda r: (r.kind.startswith(CODE), -r.count, r.kind))


def _count(
    rows: dict[str, FailureRow],
    kind: str,
    message: str,
    trajectory: Trajectory,
    infrastructure: bool,
    title: str,
    fix: str,
) -> None:
    row = rows.get(kind)
    if row is None:
        # The message may be the model's: printable() keeps terminal escapes out.
        first = printable(message.strip().splitlines()[0][:300]) if message.strip() else title
        rows[kind] = FailureRow(kind, 1, first, trajectory.task.id, infrastructure, title, fix)
    else:
        row.count += 1


def fatal_message(trajectories: Sequence[Trajectory]) -> str | None:
    """When every trajectory failed for one framework reason: that reason and its fix."""
    kinds = {classify(t) for t in trajectories}
    if not trajectories or len(kinds) != 1 or None in kinds:
        return None
    (kind,) = kinds
    assert kind is not None
    spec = KINDS.get(kind, KINDS["internal"])
    first = next((t.error for t in trajectories if t.error), "")
    fix = "" if "Fix:" in first else f"\nFix: {spec.fix}."  # the error may name its own fix
    return f"every task failed: {spec.title}: {first}{fix}"


def viewer_link(task_id: str, page: str = "view.html") -> str:
    """The link to a trajectory on the run's viewer page (``codedance view`` writes it)."""
    from codedance.runtime.viewer import anchor

    return f"{page}#{anchor(task_id)}"


def console_lines(rows: Sequence[FailureRow], out: str = "OUT") -> list[str]:
    """The errors table for a terminal: kind, count, first message, and the fix."""
    if not rows:
        return []
    lines = ["Errors by kind:"]
    for row in rows:
        lines.append(
            f"  {row.kind}: {row.count} ({_origin(row)}); first, in task {row.task_id}: "
            f"{row.message}"
        )
        if row.fix:
            lines.append(f"    fix: {row.fix}")
    if any(row.infrastructure for row in rows):
        lines.append("  tasks the framework failed run again with --resume (the same --out)")
    lines.append(f"  see each trajectory: codedance view {out}")
    return lines


def _origin(row: FailureRow) -> str:
    if row.infrastructure:
        return "the framework's failure, not scored"
    return "the run failed" if row.kind in KINDS else "the model's code"


def failures_markdown(rows: Sequence[FailureRow], page: str = "view.html") -> list[str]:
    """The errors section of report.md (no lines when the run had no failures)."""
    if not rows:
        return []
    lines = ["", "Errors by kind (framework failures are retried, then left unscored):", ""]
    lines += ["| kind | count | framework's | first message | trajectory |"]
    lines += ["|---|---:|---|---|---|"]
    for row in rows:
        message = row.message.replace("|", "\\|")
        link = f"[{row.task_id}]({viewer_link(row.task_id, page)})"
        yes = "yes" if row.infrastructure else "no"
        lines.append(f"| {row.kind} | {row.count} | {yes} | {message} | {link} |")
    return lines


def failures_html(rows: Sequence[FailureRow], page: str = "view.html") -> str:
    """The errors table of report.html ("" when the run had no failures)."""
    if not rows:
        return ""
    cells = []
    for row in rows:
        link = html.escape(viewer_link(row.task_id, page), quote=True)
        cells.append(
            f"<tr><td>{html.escape(row.kind)}</td><td>{row.count}</td>"
            f"<td>{'yes' if row.infrastructure else 'no'}</td><td>{html.escape(row.message)}</td>"
            f'<td><a href="{link}">{html.escape(row.task_id)}</a></td></tr>'
        )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("kind", "count", "framework's", "first message", "trajectory")
    )
    head = f"<tr>{head}</tr>"
    return f"<h2>Errors by kind</h2><table>{head}{''.join(cells)}</table>"
