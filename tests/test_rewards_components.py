"""Reward components and their composition, checked against CODEDANCE.md's worked numbers."""

from __future__ import annotations

import json
import types

import pytest

from codedance import hookimpl
from codedance.core.config import RewardConfig
from codedance.core.errors import ConfigError
from codedance.rewards.base import RewardComponent, RewardResult
from codedance.rewards.bat import BATReward, difficulty, sequence_reward, turn_returns
from codedance.rewards.components import AccuracyReward, FormatReward
from codedance.rewards.composition import RewardComposition
from codedance.runtime.types import Message, Parsed, Task, Trajectory, Turn

ERROR = {"type": "ValueError", "message": "bad", "traceback": ""}


def trajectory(
    answer: str = "4",
    truth: str = "4",
    calls: tuple[bool, ...] = (),
    task_id: str = "t",
    answer_type: str = "number",
) -> Trajectory:
    """A trajectory with one turn per call (True = the call failed), then the answer turn."""
    turns = [
        Turn(
            i,
            "<code>...</code>",
            Parsed(code="x"),
            execution={"error": ERROR if bad else None, "stdout": "1"},
        )
        for i, bad in enumerate(calls)
    ]
    final = f"<think>so</think><answer>{answer}</answer>"
    turns.append(Turn(len(calls), final, Parsed(answer=answer)))
    task = Task(task_id, "q", answer=truth, answer_type=answer_type)
    return Trajectory(task, "", Message.text("user", "q"), turns=turns, answer=answer)


def group(
    correct: int, wrong: int, calls: tuple[bool, ...] = (False, False, True)
) -> list[Trajectory]:
    return [trajectory("4", calls=calls) for _ in range(correct)] + [
        trajectory("5", calls=calls) for _ in range(wrong)
    ]


@pytest.mark.parametrize(
    ("mu_acc", "expected"),
    [
        (0.0, 0.782),
        (0.125, 0.753),
        (0.25, 0.681),
        (0.5, 0.300),
        (0.625, 0.069),
        (0.75, -0.081),
        (0.875, -0.153),
        (1.0, -0.182),
    ],
)
def test_difficulty_matches_the_worked_table(mu_acc, expected):
    assert round(difficulty(mu_acc), 3) == expected


def test_difficulty_turns_negative_above_two_thirds():
    assert difficulty(0.67) > 0 > difficulty(0.68)


@pytest.mark.parametrize(
    ("mu_acc", "plain", "correct", "wrong"),
    [(0.0, 0.521, None, 0.261), (0.5, 0.200, 0.300, 0.100), (1.0, -0.121, -0.182, None)],
)
def test_sequence_reward_for_two_of_three_calls(mu_acc, plain, correct, wrong):
    d = difficulty(mu_acc)
    assert round(sequence_reward(d, 2, 3), 3) == plain
    if correct is not None:
        assert round(sequence_reward(d, 2, 3, 1.5), 3) == correct
    if wrong is not None:
        assert round(sequence_reward(d, 2, 3, 0.5), 3) == wrong


def test_no_calls_means_no_sequence_reward():
    assert sequence_reward(0.7, 0, 0) == 0.0


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ((True, False, False), [-0.5, 0.0, 0.0, 0.0]),
        ((False, False, True), [-0.02, -0.1, -0.5, 0.0]),
        ((True, True, False), [-0.6, -0.5, 0.0, 0.0]),
        ((True, True, True), [-0.62, -0.6, -0.5, 0.0]),
        ((), [0.0]),
    ],
)
def test_turn_returns_match_the_worked_examples(failures, expected):
    assert turn_returns(failures) == pytest.approx(expected)


def test_bat_on_a_mixed_group_uses_the_group_accuracy():
    results = BATReward().score_group(group(correct=1, wrong=1))
    for result in results:
        assert result.parts["group_accuracy"] == 0.5
        assert result.value == pytest.approx(0.3 * 2 / 3)
        assert result.turn_values == pytest.approx([-0.02, -0.1, -0.5, 0.0])


def test_bat_weighted_variant_rewards_correct_answers_more():
    correct, wrong = BATReward(variant="weighted").score_group(group(correct=1, wrong=1))
    assert round(correct.value, 3) == 0.300
    assert round(wrong.value, 3) == 0.100


def test_bat_weighted_variant_uses_math_weights_for_math_tasks():
    math = [
        trajectory("4", calls=(False,), answer_type="math"),
        trajectory("5", calls=(False,), answer_type="math"),
    ]
    correct, wrong = BATReward(variant="weighted").score_group(math)
    assert correct.value == pytest.approx(0.3 * 2.0)
    assert wrong.value == pytest.approx(0.3 * 1.0)


def test_bat_all_correct_discourages_calls_and_none_correct_encourages_them():
    (easy,) = BATReward().score_group([trajectory("4", calls=(False,))])
    (hard,) = BATReward().score_group([trajectory("5", calls=(False,))])
    assert easy.value == pytest.approx(difficulty(1.0))
    assert easy.value < 0
    assert hard.value == pytest.approx(difficulty(0.0))
    assert hard.value > 0


def test_bat_without_calls_is_zero_and_with_only_failures_only_penalises_turns():
    (silent,) = BATReward().score_group([trajectory()])
    assert (silent.value, silent.turn_values) == (0.0, [0.0])
    (failing,) = BATReward().score_group([trajectory("5", calls=(True, True, True))])
    assert failing.value == 0.0
    assert failing.turn_values == pytest.approx([-0.62, -0.6, -0.5, 0.0])
    (with_turn,) = BATReward(turn_in_value=True).score_group([trajectory("5", calls=(True,))])
    assert with_turn.value == pytest.approx(-0.5)


def test_bat_can_count_silent_runs_as_failures_like_the_release():
    silent = trajectory("5", calls=(False,))
    silent.turns[0].execution = {"error": None, "stdout": "", "images": []}
    (lenient,) = BATReward().score_group([silent])
    (strict,) = BATReward(no_output_fails=True).score_group([silent])
    assert lenient.parts["successful_calls"] == 1.0
    assert strict.parts["successful_calls"] == 0.0


def test_bat_rejects_an_unknown_variant_and_parameter():
    with pytest.raises(ConfigError, match="variant 'paper'"):
        BATReward(variant="paper")
    with pytest.raises(ConfigError, match="no parameter"):
        BATReward(gama=4)


def test_accuracy_scores_by_answer_type_and_marks_unknown_answers():
    assert AccuracyReward().score(trajectory("4.0", "4")).value == 1.0
    assert AccuracyReward().score(trajectory("five", "4")).value == 0.0
    unknown = trajectory()
    unknown.task.answer = None
    assert AccuracyReward().score(unknown).parts == {"unscored": 1.0}
    assert AccuracyReward().score(trajectory("4" * 1000, "4")).value == 0.0


def test_accuracy_compares_an_unreadable_reference_as_text_instead_of_raising():
    """A 'number' reference that is no number (a dataset bug) must not end a run."""
    same = AccuracyReward().score(trajectory("Not Applicable", "Not Applicable"))
    assert same.value == 1.0
    assert same.parts == {"correct": 1.0, "reference_as_text": 1.0}
    assert AccuracyReward().score(trajectory("4", "Not Applicable")).value == 0.0


def test_format_checks_each_rule():
    assert FormatReward().score(trajectory()).value == 0.0
    trailing = trajectory()
    trailing.turns[-1].assistant += " and more"
    unanswered = trajectory()
    unanswered.stop = "max_turns"
    malformed = trajectory(calls=(False,))
    malformed.turns[0].parsed = Parsed(problem="unclosed")
    for bad, check in [
        (trailing, "clean_final_turn"),
        (unanswered, "answered"),
        (malformed, "no_malformed_turns"),
    ]:
        result = FormatReward().score(bad)
        assert result.value == -1.0
        assert result.parts[check] == 0.0


def test_full_release_reward_matches_the_worked_totals(codedance_registry):
    """accuracy 1.0 + format 0.2 + bat (weighted) 1.0, the release's general-data recipe."""
    composition = RewardComposition.from_config(
        [
            RewardConfig(name="accuracy", weight=1.0),
            RewardConfig(name="format", weight=0.2),
            RewardConfig(name="bat", weight=1.0, params={"variant": "weighted"}),
        ],
        codedance_registry,
    )
    correct, wrong = composition.score_group(group(correct=1, wrong=1))
    assert round(correct.total, 2) == 1.30
    assert round(wrong.total, 2) == 0.10
    (no_tools,) = composition.score_group([trajectory("4")])
    assert no_tools.total == 1.0
    (easy,) = composition.score_group([trajectory("4", calls=(False, False, True))])
    assert round(easy.total, 3) == 0.818
    (hard,) = composition.score_group([trajectory("5", calls=(False, False, True))])
    assert round(hard.total, 3) == 0.261
    assert correct.parts["bat.group_accuracy"] == 0.5
    assert correct.turn_values == pytest.approx([-0.02, -0.1, -0.5, 0.0])


def test_score_all_groups_rollouts_by_task(codedance_registry):
    composition = RewardComposition.from_config([RewardConfig(name="bat")], codedance_registry)
    mixed = [
        trajectory("4", calls=(False,), task_id="a"),
        trajectory("5", calls=(False,), task_id="b"),
        trajectory("5", calls=(False,), task_id="a"),
    ]
    cards = composition.score_all(mixed)
    assert [c.parts["bat.group_accuracy"] for c in cards] == [0.5, 0.0, 0.5]


def reward_plugin() -> types.SimpleNamespace:
    def brevity(trajectory: Trajectory, limit: int = 2) -> float:
        """1 when the trajectory used at most ``limit`` turns."""
        return 1.0 if len(trajectory.turns) <= limit else 0.0

    class Tools(RewardComponent):
        name = "tools_used"

        def score(self, trajectory: Trajectory) -> RewardResult:
            return RewardResult(float(trajectory.tool_calls), {"n": float(trajectory.tool_calls)})

    @hookimpl
    def register_rewards(register):  # type: ignore[no-untyped-def]
        register(brevity)
        register(Tools)

    return types.SimpleNamespace(register_rewards=register_rewards, __name__="my_rewards")


def test_third_party_rewards_compose_with_the_built_ins(register_plugin):
    registry = register_plugin(reward_plugin())
    composition = RewardComposition.from_config(
        [
            RewardConfig(name="brevity", weight=2.0, params={"limit": 1}),
            RewardConfig(name="tools_used", weight=0.5),
            RewardConfig(name="accuracy"),
        ],
        registry,
    )
    (card,) = composition.score_group([trajectory("4", calls=(False,))])
    assert card.components == {"brevity": 0.0, "tools_used": 1.0, "accuracy": 1.0}
    assert card.total == 0.5 + 1.0
    assert card.parts["tools_used.n"] == 1.0
    with pytest.raises(
        ConfigError, match=r"rewards\.0\.params\.limt: reward 'brevity' has no parameter 'limt'"
    ):
        RewardComposition.from_config([RewardConfig(name="brevity", params={"limt": 1})], registry)


def test_score_command_rescoring_a_run(codedance_cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [trajectory("4", calls=(False, True)), trajectory("5", task_id="u")]
    (run / "trajectories.jsonl").write_text("".join(json.dumps(t.to_json()) + "\n" for t in rows))
    result = codedance_cli("score", str(run), "--reward", "accuracy", "--reward", "bat=2")
    assert result.exit_code == 0, result.output
    assert "2 trajectories scored" in result.output
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    assert [s["components"]["accuracy"] for s in scores] == [1.0, 0.0]
    assert scores[0]["turn_values"] == pytest.approx([-0.1 * 2, -0.5 * 2, 0.0])
    assert scores[0]["total"] == pytest.approx(1.0 + 2 * difficulty(1.0) * 0.5)
