"""Data problems: what an eval skipped or scored by a fallback, and why. Never an abort.

A published benchmark file has bad rows: an option string that does not follow its
own schema, a reference that cannot be read as its declared type (CharXiv's
``10^-1`` as a number), a missing image. One such row must not end a 1,000-task run
without a report. The rule is:

* a row the loader cannot turn into a task is **skipped**; its place in the file
  and the reason are a :class:`DataProblem` (:meth:`Benchmark.row_task
  <codedance.evaluation.benchmark.Benchmark.row_task>` does this for every loader);
* a reference the official rule cannot read is **scored by the fallback**
  (:func:`fallback_score`: the extracted answer equals the reference as text, after
  SQuAD normalisation), and the task records the problem in
  ``task.metadata["data_problem"]`` so ``--resume`` and ``--report`` still list it.

The report's "Data problems" section lists both (:func:`problems_of_run`);
``data_problems.json`` in the run folder holds the loader's list of the last run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codedance.evaluation.benchmark import Benchmark
    from codedance.runtime.types import Trajectory

__all__ = [
    "PROBLEMS_FILE",
    "DataProblem",
    "fallback_score",
    "problems_of_run",
    "read_problems",
    "safe_score",
    "write_problems",
]

PROBLEMS_FILE = "data_problems.json"
#: The key under which a task records the problem its scoring met.
METADATA_KEY = "data_problem"
#: The key under which a task records that ``--judge`` failed on it (see evaluation.judging).
JUDGE_KEY = "judge_error"


@dataclass(frozen=True)
class DataProblem:
    """One row skipped, or one reference scored by the fallback.

    ``where`` is the place in the published file (``"testmini.json item 4"``) or
    the task id; ``action`` is ``"skipped"`` or ``"scored as text"``.
    """

    where: str
    reason: str
    action: str = "skipped"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataProblem:
        return cls(str(data["where"]), str(data["reason"]), str(data.get("action", "skipped")))


def fallback_score(trajectory: Trajectory) -> float:
    """The documented fallback: the extracted answer equals the reference as text."""
    from codedance.rewards.matching import score_answer

    task = trajectory.task
    if task.answer is None or not str(task.answer).strip():
        return 0.0
    return score_answer(trajectory.answer or "", str(task.answer), "text")


def safe_score(benchmark: Benchmark, trajectory: Trajectory) -> float:
    """The benchmark's official score; the text fallback when its rule raises.

    The error is recorded on the task (``metadata["data_problem"]``), so the run
    goes on and the report lists the task under "Data problems". A missing optional
    dependency or a bad option (:class:`MissingDependencyError`, :class:`ConfigError`)
    is raised: it is no data problem.
    """
    from codedance.core.errors import ConfigError, MissingDependencyError

    try:
        return float(benchmark.score(trajectory))
    except (MissingDependencyError, ConfigError):
        raise  # a missing extra or a bad option is the setup's fault, not the row's
    except Exception as error:  # a bad row must never end a run
        reason = f"{type(error).__name__}: {error}"
        trajectory.task.metadata[METADATA_KEY] = reason
        return fallback_score(trajectory)


def problems_of_run(
    loaded: Sequence[DataProblem], trajectories: Iterable[Trajectory]
) -> list[DataProblem]:
    """The loader's problems, then every task whose scoring used the fallback."""
    trajectories = list(trajectories)
    scored = [
        DataProblem(t.task.id, str(t.task.metadata[METADATA_KEY]), "scored as text")
        for t in trajectories
        if t.task.metadata.get(METADATA_KEY)
    ]
    unjudged = [
        DataProblem(t.task.id, str(t.task.metadata[JUDGE_KEY]), "scored by the stand-in")
        for t in trajectories
        if t.task.metadata.get(JUDGE_KEY)
    ]
    return [*loaded, *scored, *unjudged]


def write_problems(out: Path, problems: Sequence[DataProblem]) -> None:
    """Write the loader's problems to ``data_problems.json`` in the run folder."""
    text = json.dumps([p.to_json() for p in problems], indent=2, ensure_ascii=False)
    (out / PROBLEMS_FILE).write_text(text, encoding="utf-8")


def read_problems(out: Path) -> list[DataProblem]:
    """The problems :func:`write_problems` wrote; none when the file is absent."""
    path = out / PROBLEMS_FILE
    if not path.is_file():
        return []
    return [DataProblem.from_json(item) for item in json.loads(path.read_text(encoding="utf-8"))]
