"""BAT, the Balanced Adaptive Tool-call reward of CodeDance (arXiv 2512.17312).

R_BAT = R_seq + R_turn.

**Sequence level.** The difficulty factor of a prompt comes from its group's
accuracy mu_acc (the mean accuracy of all rollouts of that prompt)::

    d = (1 + tanh(gamma * (0.5 - mu_acc))) / 2 - delta        gamma = 4, delta = 0.2

d is 0.3 at mu_acc = 0.5 and negative above mu_acc ~ 0.673: tool calls are
encouraged on hard prompts and discouraged on easy ones. With N_succ successful
and N_total tool calls (R_seq = 0 without calls)::

    plain     R_seq = d * N_succ / N_total                        (the paper)
    weighted  R_seq = d * w(correct) * N_succ / N_total           (the release)
              w = 1.5 correct / 0.5 wrong; 2.0 / 1.0 for math tasks

**Turn level.** Failed execution k gets s_k = turn_penalty (-0.5), else 0; the
answer turn gets 0; penalties are carried backwards with discount beta = 0.2::

    c_k = s_k + beta * c_{k+1}

c_k is credited to the assistant turn that made call k (``turn_values``); the
trainer adds it to that turn's tokens' advantage, as the release does. As in the
release, the scalar value is R_seq alone unless ``turn_in_value`` adds c_1 (the
discounted turn-level return from the first call).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from codedance.core.errors import ConfigError
from codedance.rewards.base import RewardComponent, RewardResult
from codedance.rewards.components import accuracy_of, failed
from codedance.runtime.types import Trajectory

__all__ = ["BATReward", "difficulty", "sequence_reward", "turn_returns"]

VARIANTS = ("plain", "weighted")


def difficulty(mu_acc: float, gamma: float = 4.0, delta: float = 0.2) -> float:
    """d = (1 + tanh(gamma (0.5 - mu_acc))) / 2 - delta."""
    return (1.0 + math.tanh(gamma * (0.5 - mu_acc))) / 2.0 - delta


def sequence_reward(d: float, successes: int, calls: int, weight: float = 1.0) -> float:
    """R_seq = d * weight * successes / calls, and 0 without calls."""
    return 0.0 if calls == 0 else d * weight * successes / calls


def turn_returns(
    call_failed: Sequence[bool], penalty: float = -0.5, beta: float = 0.2
) -> list[float]:
    """c_k for each call, then 0 for the answer turn: c_k = s_k + beta * c_{k+1}."""
    returns = [0.0]  # the answer turn
    for failure in reversed(call_failed):
        returns.insert(0, (penalty if failure else 0.0) + beta * returns[0])
    return returns


class BATReward(RewardComponent):
    """Tool-call reward scaled by the prompt's difficulty (below 0 on prompts its group
    solved, so calls there cost reward) plus penalties for failed runs.

    See the module docstring for the formulas and the parameters.
    """

    name: ClassVar[str] = "bat"
    defaults: ClassVar[dict[str, Any]] = {
        "gamma": 4.0,
        "delta": 0.2,
        "turn_penalty": -0.5,
        "beta": 0.2,
        "variant": "plain",
        "weights": [1.5, 0.5],  # (correct, wrong) for the weighted variant
        "math_weights": [2.0, 1.0],
        "no_output_fails": False,  # the release also counts a silent run as failed
        "turn_in_value": False,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["variant"] not in VARIANTS:
            raise ConfigError(
                f"reward 'bat': variant {self.params['variant']!r} is not one of {VARIANTS}. "
                f"Fix: rewards[...].params.variant: plain (the paper) or weighted (the release)."
            )

    def score_group(self, group: Sequence[Trajectory]) -> list[RewardResult]:
        """Rollouts the framework failed (``failure``) count neither in the group's
        accuracy nor as calls: they score 0 with ``infrastructure`` in their parts."""
        accuracies = [accuracy_of(t) or 0.0 for t in group]
        counted = [a for t, a in zip(group, accuracies, strict=True) if t.failure is None]
        mu_acc = sum(counted) / len(counted) if counted else 0.0
        d = difficulty(mu_acc, float(self.params["gamma"]), float(self.params["delta"]))
        return [
            RewardResult(0.0, {"infrastructure": 1.0}, [0.0] * len(t.turns))
            if t.failure is not None
            else self._one(t, d, mu_acc, acc)
            for t, acc in zip(group, accuracies, strict=True)
        ]

    def _one(
        self, trajectory: Trajectory, d: float, mu_acc: float, accuracy: float
    ) -> RewardResult:
        no_output = bool(self.params["no_output_fails"])
        call_turns = [turn for turn in trajectory.turns if turn.called_tool]
        failures = [failed(turn, no_output) for turn in call_turns]
        calls, successes = len(failures), failures.count(False)
        r_seq = sequence_reward(d, successes, calls, self._weight(trajectory, accuracy))
        returns = turn_returns(
            failures, float(self.params["turn_penalty"]), float(self.params["beta"])
        )
        turn_values = _per_turn(trajectory, returns)
        value = r_seq + (returns[0] if self.params["turn_in_value"] and calls else 0.0)
        parts = {
            "r_seq": r_seq,
            "r_turn": returns[0] if calls else 0.0,
            "difficulty": d,
            "group_accuracy": mu_acc,
            "calls": float(calls),
            "successful_calls": float(successes),
        }
        return RewardResult(value, parts, turn_values)

    def _weight(self, trajectory: Trajectory, accuracy: float) -> float:
        if self.params["variant"] == "plain":
            return 1.0
        is_math = trajectory.task.answer_type == "math"
        correct, wrong = self.params["math_weights" if is_math else "weights"]
        return float(correct if accuracy == 1.0 else wrong)


def _per_turn(trajectory: Trajectory, returns: list[float]) -> list[float]:
    """c_k placed on the turn that made call k; 0 on every other turn."""
    values = [0.0] * len(trajectory.turns)
    calls = [i for i, turn in enumerate(trajectory.turns) if turn.called_tool]
    for index, value in zip(calls, returns, strict=False):
        values[index] = value
    return values
