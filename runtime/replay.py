"""The ``replay`` model backend, which plays back recorded assistant turns.

It re-executes old trajectories against new tools or sandboxes, makes tests
deterministic, and runs the built-in examples' reference programs when no model
is configured. ``model.name`` (``--model replay:FILE``) is a JSONL file of either
``{"id": TASK_ID, "turns": ["...", ...]}`` lines or saved trajectories (their
assistant turns are replayed). A turn may contain ``{{last_stdout}}``, replaced
by the last non-empty line of the previous execution's stdout, so a reference
program's answer comes from actually running it. ``codedance.plugins.models.replay``
registers it; the runtime, evaluation and synthesis use it directly. The file
format is documented (and tested) in docs/configuration.md, "The replay backend".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from codedance.core.errors import ConfigError
from codedance.runtime.loop import current_trajectory
from codedance.runtime.model import ModelBackend, ModelError
from codedance.runtime.types import Generation, Message, Trajectory

if TYPE_CHECKING:
    from codedance.core.config import ModelConfig

__all__ = ["LAST_STDOUT", "ReplayModel", "load_replay"]

LAST_STDOUT = "{{last_stdout}}"


class ReplayModel(ModelBackend):
    """Answers each task with its recorded turns, in order."""

    name: ClassVar[str] = "replay"

    def __init__(
        self, config: ModelConfig, turns: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(config)
        self.turns = dict(turns) if turns is not None else load_replay(Path(config.name))

    async def generate(
        self, messages: Sequence[Message], *, stop: Sequence[str] = ()
    ) -> Generation:
        trajectory = current_trajectory.get()
        if trajectory is None:
            raise ModelError(
                "the replay model answers only inside the runtime loop (no current task)"
            )
        recorded = self.turns.get(trajectory.task.id)
        if recorded is None:
            raise ModelError(
                f"no recorded turns for task {trajectory.task.id!r} in {self.config.name}; "
                f"it has {len(self.turns)} task(s). Fix: record this task or pick the right file."
            )
        index = len(trajectory.turns)
        if index >= len(recorded):
            raise ModelError(
                f"task {trajectory.task.id!r} has only {len(recorded)} recorded turn(s); turn "
                f"{index + 1} was asked for (the new run took a different path)."
            )
        return Generation(_fill(recorded[index], trajectory), finish_reason="stop")

    def describe(self) -> str:
        return f"replay:{self.config.name}"


def _fill(text: str, trajectory: Trajectory) -> str:
    if LAST_STDOUT not in text:
        return text
    records = [turn.record for turn in trajectory.turns if turn.record is not None]
    stdout = records[-1].stdout if records else ""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return text.replace(LAST_STDOUT, lines[-1] if lines else "")


def load_replay(path: Path) -> dict[str, list[str]]:
    """Task id -> recorded assistant turns, from a replay file or a trajectories file."""
    if not path.is_file():
        raise ConfigError(
            f"model.name: replay file {str(path)!r} does not exist. Fix: pass --model "
            f'replay:PATH with a JSONL of {{"id", "turns"}} lines or saved trajectories.'
        )
    turns: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            task_id, recorded = _replay_line(path, number, line)
            turns[task_id] = recorded
    return turns


def _replay_line(path: Path, number: int, line: str) -> tuple[str, list[str]]:
    try:
        data: Any = json.loads(line)
        if "task" in data:  # a saved trajectory
            return str(data["task"]["id"]), [str(t["assistant"]) for t in data["turns"]]
        return str(data["id"]), [str(turn) for turn in data["turns"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}:{number}: not a replay line ({type(exc).__name__}: {exc}). Each line is "
            f'{{"id": "task-1", "turns": ["...", "..."]}} or a saved trajectory.'
        ) from None
