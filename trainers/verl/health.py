"""Training-health signals per step, the tool-collapse alarm, and where they reach verl's log.

Tool use collapsing to zero during RL is the failure users of DeepEyes, Pixel-Reasoner
and PyVision report most; reward hacking, runaway turns and lost images come next.
:class:`HealthMonitor` measures each generated batch in the rollout's
``AgentLoopManager`` (:class:`~codedance.trainers.verl.reward.CodedanceAgentLoopManager`),
where the whole batch, its trajectory records and its score cards are at hand, and
hands the numbers to verl through verl's own channel for rollout statistics: the
manager's ``meta_info["timing"]``, which verl's legacy trainer merges into the step's
``timing_raw`` and logs, as ``timing_s/<name>``, with every other metric of the step
to each configured logger (console, JSONL file, wandb, ...). verl's own agent-loop
statistics travel the same way (``timing_s/agent_loop/...``). Each name below is
thus logged as ``timing_s/codedance/<name>``; docs/training.md lists them.

The per-row tool-call counts also go into the batch as ``tool_call_counts``, which
verl's ``compute_data_metrics`` logs as ``tool_call_counts/{mean,min,max}``. The
rollout-vs-trainer log-prob gap needs the trainer's log-probs, computed after the
rollout; verl computes it itself from the rollout log-probs the codedance agent
loop returns (``rollout_corr/kl``, ``rollout_corr/log_ppl_abs_diff``,
``training/rollout_probs_diff_mean``), see :data:`VERL_GAP_METRICS`.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from codedance.rewards.composition import ScoreCard
from codedance.runtime.types import StopReason, Trajectory
from codedance.trainers.verl.guard import MM_KEY, ModalityGuard, trajectory_images
from codedance.trainers.verl.remedies import (
    NO_SPREAD,
    apply_remedies,
    group_stds,
    metric_values,
)

if TYPE_CHECKING:
    from codedance.core.config import HealthConfig

__all__ = [
    "LOGGED_PREFIX",
    "PREFIX",
    "STOP_REASONS",
    "TOOL_COUNTS_KEY",
    "VERL_GAP_METRICS",
    "HealthMonitor",
    "ToolCollapseAlarm",
    "group_metrics",
    "logged_health",
    "rollout_metrics",
]

PREFIX = "codedance/"
#: Where verl's legacy trainer logs what the manager puts in ``meta_info["timing"]``.
LOGGED_PREFIX = "timing_s/" + PREFIX
TOOL_COUNTS_KEY = "tool_call_counts"
STOP_REASONS: tuple[str, ...] = typing.get_args(StopReason)
#: verl's own metrics of the rollout-vs-trainer log-prob gap (rollout log-probs needed).
VERL_GAP_METRICS = (
    "rollout_corr/kl",
    "rollout_corr/log_ppl_abs_diff",
    "training/rollout_probs_diff_mean",
)
_log = logging.getLogger(__name__)


def rollout_metrics(
    trajectories: Sequence[Trajectory],
    cards: Sequence[ScoreCard],
    response_mask: Any,
    image_tokens: Sequence[int] | None = None,
) -> dict[str, float]:
    """Tool use, turns, stops, rewards, lengths and images of one batch (unprefixed names)."""
    n = len(trajectories)
    calls = [t.tool_calls for t in trajectories]
    failed = sum(t.failed_calls for t in trajectories)
    turns = [len(t.turns) for t in trajectories]
    generated = [int(count) for count in (response_mask != 0).sum(dim=-1).tolist()]
    metrics = {
        "tool_calls/mean": sum(calls) / n,
        "tool_calls/max": float(max(calls)),
        "tool_rate": sum(count > 0 for count in calls) / n,
        "turns/mean": sum(turns) / n,
        "turns/max": float(max(turns)),
        "over_turn_share": sum(t.stop == "max_turns" for t in trajectories) / n,
        "response_length/mean": sum(generated) / n,
        "images/mean": sum(trajectory_images(t) for t in trajectories) / n,
    }
    if sum(calls):  # undefined without calls: left out rather than logged as 0
        metrics["call_success_rate"] = (sum(calls) - failed) / sum(calls)
    for reason in STOP_REASONS:
        metrics[f"stop/{reason}"] = sum(t.stop == reason for t in trajectories) / n
    if image_tokens is not None:
        metrics["image_tokens/mean"] = sum(image_tokens) / n
    metrics.update(_reward_means(cards))
    return metrics


def _reward_means(cards: Sequence[ScoreCard]) -> dict[str, float]:
    """``reward/<key>/mean`` for the total (``score``), every component and every part."""
    keys = dict.fromkeys(key for card in cards for key in (*card.components, *card.parts))
    means = {"reward/score/mean": sum(card.total for card in cards) / len(cards)}
    for key in keys:
        values = metric_values(cards, key)
        means[f"reward/{key}/mean"] = sum(values) / len(values)
    return means


def group_metrics(uids: Sequence[Any], values: Sequence[float], min_std: float) -> dict[str, float]:
    """Mean within-group std of ``values`` and the share of groups with std <= ``min_std``."""
    stds = [std for _, std in group_stds(uids, values).values()]
    return {
        "group/reward_std/mean": sum(stds) / len(stds),
        "group/zero_std_share": sum(std <= min_std + NO_SPREAD for std in stds) / len(stds),
    }


class ToolCollapseAlarm:
    """Fires when the tool-use share stays below ``floor`` for ``steps`` training steps in a row.

    ``steps`` 0 turns it off. Each firing step logs a warning; the metrics say whether
    it fires and how many low steps in a row there have been.
    """

    def __init__(self, floor: float, steps: int) -> None:
        self.floor, self.steps = floor, steps
        self.low = 0

    def update(self, tool_rate: float, step: Any = None) -> dict[str, float]:
        """Count one training step whose tool-use share was ``tool_rate``."""
        if self.steps <= 0:
            return {}
        self.low = self.low + 1 if tool_rate < self.floor else 0
        firing = self.low >= self.steps
        if firing:
            _log.warning(
                "codedance training health: TOOL USE COLLAPSED at step %s: %.1f%% of rollouts "
                "called a tool, under training.health.tool_rate_floor=%.1f%% for %d steps in a "
                "row. See the remedies in docs/training.md (training health).",
                "?" if step is None else step,
                100 * tool_rate,
                100 * self.floor,
                self.low,
            )
        return {"alarm/tool_collapse": float(firing), "alarm/low_tool_steps": float(self.low)}


class HealthMonitor:
    """One per rollout manager: measures batches, guards them, applies the remedies.

    ``processor`` returns the policy's processor (called once, only for a batch with
    images) to build the :class:`~codedance.trainers.verl.guard.ModalityGuard`.
    """

    def __init__(self, config: HealthConfig, processor: Callable[[], Any]) -> None:
        self.config, self._processor = config, processor
        self.alarm = ToolCollapseAlarm(config.tool_rate_floor, config.alarm_steps)
        self._guard: ModalityGuard | None = None
        self._guard_built = False

    def observe(
        self,
        data: Any,
        trajectories: Sequence[Trajectory],
        cards: Sequence[ScoreCard],
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Guard, measure and (on training batches) remedy ``data``; its prefixed metrics.

        ``meta`` is the generation batch's ``meta_info``: ``validate`` marks a
        validation batch (measured and guarded only), ``global_steps`` names the step.
        """
        meta = meta or {}
        image_tokens = self._image_tokens(data, trajectories)
        metrics = rollout_metrics(trajectories, cards, data.batch["response_mask"], image_tokens)
        data.non_tensor_batch[TOOL_COUNTS_KEY] = np.array([t.tool_calls for t in trajectories])
        spread = self.config.group_filter
        values = metric_values(cards, spread.metric)
        metrics.update(group_metrics(list(data.non_tensor_batch["uid"]), values, spread.min_std))
        if not meta.get("validate", False):
            metrics.update(self.alarm.update(metrics["tool_rate"], meta.get("global_steps")))
            metrics.update(apply_remedies(data, trajectories, cards, self.config))
        return {PREFIX + name: float(value) for name, value in metrics.items()}

    def _image_tokens(self, data: Any, trajectories: Sequence[Trajectory]) -> list[int] | None:
        """Each row's image tokens, checked by the guard when it is on; None without images."""
        if MM_KEY not in data.non_tensor_batch and not any(map(trajectory_images, trajectories)):
            return None
        if not self._guard_built:
            self._guard, self._guard_built = ModalityGuard.from_processor(self._processor()), True
        if self._guard is None:
            return None
        if self.config.modality_guard:
            return self._guard.check(data, trajectories)
        return self._guard.token_counts(data)


def logged_health(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The codedance health metrics among a logged step's ``metrics``, with short names."""
    return {
        key[len(LOGGED_PREFIX) :]: value
        for key, value in metrics.items()
        if key.startswith(LOGGED_PREFIX)
    }
