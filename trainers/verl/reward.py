"""codedance's reward composition on verl: whole prompt groups scored into token-level rewards.

BAT, CodeDance's reward, needs the group: its difficulty factor comes from the
accuracy of all rollouts of the same prompt. verl marks those rollouts with the same
``uid`` (``non_tensor_batch["uid"]``), so :class:`CodedanceRewardManager` groups the
batch by ``uid``, rebuilds each rollout's :class:`~codedance.runtime.types.Trajectory`
from the agent loop's ``codedance_trajectory`` extra field and scores every group
with one :meth:`~codedance.rewards.composition.RewardComposition.score_group` call,
the same object evaluation uses (registry.yaml's ``rewards``).

**Token-level encoding** (``reward_tensor``, which becomes verl's ``rm_scores``,
then ``token_level_scores`` and ``token_level_rewards``). A row's assistant turns
are the maximal runs of ``response_mask == 1``: the codedance agent loop gives every
generated token mask 1 and every observation token mask 0, so run k is exactly the
generated tokens of turn k. In each row:

- the **first token of every non-final turn k** holds c_k, the turn's value from
  :attr:`ScoreCard.turn_values` (BAT's c_k times BAT's weight; 0 for a turn that ran
  no code, e.g. one the protocol had to explain);
- the **last valid response token** (last ``attention_mask`` 1, where verl puts a
  sequence reward) holds ``total - sum(c_k)``, so that the row sums to the
  trajectory's total: verl's metrics, validation scores and plain ``grpo`` read
  ``sum(-1)`` and see exactly the composition's total;
- every other token is 0.

The final turn never carries a turn value: the release sets the final turn's term to
0 (CODEDANCE.md §2), also when it made a call (turn limit reached, or its observation
did not fit). Hence the last valid token, which lies in the final turn or in the
observation after it, never shares a token with a turn value; a one-token final turn
holds only ``total - sum(c_k)``, and a one-token non-final turn only its c_k.
:mod:`codedance.trainers.verl.advantage` decodes this from ``token_level_rewards``
and ``response_mask`` alone, which is all verl gives an estimator. Turn positions come
from the agent loop's ``turn_spans`` when the batch has them (checked against the
runs), else from the runs.

**How it runs on stock verl 0.9.1.** Both of verl 0.9.1's trainers score rollouts one
at a time (``reward.reward_manager.name`` picks a ``run_single`` manager of
``verl.experimental.reward_loop``), where no group exists. The one place that sees a
whole generated batch before ``rm_scores`` is read is the rollout's
``AgentLoopManager``, which verl lets a config replace
(``actor_rollout_ref.rollout.agent.agent_loop_manager_class``).
:class:`CodedanceAgentLoopManager` is verl's own manager plus one step,
:func:`attach_rewards`: it scores the generated batch as :class:`CodedanceRewardManager`
does and attaches ``rm_scores`` and the extra info where verl's agent loop puts
per-sample rewards, so verl's ``extract_reward`` reads them. It runs in the legacy
trainer (``trainer.use_v1=false``); the v1 trainer expects its manager to write to
TransferQueue. :class:`CodedanceRewardManager` is also registered as ``codedance`` in
``verl.workers.reward_manager`` (verl's batch reward-manager interface), a registry
verl 0.9.1's trainers no longer call.

**Output** of the manager (``return_dict=True``): ``reward_tensor`` as above, and
``reward_extra_info``, one list per key, one entry per row: ``score`` (the total),
each component under its name (``accuracy``, ``format``, ``bat``), each sub-score as
``component.part`` (``bat.group_accuracy``, ``bat.r_seq``, ...; 0 where a component
did not report it for a row), and ``acc`` (the ``accuracy`` component, verl's headline
validation metric) when one is configured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from codedance.core.errors import ConfigError, MissingDependencyError
from codedance.rewards.composition import RewardComposition, ScoreCard
from codedance.runtime.types import Trajectory

if TYPE_CHECKING:
    from codedance.core.config import Config

try:
    import numpy as np
    import torch
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import AgentLoopManager
    from verl.utils.ray_utils import auto_await
    from verl.workers.reward_manager import register
    from verl.workers.reward_manager.abstract import AbstractRewardManager
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError.for_extra(
        exc.name or "verl", "train", "codedance's verl reward manager"
    ) from None

__all__ = [
    "MANAGER_NAME",
    "SPANS_KEY",
    "TRAJECTORY_KEY",
    "UID_KEY",
    "CodedanceAgentLoopManager",
    "CodedanceRewardManager",
    "attach_rewards",
    "composition_from_config",
    "extra_info",
    "reward_tensor",
    "score_batch",
    "trajectories_of",
    "turn_runs",
    "turn_starts",
]

MANAGER_NAME = "codedance"
UID_KEY = "uid"
TRAJECTORY_KEY = "codedance_trajectory"
SPANS_KEY = "turn_spans"

Run = tuple[int, int]  # [start, end) of one turn's generated tokens in the response


def trajectories_of(data: DataProto) -> list[Trajectory]:
    """Each row's trajectory, rebuilt from the agent loop's ``codedance_trajectory``."""
    column = data.non_tensor_batch.get(TRAJECTORY_KEY)
    if column is None:
        raise ConfigError(
            f"the batch has no {TRAJECTORY_KEY!r} column (it has: "
            f"{', '.join(sorted(data.non_tensor_batch)) or 'none'}); the codedance reward "
            f"manager scores the trajectories the codedance agent loop records. Fix: roll "
            f"out with actor_rollout_ref.rollout.agent.default_agent_loop=codedance."
        )
    return [_trajectory(row, index) for index, row in enumerate(column)]


def _trajectory(row: Any, index: int) -> Trajectory:
    if isinstance(row, str):
        row = json.loads(row)
    if not isinstance(row, Mapping):
        raise ConfigError(
            f"{TRAJECTORY_KEY}[{index}] is a {type(row).__name__}, not a trajectory dict "
            f"(Trajectory.to_json()). Fix: the agent loop must put Trajectory.to_json() "
            f"into extra_fields[{TRAJECTORY_KEY!r}]."
        )
    return Trajectory.from_json(row)


def score_batch(
    data: DataProto, composition: RewardComposition
) -> tuple[list[Trajectory], list[ScoreCard]]:
    """Every row's trajectory and score card, each ``uid`` group scored together."""
    if UID_KEY not in data.non_tensor_batch:
        raise ConfigError(
            f"the batch has no {UID_KEY!r} column, so the rollouts of a prompt cannot be "
            f"grouped. Fix: score batches from verl's trainer, which sets a uid per prompt."
        )
    trajectories = trajectories_of(data)
    groups: dict[Any, list[int]] = {}
    for row, uid in enumerate(data.non_tensor_batch[UID_KEY]):
        groups.setdefault(uid, []).append(row)
    cards: dict[int, ScoreCard] = {}
    for rows in groups.values():
        scored = composition.score_group([trajectories[row] for row in rows])
        cards.update(zip(rows, scored, strict=True))
    return trajectories, [cards[row] for row in range(len(trajectories))]


def turn_runs(response_mask: torch.Tensor) -> list[list[Run]]:
    """Per row, the ``[start, end)`` of every maximal run of ``response_mask != 0``."""
    mask = (response_mask != 0).to(torch.int8)
    edges = torch.nn.functional.pad(mask, (1, 1)).diff(dim=-1)
    starts, ends = (edges == 1).nonzero().tolist(), (edges == -1).nonzero().tolist()
    runs: list[list[Run]] = [[] for _ in range(mask.shape[0])]
    for (row, start), (_, end) in zip(starts, ends, strict=True):
        runs[row].append((start, end))
    return runs


def turn_starts(row: int, runs: Sequence[Run], spans: Any, turns: int) -> list[Run]:
    """``(turn index, first token)`` of each turn that generated tokens, in order.

    ``spans`` is the row's ``turn_spans`` (dicts with ``start``/``end`` or pairs) or
    None; either way the result must match ``runs``, since the estimator reads runs.
    """
    if spans is None:
        pairs = [(turn, start) for turn, (start, _) in enumerate(runs)]
        counted, source = len(runs), "runs of response_mask"
    else:
        bounds = [_span(span, row) for span in spans]
        pairs = [(turn, start) for turn, (start, end) in enumerate(bounds) if end > start]
        counted, source = len(bounds), SPANS_KEY
    if counted != turns:
        raise ConfigError(
            f"rollout {row} has {turns} turns but {counted} {source}. Fix: the agent loop "
            f"records one {SPANS_KEY!r} entry per assistant turn."
        )
    if [start for _, start in pairs] != [start for start, _ in runs]:
        raise ConfigError(
            f"rollout {row}: its turns start at {[start for _, start in pairs]} but its runs "
            f"of response_mask == 1 start at {[start for start, _ in runs]}; the advantage "
            f"estimator reads turns from response_mask. Fix: the agent loop must give every "
            f"generated token mask 1 and every observation token mask 0."
        )
    return pairs


def _span(span: Any, row: int) -> Run:
    """``[start, end)`` of an entry: the agent loop's dict or a ``[start, end]`` pair."""
    bounds = (span["start"], span["end"]) if isinstance(span, Mapping) else tuple(span)
    start, end = (int(bound) for bound in bounds)
    if not 0 <= start <= end:
        raise ConfigError(
            f"turn span {span!r} of rollout {row} is not a [start, end) range with "
            f"0 <= start <= end. Fix: the agent loop's {SPANS_KEY!r} must be response offsets."
        )
    return start, end


def reward_tensor(
    data: DataProto, trajectories: Sequence[Trajectory], cards: Sequence[ScoreCard]
) -> torch.Tensor:
    """The token-level rewards of the module docs: c_k on turn starts, the rest last.

    A row without response tokens keeps its total at position 0, so that
    ``reward_tensor.sum(-1)`` still is the total.
    """
    if "response_mask" not in data.batch:
        raise ConfigError(
            "the batch has no 'response_mask', so its assistant turns cannot be told apart. "
            "Fix: score the output of verl's agent loop, which sets it."
        )
    prompt_length = data.batch["prompts"].shape[-1]
    valid = data.batch["attention_mask"][:, prompt_length:].sum(dim=-1)
    last = (valid - 1).clamp(min=0).tolist()
    runs = turn_runs(data.batch["response_mask"])
    spans = data.non_tensor_batch.get(SPANS_KEY)
    scores = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
    for row, (trajectory, card) in enumerate(zip(trajectories, cards, strict=True)):
        turns = len(trajectory.turns)
        values = card.turn_values or [0.0] * turns
        starts = turn_starts(row, runs[row], None if spans is None else spans[row], turns)
        credited = 0.0
        for turn, start in starts[:-1]:  # the final turn's term is 0
            scores[row, start] = values[turn]
            credited += values[turn]
        scores[row, int(last[row])] += card.total - credited
    return scores


def extra_info(cards: Sequence[ScoreCard]) -> dict[str, list[Any]]:
    """verl's ``reward_extra_info``: one list per key, one entry per row (module docs)."""
    names = _ordered(key for card in cards for key in card.components)
    parts = _ordered(key for card in cards for key in card.parts)
    info: dict[str, list[Any]] = {"score": [card.total for card in cards]}
    for key in names:
        info[key] = [card.components.get(key, 0.0) for card in cards]
    for key in parts:
        info[key] = [card.parts.get(key, 0.0) for card in cards]
    if "accuracy" in names:
        info["acc"] = list(info["accuracy"])
    return info


def _ordered(keys: Any) -> list[str]:
    return list(dict.fromkeys(keys))


def composition_from_config(config_path: str | None = None) -> RewardComposition:
    """registry.yaml's ``rewards`` (+ ``config_path``, or $CODEDANCE_CONFIG) as a composition.

    The configuration and its plugins come from the same sources, as the agent loop
    loads them, so reward plugins named in the file are found.
    """
    return _from_config(config_path)[0]


def _from_config(config_path: str | None = None) -> tuple[RewardComposition, Config]:
    """The composition and the whole configuration it was built from."""
    from codedance.core.config import validate_sources
    from codedance.core.discovery import load_registry, pinned_registry
    from codedance.core.sources import load_sources

    sources = load_sources(config_path)
    config = validate_sources(sources)
    if not config.rewards:
        raise ConfigError(
            "the configuration lists no rewards, so every rollout would score 0. "
            "Fix: add entries under `rewards:` in registry.yaml (e.g. accuracy, format, bat)."
        )
    registry = pinned_registry() or load_registry(sources.plugin_specs())
    return RewardComposition.from_config(config.rewards, registry), config


@register(MANAGER_NAME)
class CodedanceRewardManager(AbstractRewardManager):
    """verl batch reward manager ``codedance``: the reward composition over ``uid`` groups.

    :param composition: the rewards to use; by default registry.yaml's ``rewards``
        with ``config_path`` (or $CODEDANCE_CONFIG, which ``codedance train`` sets in
        every Ray worker) on top.
    ``tokenizer``, ``num_examine``, ``compute_score`` and ``reward_fn_key`` are verl's
    manager arguments; they are accepted and unused, because the reward is computed
    from the recorded trajectories, not from decoded text.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        num_examine: int = 0,
        compute_score: Any = None,
        reward_fn_key: str = "data_source",
        *,
        composition: RewardComposition | None = None,
        config_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.tokenizer, self.num_examine, self.reward_fn_key = tokenizer, num_examine, reward_fn_key
        self.composition = composition or composition_from_config(config_path)

    def __call__(self, data: DataProto, return_dict: bool = False) -> torch.Tensor | dict[str, Any]:
        """Score ``data``; ``rm_scores`` already in the batch are ignored (no group info)."""
        trajectories, cards = score_batch(data, self.composition)
        tensor = reward_tensor(data, trajectories, cards)
        if not return_dict:
            return tensor
        return {"reward_tensor": tensor, "reward_extra_info": extra_info(cards)}


def attach_rewards(
    output: DataProto, prompts: DataProto, composition: RewardComposition
) -> DataProto:
    """``output`` with ``rm_scores`` and the extra info, laid out as verl's agent loop does.

    ``prompts`` is the batch the rollout was made for (same rows, same order); its
    ``uid`` is used when the agent loop's output does not carry it.
    """
    _attach(output, prompts, composition)
    return output


def _attach(
    output: DataProto, prompts: DataProto, composition: RewardComposition
) -> tuple[list[Trajectory], list[ScoreCard]]:
    """:func:`attach_rewards`, returning the trajectories and score cards it computed."""
    if UID_KEY not in output.non_tensor_batch and UID_KEY in prompts.non_tensor_batch:
        output.non_tensor_batch[UID_KEY] = prompts.non_tensor_batch[UID_KEY]
    trajectories, cards = score_batch(output, composition)
    output.batch["rm_scores"] = reward_tensor(output, trajectories, cards)
    info = extra_info(cards)
    output.non_tensor_batch.update({key: np.array(values) for key, values in info.items()})
    output.meta_info["reward_extra_keys"] = list(info)
    return trajectories, cards


class CodedanceAgentLoopManager(AgentLoopManager):
    """verl's ``AgentLoopManager`` that scores, guards and measures each generated batch.

    Named by ``actor_rollout_ref.rollout.agent.agent_loop_manager_class``; verl's legacy
    trainer builds it with ``create`` and calls :meth:`generate_sequences` on every
    training and validation batch. verl's per-sample reward workers are not handed to
    the agent-loop workers (``reward_loop_worker_handles`` is dropped), so rollouts
    come back unscored and the whole batch is scored here with registry.yaml's
    ``rewards`` and $CODEDANCE_CONFIG (which ``codedance train`` sets in every Ray
    worker, verl's TaskRunner actor included). Then ``training.health``'s
    :class:`~codedance.trainers.verl.health.HealthMonitor` checks the batch's images
    (the modality guard), adds the health metrics to ``meta_info["timing"]`` and, on
    training batches, steps the tool-collapse alarm and applies the remedies.
    """

    def __init__(
        self,
        config: Any,
        llm_client: Any,
        teacher_client: Any = None,
        reward_loop_worker_handles: Any = None,
    ) -> None:
        # None is verl's own default, despite its annotation: no per-sample scoring.
        super().__init__(config, llm_client, teacher_client, None)  # type: ignore[arg-type]
        from codedance.trainers.verl.health import HealthMonitor

        self.composition, settings = _from_config()
        self.health = HealthMonitor(settings.training.health, self._policy_processor)

    @auto_await  # type: ignore[untyped-decorator]
    async def generate_sequences(self, prompts: DataProto) -> DataProto:
        """verl's rollout of ``prompts``, :func:`attach_rewards`, then the health monitor."""
        output: DataProto = await super().generate_sequences(prompts)
        trajectories, cards = _attach(output, prompts, self.composition)
        metrics = self.health.observe(output, trajectories, cards, prompts.meta_info)
        output.meta_info.setdefault("timing", {}).update(metrics)
        return output

    def _policy_processor(self) -> Any:
        """The policy's processor, loaded as verl's agent-loop workers load it."""
        from verl.utils.config import omega_conf_to_dataclass

        return omega_conf_to_dataclass(self.config.actor_rollout_ref.model).processor
