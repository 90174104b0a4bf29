"""Reward params are checked against each component before a run: names, types, file:line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from codedance import hookimpl
from codedance.core.config import check_names
from codedance.core.errors import ConfigError, PluginLoadWarning
from codedance.core.params import check_params
from codedance.rewards.base import RewardComponent
from codedance.rewards.composition import RewardComposition

if TYPE_CHECKING:
    from codedance.runtime.types import Trajectory


def short_answer(trajectory: Trajectory, limit: int = 10, unit: str | None = None) -> float:
    """A function reward: its signature declares the params (annotations are strings here)."""
    return float(len(trajectory.answer or "") <= limit)


def needs_target(trajectory: Trajectory, target: float) -> float:
    return 0.0


class Scaled(RewardComponent):
    name = "scaled"
    defaults: ClassVar[dict[str, Any]] = {"factor": 1.0, "strict": False, "labels": ["a"]}

    def score(self, trajectory: Trajectory) -> float:
        return 0.0


class Rewards:
    @hookimpl
    def register_rewards(self, register):
        register(short_answer)
        register(needs_target)
        register(Scaled)


def _messages(obj, params) -> list[str]:
    return [message for _, message in check_params("r", obj, params)]


def test_function_params_follow_their_annotations():
    assert _messages(short_answer, {"limit": 3, "unit": None}) == []
    (bad,) = _messages(short_answer, {"limit": "ten"})
    assert bad == "'ten' is not an int (reward 'r' takes limit: int = 10)"
    (flag,) = _messages(short_answer, {"limit": True})
    assert "True is not an int" in flag
    assert _messages(needs_target, {}) == ["reward 'r' needs params.target (target: number)"]


def test_class_params_follow_their_defaults_types():
    assert _messages(Scaled, {"factor": 2, "strict": True, "labels": ["x", "y"]}) == []
    assert _messages(Scaled, {"factor": "2"}) == [
        "'2' is not a number (reward 'r' takes factor: number = 1.0)"
    ]
    assert "1 is not a bool" in _messages(Scaled, {"strict": 1})[0]
    (unknown,) = _messages(Scaled, {"factr": 2})
    assert unknown.startswith("reward 'r' has no parameter 'factr'; it takes factor: number = 1.0")


def test_config_errors_name_the_file_and_line(register_plugin, codedance_config):
    registry = register_plugin(Rewards(), name="rewards-test")
    config = codedance_config(
        "rewards:\n  - name: short_answer\n    params:\n      limit: ten\n  - name: scaled\n"
    )
    with pytest.raises(ConfigError) as caught:
        RewardComposition.from_config(config.rewards, registry, where=config.where)
    assert str(caught.value).startswith(
        f"{config.where('rewards', 0, 'params', 'limit')}: rewards.0.params.limit: "
        "'ten' is not an int (reward 'short_answer' takes limit: int = 10)"
    )
    assert "config.yaml:4" in str(caught.value)
    (problem,) = check_names(config, registry)  # what `codedance doctor` shows
    assert "config.yaml:4: rewards.0.params.limit: 'ten' is not an int" in str(problem)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (type("NoScore", (), {"defaults": {}}), "without score_group/score"),
        (lambda: 0.0, "does not take a trajectory"),
        (42, "does not take a trajectory"),
    ],
)
def test_registration_refuses_what_cannot_be_a_reward(register_plugin, obj, message):
    class Bad:
        @hookimpl
        def register_rewards(self, register):
            register(obj, name="bad_reward")

    registry = register_plugin(Bad(), name="bad")
    with pytest.warns(PluginLoadWarning, match=message):
        assert "bad_reward" not in registry.names("reward")


def test_score_command_reports_bad_params_without_a_traceback(
    register_plugin, codedance_cli, tmp_path
):
    register_plugin(Rewards(), name="rewards-test")
    config = tmp_path / "bad.yaml"
    config.write_text("rewards:\n  - name: scaled\n    params: {factor: big}\n")
    (tmp_path / "t.jsonl").write_text("")
    result = codedance_cli("--config", str(config), "score", str(tmp_path / "t.jsonl"))
    assert result.exit_code == 1
    assert f"{config}:3: rewards.0.params.factor: 'big' is not a number" in result.output
    assert "Traceback" not in result.output
