"""Built-in reward components: accuracy, format, and simple tool-use baselines.

BAT, CodeDance's reward, is in :mod:`codedance.rewards.bat`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from codedance.rewards.base import RewardComponent, RewardResult
from codedance.rewards.matching import InvalidAnswerError, score_answer
from codedance.runtime.types import Trajectory, Turn

__all__ = [
    "AccuracyReward",
    "CallPenaltyReward",
    "FormatReward",
    "SuccessBonusReward",
    "accuracy_of",
    "failed",
]


def accuracy_of(trajectory: Trajectory, max_answer_chars: int = 1000) -> float | None:
    """1.0/0.0 against the task's known answer; None when the task has none.

    An answer of ``max_answer_chars`` or more scores 0, as in the CodeDance release
    (a model must not win by listing every option). A reference that cannot be read
    as its ``answer_type`` (CharXiv's ``10^-1`` given as a number of another form, an
    empty one) is compared as ``text`` instead: one bad row must not end a run or a
    training step. :class:`AccuracyReward` says so in its parts. None, too, when the
    framework failed the trajectory (``trajectory.failure``): that is no wrong answer.
    """
    return _accuracy(trajectory, max_answer_chars)[0]


def _accuracy(trajectory: Trajectory, max_answer_chars: int) -> tuple[float | None, bool]:
    """:func:`accuracy_of`, and whether the reference had to be compared as text."""
    task = trajectory.task
    if task.answer is None or trajectory.failure is not None:
        return None, False
    answer = trajectory.answer or ""
    if not answer.strip() or len(answer) >= max_answer_chars:
        return 0.0, False
    try:
        return score_answer(answer, task.answer, task.answer_type, options=task.options), False
    except InvalidAnswerError:
        as_text = score_answer(answer, task.answer, "text") if task.answer.strip() else 0.0
        return as_text, True


def failed(turn: Turn, no_output_fails: bool = False) -> bool:
    """Did this turn's execution fail? Optionally also when it showed nothing at all."""
    if turn.tool_failed:
        return True
    execution = turn.execution or {}
    silent = not str(execution.get("stdout", "")).strip() and not execution.get("images")
    return no_output_fails and turn.called_tool and silent


class AccuracyReward(RewardComponent):
    """1 when the final answer matches the task's answer by its ``answer_type``, else 0."""

    name: ClassVar[str] = "accuracy"
    defaults: ClassVar[dict[str, Any]] = {"max_answer_chars": 1000}

    def score(self, trajectory: Trajectory) -> RewardResult:
        if trajectory.failure is not None:
            return RewardResult(0.0, {"unscored": 1.0, "infrastructure": 1.0})
        value, as_text = _accuracy(trajectory, int(self.params["max_answer_chars"]))
        if value is None:
            return RewardResult(0.0, {"unscored": 1.0})
        if as_text:  # the reference is not a valid answer of its type: a dataset bug
            return RewardResult(value, {"correct": value, "reference_as_text": 1.0})
        return RewardResult(value, {"correct": value})


_THINK_OPEN, _THINK_CLOSE = re.compile(r"<think>"), re.compile(r"</think>")
_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL)


class FormatReward(RewardComponent):
    """0 for a well-formed trajectory, ``penalty`` (default -1) otherwise.

    Well-formed: it ended with a final answer; every turn followed the protocol (no
    turn the protocol had to explain); no turn ran more than one code block; the
    final turn has balanced ``<think>`` tags, exactly one ``<answer>...</answer>``
    and nothing after it. The parts say which check failed.
    """

    name: ClassVar[str] = "format"
    defaults: ClassVar[dict[str, Any]] = {"penalty": -1.0}

    def score(self, trajectory: Trajectory) -> RewardResult:
        checks = {
            "answered": trajectory.stop == "answer" and trajectory.answer is not None,
            "no_malformed_turns": all(t.parsed.problem is None for t in trajectory.turns),
            "one_block_per_turn": all(t.parsed.extra_blocks == 0 for t in trajectory.turns),
            "clean_final_turn": _clean_final(trajectory.turns),
        }
        ok = all(checks.values())
        parts = {name: float(passed) for name, passed in checks.items()}
        return RewardResult(0.0 if ok else float(self.params["penalty"]), parts)


def _clean_final(turns: Sequence[Turn]) -> bool:
    if not turns:
        return False
    text = turns[-1].assistant
    if len(_THINK_OPEN.findall(text)) != len(_THINK_CLOSE.findall(text)):
        return False
    answers = _ANSWER.findall(text)
    if "<answer>" not in text:  # a protocol without answer tags (e.g. \boxed)
        return True
    return len(answers) == 1 and not text.rsplit("</answer>", 1)[1].strip()


class CallPenaltyReward(RewardComponent):
    """A baseline: ``-per_call`` for every tool call, whatever its use."""

    name: ClassVar[str] = "call_penalty"
    defaults: ClassVar[dict[str, Any]] = {"per_call": 0.1}

    def score(self, trajectory: Trajectory) -> RewardResult:
        calls = trajectory.tool_calls
        return RewardResult(-float(self.params["per_call"]) * calls, {"calls": float(calls)})


class SuccessBonusReward(RewardComponent):
    """A baseline (DeepEyes-style): a bonus for a correct answer reached with a tool call.

    With ``per_call`` the bonus is paid for each successful call instead, the
    variant the CodeDance ablation shows being gamed with comment-only code.
    """

    name: ClassVar[str] = "success_bonus"
    defaults: ClassVar[dict[str, Any]] = {
        "bonus": 0.5,
        "per_call": False,
        "no_output_fails": False,
    }

    def score(self, trajectory: Trajectory) -> RewardResult:
        no_output = bool(self.params["no_output_fails"])
        calls = [t for t in trajectory.turns if t.called_tool]
        succeeded = sum(not failed(t, no_output) for t in calls)
        bonus = float(self.params["bonus"])
        if self.params["per_call"]:
            return RewardResult(bonus * succeeded, {"successful_calls": float(succeeded)})
        correct = accuracy_of(trajectory) == 1.0
        value = bonus if correct and succeeded else 0.0
        return RewardResult(value, {"successful_calls": float(succeeded)})
