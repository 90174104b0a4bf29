"""Two remedies for RL runs that go wrong, both off by default (``training.health``).

Both take rows out of the policy loss by zeroing their ``response_mask``, the mask
verl's actor multiplies every loss term by (and token-mean divides by), after the
rewards were written. The rows stay in the batch, since verl's trainer joins the
rollout to its prompts row by row, and so their totals still count in the GRPO mean
and std of their group; their advantage is ``A * response_mask = 0``, and they add
nothing to the token count the loss is averaged over.

- **Over-turn masking** (``mask_over_turn``; Mini-o3): a rollout the turn cap cut off
  (``stop == "max_turns"``) is not penalised for running out of turns, so the policy
  is not taught to stop exploring early.
- **Group filtering** (``group_filter``; DAPO's dynamic sampling, PyVision-RL): a
  prompt group whose reward (``metric``: ``score``, the total, or a reward name or
  part) has a population std ``<= min_std`` carries no GRPO signal; its rows would
  only dilute the token-mean (and, with ``codedance_grpo``, train on BAT's turn term
  alone), so the whole group is dropped.

When the remedies would drop every row of a batch they drop none (a loss over zero
tokens is 0/0) and say so in a log line and the ``remedy/kept_all`` metric. A PPO
mini-batch made only of dropped rows still has no tokens: verl's FSDP engine skips
that update (its gradient norm is not finite), as it does for any such update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codedance.core.errors import ConfigError
from codedance.rewards.composition import ScoreCard
from codedance.runtime.types import Trajectory

if TYPE_CHECKING:
    from codedance.core.config import GroupFilterConfig, HealthConfig

__all__ = [
    "NO_SPREAD",
    "apply_remedies",
    "group_stds",
    "mask_rows",
    "metric_values",
    "over_turn_rows",
    "zero_std_rows",
]

NO_SPREAD = 1e-8  # float noise: identical rewards can give a std of ~1e-17
_log = logging.getLogger(__name__)


def over_turn_rows(trajectories: Sequence[Trajectory]) -> list[int]:
    """Rows whose rollout was cut by the turn cap."""
    return [row for row, trajectory in enumerate(trajectories) if trajectory.stop == "max_turns"]


def metric_values(cards: Sequence[ScoreCard], metric: str) -> list[float]:
    """Each row's ``metric``: ``score`` is the total, else a component or a part."""
    if metric == "score":
        return [card.total for card in cards]
    known = {key for card in cards for key in (*card.components, *card.parts)}
    if cards and metric not in known:
        raise ConfigError(
            f"training.health.group_filter.metric is {metric!r}, which no reward of this batch "
            f"reports (known: score, {', '.join(sorted(known))}). Fix: name one of them."
        )
    return [card.components.get(metric, card.parts.get(metric, 0.0)) for card in cards]


def group_stds(uids: Sequence[Any], values: Sequence[float]) -> dict[Any, tuple[list[int], float]]:
    """Per ``uid``: its rows and the population std of their ``values``."""
    rows: dict[Any, list[int]] = {}
    for row, uid in enumerate(uids):
        rows.setdefault(uid, []).append(row)
    out = {}
    for uid, members in rows.items():
        group = [values[row] for row in members]
        mean = sum(group) / len(group)
        out[uid] = (members, (sum((v - mean) ** 2 for v in group) / len(group)) ** 0.5)
    return out


def zero_std_rows(stds: dict[Any, tuple[list[int], float]], min_std: float) -> list[int]:
    """Rows of every group whose std is ``<= min_std`` (float noise included)."""
    return sorted(row for rows, std in stds.values() if std <= min_std + NO_SPREAD for row in rows)


def mask_rows(data: Any, rows: Sequence[int]) -> None:
    """Zero ``response_mask`` on ``rows``: no loss, no advantage, no tokens counted."""
    if rows:
        data.batch["response_mask"][list(rows)] = 0


def apply_remedies(
    data: Any, trajectories: Sequence[Trajectory], cards: Sequence[ScoreCard], config: HealthConfig
) -> dict[str, float]:
    """Mask the rows the enabled remedies drop; metrics of what they did (unprefixed)."""
    metrics: dict[str, float] = {}
    dropped: set[int] = set()
    if config.mask_over_turn:
        over = over_turn_rows(trajectories)
        metrics["remedy/over_turn_masked"] = float(len(over))
        dropped.update(over)
    if config.group_filter.enabled:
        filtered = _filtered(data, cards, config.group_filter)
        metrics["remedy/group_filtered"] = float(len(filtered))
        dropped.update(filtered)
    if not metrics:
        return metrics
    kept_all = bool(dropped) and len(dropped) == len(trajectories)
    metrics["remedy/kept_all"] = float(kept_all)
    if kept_all:
        _log.warning(
            "codedance training health: the enabled remedies would drop all %d rollouts of "
            "this batch (a loss over no tokens), so none were dropped this step.",
            len(trajectories),
        )
    else:
        mask_rows(data, sorted(dropped))
    return metrics


def _filtered(data: Any, cards: Sequence[ScoreCard], config: GroupFilterConfig) -> list[int]:
    values = metric_values(cards, config.metric)
    return zero_std_rows(group_stds(list(data.non_tensor_batch["uid"]), values), config.min_std)
