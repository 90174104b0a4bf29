"""The reward composition: total = sum(weight * component), from registry.yaml's ``rewards``.

:class:`RewardComposition` builds each configured component by name from the
registry (built-in or third-party alike), scores groups of trajectories, and
returns a :class:`ScoreCard` per trajectory with the total, each component's
value, every sub-score (``component.part``) and the weighted per-turn values.
Evaluation and training use this same object.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codedance.core.errors import ConfigError
from codedance.rewards.base import RewardComponent, RewardResult, as_component
from codedance.runtime.types import Trajectory

if TYPE_CHECKING:
    from codedance.core.config import RewardConfig
    from codedance.core.registry import Registry

__all__ = [
    "RewardComposition",
    "ScoreCard",
    "composition_scorer",
    "group_by_task",
    "param_problems",
]


@dataclass
class ScoreCard:
    """A trajectory's rewards: the weighted total and everything that went into it."""

    total: float
    components: dict[str, float] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    turn_values: list[float] | None = None

    def as_rewards(self) -> dict[str, float]:
        """The flat mapping stored in ``Trajectory.rewards``."""
        return {"total": self.total, **self.components, **self.parts}


@dataclass(frozen=True)
class _Weighted:
    name: str
    weight: float
    component: RewardComponent


class RewardComposition:
    """Named components with weights; scores groups of trajectories."""

    def __init__(self, components: Sequence[tuple[str, float, RewardComponent]]) -> None:
        self.components = [_Weighted(n, w, c) for n, w, c in components]

    @classmethod
    def from_config(
        cls,
        rewards: Sequence[RewardConfig],
        registry: Registry,
        *,
        where: Callable[..., object] | None = None,
    ) -> RewardComposition:
        """Build every configured component; unknown names and bad params are ConfigErrors.

        Params are checked against each component's declared parameters and their
        types first, all at once; ``where`` (``Config.where``) adds each one's file:line.
        """
        problems = [
            problem
            for index, entry in enumerate(rewards)
            for problem in param_problems(index, entry, registry.get("reward", entry.name), where)
        ]
        if problems:
            raise ConfigError("\n".join(problems))
        built = []
        for index, entry in enumerate(rewards):
            component_class = as_component(registry.get("reward", entry.name), entry.name)
            try:
                component = component_class(**entry.params)
            except ConfigError as exc:
                raise ConfigError(f"rewards.{index} ({entry.name}): {exc}") from None
            built.append((entry.name, entry.weight, component))
        return cls(built)

    def explain(self, trajectories: Sequence[Trajectory]) -> list[str]:
        """Lines saying how the mean total came about: each weight, mean and meaning.

        A perfect run can score below 1 (a penalty-only component at 0, BAT below 0
        on easy prompts); these lines say why, from each component's docstring.
        """
        if not trajectories:
            return []
        n = len(trajectories)
        means = {
            w.name: sum(t.rewards.get(w.name, 0.0) for t in trajectories) / n
            for w in self.components
        }
        total = sum(t.rewards.get("total", 0.0) for t in trajectories) / n
        terms = " + ".join(
            f"{w.weight:g} x {w.name} ({means[w.name]:.3f})" for w in self.components
        )
        lines = [f"mean_reward {total:.3f} = {terms}"]
        for weighted in self.components:
            doc = inspect.getdoc(type(weighted.component)) or ""
            meaning = " ".join(doc.split("\n\n")[0].replace("``", "`").split()) or "no description"
            lines.append(f"  {weighted.name}: {meaning}")
        return lines

    def score_group(self, group: Sequence[Trajectory]) -> list[ScoreCard]:
        """A score card per trajectory of ``group`` (all rollouts of one prompt)."""
        cards = [ScoreCard(0.0) for _ in group]
        for weighted in self.components:
            results = weighted.component.score_group(group)
            if len(results) != len(group):
                raise ConfigError(
                    f"reward {weighted.name!r} returned {len(results)} results for a group of "
                    f"{len(group)}; score_group must return one per trajectory"
                )
            for card, result, trajectory in zip(cards, results, group, strict=True):
                _add(card, weighted, result, len(trajectory.turns))
        return cards

    def score_all(self, trajectories: Iterable[Trajectory]) -> list[ScoreCard]:
        """Score trajectories grouped by task id; cards come back in the input order."""
        ordered = list(trajectories)
        cards: dict[int, ScoreCard] = {}
        for indices in group_by_task(ordered).values():
            group = [ordered[i] for i in indices]
            for i, card in zip(indices, self.score_group(group), strict=True):
                cards[i] = card
        return [cards[i] for i in range(len(ordered))]


def param_problems(
    index: int, entry: RewardConfig, obj: object, where: Callable[..., object] | None = None
) -> list[str]:
    """One message per bad param of ``rewards[index]``, each with its key path and fix."""
    from codedance.core.params import check_params

    messages = []
    for key, problem in check_params(entry.name, obj, entry.params):
        path = ("rewards", index, "params", *([key] if key else []))
        place = ".".join(map(str, path))
        origin = f"{where(*path)}: " if where is not None else ""
        messages.append(f"{origin}{place}: {problem}. Fix: correct it in the config's rewards.")
    return messages


def _add(card: ScoreCard, weighted: _Weighted, result: RewardResult, turns: int) -> None:
    card.components[weighted.name] = result.value
    card.total += weighted.weight * result.value
    card.parts.update({f"{weighted.name}.{k}": v for k, v in result.parts.items()})
    if result.turn_values is not None:
        if len(result.turn_values) != turns:
            raise ConfigError(
                f"reward {weighted.name!r} gave {len(result.turn_values)} turn values for "
                f"{turns} turns"
            )
        current = card.turn_values or [0.0] * turns
        card.turn_values = [
            c + weighted.weight * v for c, v in zip(current, result.turn_values, strict=True)
        ]


def group_by_task(trajectories: Sequence[Trajectory]) -> dict[str, list[int]]:
    """Indices of the trajectories of each task id (a task's rollouts form its group)."""
    groups: dict[str, list[int]] = {}
    for index, trajectory in enumerate(trajectories):
        groups.setdefault(trajectory.task.id, []).append(index)
    return groups


def composition_scorer(rewards: RewardComposition) -> Callable[[Trajectory], None]:
    """Score each trajectory alone (its group of one) and store the score card."""

    def score(trajectory: Trajectory) -> None:
        (card,) = rewards.score_group([trajectory])
        trajectory.rewards = card.as_rewards()

    return score
