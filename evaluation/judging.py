"""``codedance eval --judge``: the official LLM grader prompt, asked of an OpenAI-compatible API.

CharXiv, MathVerse and HR-Bench are officially graded by an LLM. By default codedance
scores them with rule-based stand-ins; with ``--judge URL`` each of their tasks is
instead graded by sending the benchmark's own grader prompt (its
:meth:`~codedance.evaluation.benchmark.Benchmark.judge_prompt`) to ``URL``'s
``/chat/completions`` at temperature 0 and reading the reply as the official script
does (:meth:`~codedance.evaluation.benchmark.Benchmark.judge_verdict`). Requests,
retries, the ``/models`` lookup of ``--judge-model auto`` and the key from
``OPENAI_API_KEY`` are :class:`~codedance.rewards.judge.JudgeReward`'s. A task the
judge cannot grade (the server failed after its retries) keeps the stand-in's score
and is listed under "Data problems" with the judge's error; benchmarks whose grader
is not an LLM keep their official rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codedance.evaluation.problems import JUDGE_KEY, safe_score
from codedance.rewards.judge import JudgeError, JudgeReward

if TYPE_CHECKING:
    from codedance.evaluation.benchmark import Benchmark
    from codedance.runtime.types import Trajectory

__all__ = ["JUDGE_ERROR_KEY", "OfficialJudge", "judged_score"]

#: Where a task records that the judge failed and the stand-in scored it.
JUDGE_ERROR_KEY = JUDGE_KEY


class OfficialJudge(JudgeReward):
    """A :class:`JudgeReward` that asks a benchmark's own grader prompt."""

    def __init__(self, benchmark: Benchmark, **params: Any) -> None:
        super().__init__(**params)
        self.benchmark = benchmark

    def prompt_for(self, trajectory: Trajectory, prediction: str) -> str:
        prompt = self.benchmark.judge_prompt(trajectory.task, trajectory.answer or "")
        return prompt if prompt is not None else super().prompt_for(trajectory, prediction)

    def verdict(self, reply: str) -> float | None:
        return self.benchmark.judge_verdict(reply)

    def describe_model(self) -> str:
        """The judge's model name, asking the server's ``/models`` for ``auto`` (once).

        :raises JudgeError: the server cannot be reached or lists no model.
        """
        return self._model()

    def describe(self) -> str:
        """The grader, in words, for the report's manifest."""
        return (
            f"{self.benchmark.name}'s official LLM grader prompt via {self.endpoint} "
            f"(model {self.model or self.params['model']})"
        )


def judged_score(judge: OfficialJudge, benchmark: Benchmark, trajectory: Trajectory) -> float:
    """The judge's score where the benchmark has a grader prompt, else the official rule."""
    task = trajectory.task
    if task.answer is None or benchmark.judge_prompt(task, trajectory.answer or "") is None:
        return safe_score(benchmark, trajectory)
    try:
        (result,) = judge.score_group([trajectory])
    except JudgeError as error:
        task.metadata[JUDGE_ERROR_KEY] = str(error)
        return safe_score(benchmark, trajectory)
    return result.value
