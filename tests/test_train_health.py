"""Training-health metrics, the tool-collapse alarm and the two remedies, on real verl objects.

Batches are real ``DataProto``s laid out as the codedance agent loop hands them to verl
(each turn's 3 generated tokens with response_mask 1, 2 observation tokens after every
non-final turn), with hand-built trajectories whose metric values are counted by hand
below. The rewards are the real composition; the advantages come from verl's own
``compute_advantage``; the logged names from verl's own ``compute_timing_metrics`` and
``compute_data_metrics``, the functions verl's legacy trainer logs a step with.
"""

from __future__ import annotations

import logging
import re
import types
from typing import NamedTuple

import numpy as np
import pytest

from codedance.core.config import GroupFilterConfig, HealthConfig, RewardConfig
from codedance.core.errors import ConfigError
from codedance.rewards.bat import difficulty
from codedance.rewards.composition import RewardComposition
from codedance.runtime.types import Message, Parsed, Part, Task, Trajectory, Turn

pytest.importorskip("verl")
torch = pytest.importorskip("torch")

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.metric_utils import (  # noqa: E402
    compute_data_metrics,
    compute_timing_metrics,
)
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.trainer.ppo.reward import extract_reward  # noqa: E402

from codedance.trainers.verl import advantage, health, remedies, reward  # noqa: E402, F401

ERROR = {"type": "ValueError", "message": "bad", "traceback": ""}
PROMPT, RESPONSE, GEN, OBS = 4, 40, 3, 2
RECIPE = [
    RewardConfig(name="accuracy", weight=1.0),
    RewardConfig(name="format", weight=0.2),
    RewardConfig(name="bat", weight=1.0, params={"variant": "weighted"}),
]
ALGORITHM = OmegaConf.create({"codedance_turn_scale": 0.2, "norm_adv_by_std_in_grpo": True})


class Row(NamedTuple):
    """``calls``: one flag per code turn, True when it failed; ``shown``: images per call."""

    uid: str
    truth: str
    answer: str | None
    calls: tuple[bool, ...] = ()
    stop: str = "answer"
    shown: int = 0
    prompt_images: int = 1


# Three prompts, two rollouts each. Counted by hand:
#   tool calls [1, 2, 0, 0, 3, 0]: mean 1, max 3, rate 3/6; 3 of 6 calls failed
#   turns [2, 3, 1, 1, 3, 1] (answer turns count): mean 11/6; generated tokens 3 per turn
#   stops: answer 4, max_turns 1 (row 4), max_tokens 1 (row 5)
#   images: one per prompt, plus one shown by row 0's call: 7/6
#   accuracy: row 0 only; groups a: 1/2 correct, b and c: 0/2
ROWS = [
    Row("a", "4", "4", (False,), shown=1),
    Row("a", "4", "5", (True, False)),
    Row("b", "7", "1"),
    Row("b", "7", "1"),
    Row("c", "7", None, (False, True, True), stop="max_turns"),
    Row("c", "7", None, stop="max_tokens"),
]


def trajectory(row: Row) -> Trajectory:
    def call(index: int, failed: bool) -> Turn:
        execution = {"error": ERROR if failed else None}
        shown = [Part("image") for _ in range(row.shown)]
        observation = Message("user", [Part.of_text("out"), *shown])
        return Turn(index, "<code>x</code>", Parsed(code="x"), execution, observation)

    turns = [call(i, failed) for i, failed in enumerate(row.calls)]
    if row.answer is not None:
        turns.append(Turn(len(turns), f"<answer>{row.answer}</answer>", Parsed(answer=row.answer)))
    elif not turns:
        turns.append(Turn(0, "hmm", Parsed(problem="no action")))
    if turns:  # the final turn's observation was never appended
        turns[-1].observation = None
    prompt = Message("user", [*(Part("image") for _ in range(row.prompt_images)), Part("text")])
    task = Task(f"task-{row.uid}", "q", answer=row.truth, answer_type="number")
    return Trajectory(task, "", prompt, turns=turns, answer=row.answer, stop=row.stop)  # type: ignore[arg-type]


def objects(items: list) -> np.ndarray:  # type: ignore[type-arg]
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


def make_batch(rows: list[Row] = ROWS, meta: dict | None = None) -> DataProto:  # type: ignore[type-arg]
    """The agent loop's batch for ``rows``: right-padded responses, interleaved turns."""
    n = len(rows)
    response_mask = torch.zeros(n, RESPONSE, dtype=torch.long)
    attention = torch.zeros(n, PROMPT + RESPONSE, dtype=torch.long)
    attention[:, :PROMPT] = 1
    spans = []
    for index, row in enumerate(rows):
        turns, cursor, row_spans = trajectory(row).turns, 0, []
        for turn in turns:
            row_spans.append({"turn": turn.index, "start": cursor, "end": cursor + GEN})
            response_mask[index, cursor : cursor + GEN] = 1
            cursor += GEN + (OBS if turn.index < len(turns) - 1 else 0)
        attention[index, PROMPT : PROMPT + cursor] = 1
        spans.append(row_spans)
    prompts = torch.arange(1, PROMPT + 1).repeat(n, 1)
    responses = torch.arange(10, 10 + RESPONSE).repeat(n, 1) * attention[:, PROMPT:]
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=-1),
            "attention_mask": attention,
            "response_mask": response_mask,
        },
        non_tensors={
            "uid": objects([f"uid-{row.uid}" for row in rows]),
            "codedance_trajectory": objects([trajectory(row).to_json() for row in rows]),
            "turn_spans": objects(spans),
        },
        meta_info=meta or {},
    )


@pytest.fixture
def composition(codedance_registry):  # type: ignore[no-untyped-def]
    return RewardComposition.from_config(RECIPE, codedance_registry)


def scored(composition: RewardComposition, rows: list[Row] = ROWS):  # type: ignore[no-untyped-def]
    """A batch with rm_scores attached; its trajectories and score cards."""
    data = make_batch(rows)
    trajectories, cards = reward._attach(data, data, composition)
    return data, trajectories, cards


def no_processor() -> None:
    raise AssertionError("a batch without images must not load the policy's processor")


def test_each_metric_has_the_value_counted_by_hand(composition):
    data, trajectories, cards = scored(composition)
    metrics = health.rollout_metrics(trajectories, cards, data.batch["response_mask"])
    expected = {
        "tool_calls/mean": 1.0,
        "tool_calls/max": 3.0,
        "tool_rate": 0.5,
        "call_success_rate": 3 / 6,
        "turns/mean": 11 / 6,
        "turns/max": 3.0,
        "over_turn_share": 1 / 6,
        "response_length/mean": GEN * 11 / 6,
        "images/mean": 7 / 6,
        "stop/answer": 4 / 6,
        "stop/max_turns": 1 / 6,
        "stop/max_tokens": 1 / 6,
        "stop/no_action": 0.0,
        "stop/model_error": 0.0,
        "stop/error": 0.0,
        "reward/accuracy/mean": 1 / 6,
    }
    assert {key: metrics[key] for key in expected} == pytest.approx(expected)
    # BAT's d per row from its group's accuracy: a 1/2, b and c 0
    d = [difficulty(0.5)] * 2 + [difficulty(0.0)] * 4
    assert metrics["reward/bat.difficulty/mean"] == pytest.approx(sum(d) / 6)
    for part in ("r_seq", "r_turn"):
        values = [card.parts["bat." + part] for card in cards]
        assert metrics[f"reward/bat.{part}/mean"] == pytest.approx(sum(values) / 6)
    assert metrics["reward/score/mean"] == pytest.approx(sum(c.total for c in cards) / 6)
    assert "image_tokens/mean" not in metrics  # only with the policy's image token


def test_image_tokens_and_a_batch_without_calls():
    rows = [Row("a", "4", "4"), Row("a", "4", "3")]
    data, trajectories = make_batch(rows), [trajectory(r) for r in rows]
    cards = [types.SimpleNamespace(total=0.0, components={}, parts={})] * 2
    metrics = health.rollout_metrics(trajectories, cards, data.batch["response_mask"], [16, 4])  # type: ignore[arg-type]
    assert metrics["image_tokens/mean"] == 10.0
    assert metrics["tool_rate"] == 0.0
    assert "call_success_rate" not in metrics  # undefined, not 0


def test_group_metrics_measure_the_spread_within_each_uid():
    uids = ["a", "a", "b", "b", "c", "c"]
    metrics = health.group_metrics(uids, [1.0, 0.0, 0.3, 0.3, 0.5, 0.5 + 1e-12], 0.0)
    assert metrics["group/reward_std/mean"] == pytest.approx(0.5 / 3)
    assert metrics["group/zero_std_share"] == pytest.approx(2 / 3)


def test_the_alarm_fires_after_k_low_steps_and_not_before(caplog):
    alarm = health.ToolCollapseAlarm(floor=0.2, steps=3)
    with caplog.at_level(logging.WARNING, logger="codedance.trainers.verl.health"):
        fired = [alarm.update(rate, step)["alarm/tool_collapse"] for step, rate in enumerate(
            [0.1, 0.1, 0.5, 0.1, 0.0, 0.19, 0.05, 0.2], start=1
        )]  # fmt: skip
    assert fired == [0, 0, 0, 0, 0, 1, 1, 0]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "TOOL USE COLLAPSED at step 6" in lines[0]
    assert "tool_rate_floor=20.0% for 3 steps" in lines[0]
    assert alarm.update(0.0) == {"alarm/tool_collapse": 0.0, "alarm/low_tool_steps": 1.0}
    assert health.ToolCollapseAlarm(0.2, 0).update(0.0) == {}  # steps 0: off


def test_the_monitor_counts_only_training_steps_toward_the_alarm(composition, caplog):
    """A step without tool calls, three times; a validation batch in between does not count."""
    rows = [Row("a", "4", "4", prompt_images=0), Row("a", "4", "1", prompt_images=0)]
    monitor = health.HealthMonitor(HealthConfig(tool_rate_floor=0.1, alarm_steps=3), no_processor)
    seen = []
    with caplog.at_level(logging.WARNING):
        for step, validate in [(1, False), (2, False), (2, True), (3, False)]:
            data, trajectories, cards = scored(composition, rows)
            meta = {"global_steps": step, "validate": validate}
            metrics = monitor.observe(data, trajectories, cards, meta)
            seen.append(metrics.get("codedance/alarm/tool_collapse"))
    assert seen == [0.0, 0.0, None, 1.0]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert "TOOL USE COLLAPSED at step 3" in lines[0]


def changed_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    return [row for row in range(before.shape[0]) if not torch.equal(before[row], after[row])]


@pytest.mark.parametrize(
    ("config", "dropped", "counts"),
    [
        (HealthConfig(), [], {}),
        (HealthConfig(mask_over_turn=True), [4], {"remedy/over_turn_masked": 1.0}),
        (
            HealthConfig(group_filter=GroupFilterConfig(enabled=True, metric="accuracy")),
            [2, 3, 4, 5],
            {"remedy/group_filtered": 4.0},
        ),
        (
            HealthConfig(group_filter=GroupFilterConfig(enabled=True)),  # score: b only
            [2, 3],
            {"remedy/group_filtered": 2.0},
        ),
        (
            HealthConfig(mask_over_turn=True, group_filter=GroupFilterConfig(enabled=True)),
            [2, 3, 4],
            {"remedy/over_turn_masked": 1.0, "remedy/group_filtered": 2.0},
        ),
    ],
    ids=["off", "over-turn", "filter-accuracy", "filter-score", "both"],
)
def test_the_remedies_mask_exactly_the_rows_they_drop(composition, config, dropped, counts):
    data, trajectories, cards = scored(composition)
    before = data.batch["response_mask"].clone()
    metrics = remedies.apply_remedies(data, trajectories, cards, config)
    after = data.batch["response_mask"]
    assert changed_rows(before, after) == dropped
    assert not after[dropped].any()
    assert {k: v for k, v in metrics.items() if k != "remedy/kept_all"} == counts
    assert metrics.get("remedy/kept_all", 0.0) == 0.0


def test_the_score_of_group_c_varies_so_only_b_has_zero_std(composition):
    """The premise of the 'filter-score' case: BAT's R_seq (a good call) tells c's rows apart."""
    _, _, cards = scored(composition)
    totals = [card.total for card in cards]
    assert totals[2] == totals[3]
    assert totals[4] != pytest.approx(totals[5])


def test_dropped_rows_get_no_advantage_and_the_others_keep_verls_grpo(composition):
    """verl's compute_advantage: masked rows 0; the rest as without the remedy (plain grpo)."""
    config = HealthConfig(mask_over_turn=True, group_filter=GroupFilterConfig(enabled=True))
    plain, _, _ = scored(composition)
    data, trajectories, cards = scored(composition)
    remedies.apply_remedies(data, trajectories, cards, config)
    for batch in (plain, data):
        scores, _ = extract_reward(batch)
        batch.batch["token_level_rewards"] = scores
    kept = [0, 1, 5]
    for estimator in ("grpo", "codedance_grpo"):
        ours = compute_advantage(data, adv_estimator=estimator, config=ALGORITHM)
        advantages = ours.batch["advantages"].clone()
        assert not advantages[[2, 3, 4]].any(), estimator
        assert advantages[kept].abs().sum() > 0, estimator
    grpo = compute_advantage(plain, adv_estimator="grpo", config=ALGORITHM).batch["advantages"]
    data_grpo = compute_advantage(data, adv_estimator="grpo", config=ALGORITHM)
    assert torch.equal(data_grpo.batch["advantages"][kept], grpo[kept])


def test_remedies_that_would_drop_every_row_drop_none(composition, caplog):
    rows = [Row("b", "7", "1"), Row("b", "7", "1")]
    data, trajectories, cards = scored(composition, rows)
    before = data.batch["response_mask"].clone()
    config = HealthConfig(group_filter=GroupFilterConfig(enabled=True))
    with caplog.at_level(logging.WARNING):
        metrics = remedies.apply_remedies(data, trajectories, cards, config)
    assert torch.equal(data.batch["response_mask"], before)
    assert metrics["remedy/kept_all"] == 1.0
    assert "would drop all 2 rollouts" in caplog.text


def test_a_filter_metric_no_reward_reports_is_a_config_error(composition):
    data, trajectories, cards = scored(composition)
    config = HealthConfig(group_filter=GroupFilterConfig(enabled=True, metric="acuracy"))
    with pytest.raises(ConfigError, match=r"group_filter.metric is 'acuracy'.*accuracy"):
        remedies.apply_remedies(data, trajectories, cards, config)


class FakeWorker:
    """An agent-loop worker handle (a Ray actor in verl) returning a prepared batch."""

    def __init__(self, output: DataProto) -> None:
        self.output = output
        self.generate_sequences = types.SimpleNamespace(remote=self.remote)

    async def remote(self, chunk: DataProto) -> DataProto:
        metric = {"generate_sequences": 1.0, "tool_calls": 0.5, "compute_score": 0.0}
        self.output.meta_info = {"metrics": [{**metric, "num_preempted": 0}] * len(chunk)}
        return self.output


def test_the_manager_logs_the_metrics_the_way_verls_trainer_logs_a_step(
    codedance_registry, tmp_path, monkeypatch
):
    """The manager's generate_sequences, then what verl's legacy fit() does with the output:
    timing_raw.update(meta_info['timing']), extract_reward, compute_advantage,
    compute_data_metrics and compute_timing_metrics."""
    config = tmp_path / "codedance.yaml"
    entries = [f"  - {{name: {r.name}, weight: {r.weight}, params: {r.params}}}" for r in RECIPE]
    recipe = "\n".join(entries)
    health_yaml = "training:\n  health:\n    mask_over_turn: true\n    alarm_steps: 1\n"
    config.write_text(f"rewards:\n{recipe}\n{health_yaml}", encoding="utf-8")
    monkeypatch.setenv("CODEDANCE_CONFIG", str(config))
    rows = [r._replace(prompt_images=0, shown=0) for r in ROWS]
    verl_config = OmegaConf.create({"actor_rollout_ref": {"rollout": {}, "model": {}}})
    manager = reward.CodedanceAgentLoopManager(config=verl_config, llm_client=None)
    manager.agent_loop_workers = [FakeWorker(make_batch(rows))]
    prompts = DataProto.from_dict(
        {"input_ids": torch.zeros(len(rows), 1)},
        {"uid": objects([f"uid-{r.uid}" for r in rows])},
        meta_info={"global_steps": 1},
    )
    output = manager.generate_sequences(prompts)
    timing_raw = {"step": 1.0}
    timing_raw.update(output.meta_info["timing"])
    scores, _ = extract_reward(output)
    output.batch["token_level_scores"] = output.batch["token_level_rewards"] = scores
    output = compute_advantage(output, adv_estimator="codedance_grpo", config=ALGORITHM)
    logged = {
        **compute_data_metrics(batch=output, use_critic=False),
        **compute_timing_metrics(batch=output, timing_raw=timing_raw),
    }
    ours = health.logged_health(logged)
    assert ours["tool_rate"] == 0.5
    assert ours["turns/mean"] == pytest.approx(11 / 6)
    assert ours["stop/max_turns"] == pytest.approx(1 / 6)
    assert ours["reward/accuracy/mean"] == pytest.approx(1 / 6)
    assert ours["remedy/over_turn_masked"] == 1.0
    assert ours["alarm/tool_collapse"] == 0.0  # 0.5 is above the 0.05 floor
    assert logged["timing_s/codedance/tool_calls/mean"] == 1.0
    assert logged["tool_call_counts/mean"] == 1.0  # verl's own name for the same count
    assert logged["tool_call_counts/max"] == 3
    assert not output.batch["advantages"][4].any()  # the over-turn row, masked


def test_every_metric_is_in_the_docs_table(composition):
    """docs/training.md lists each name the monitor logs (patterns for per-reason/per-reward)."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()
    table = doc.split("## Training health", 1)[1].split("### The tool-collapse alarm", 1)[0]
    config = HealthConfig(mask_over_turn=True, group_filter=GroupFilterConfig(enabled=True))
    rows = [r._replace(prompt_images=0, shown=0) for r in ROWS]
    data, trajectories, cards = scored(composition, rows)
    monitor = health.HealthMonitor(config, no_processor)
    names = set(monitor.observe(data, trajectories, cards, {"global_steps": 1}))
    names |= {health.PREFIX + "image_tokens/mean"}
    assert {health.PREFIX + "remedy/kept_all", health.PREFIX + "alarm/tool_collapse"} <= names
    for name in sorted(names):
        short = name.removeprefix(health.PREFIX)
        short = re.sub(r"^stop/\w+$", "stop/<reason>", short)
        short = re.sub(r"^reward/(?!score/)[\w.]+/mean$", "reward/<name>/mean", short)
        assert f"`{short}`" in table, f"{short} is not in docs/training.md's metric table"


def test_verl_logs_the_logprob_gap_under_the_generated_configuration(composition, tmp_path):
    """With codedance train's verl configuration, the legacy trainer's own steps compute the
    rollout-vs-trainer gap from the rollout log-probs: kl over the tokens left in the loss."""
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch
    from verl.utils.debug.metrics import calculate_debug_metrics

    from codedance.core.config import Config
    from codedance.trainers.verl.config import compose, verl_overrides

    settings = Config.model_validate(
        {"training": {"model_path": "/models/policy", "train_files": ["t.parquet"]}}
    )
    verl_config = compose(verl_overrides(settings, tmp_path))
    assert verl_config.actor_rollout_ref.rollout.calculate_log_probs is True
    corr = verl_config.algorithm.get("rollout_correction", None)
    assert corr is not None
    assert not corr.get("bypass_mode", False)
    data, trajectories, cards = scored(composition)
    generated = data.batch["response_mask"].bool().clone()
    remedies.apply_remedies(data, trajectories, cards, HealthConfig(mask_over_turn=True))
    mask = data.batch["response_mask"].bool()
    generator = torch.Generator().manual_seed(0)
    rollout = -torch.rand(len(ROWS), RESPONSE, generator=generator)
    trainer = rollout - 0.1 * torch.rand(len(ROWS), RESPONSE, generator=generator)
    data.batch["rollout_log_probs"], data.batch["old_log_probs"] = rollout, trainer
    _, metrics = compute_rollout_correction_and_add_to_batch(data, corr)
    expected = float((rollout - trainer)[mask].mean())
    assert metrics[health.VERL_GAP_METRICS[0]] == pytest.approx(expected, rel=1e-5)
    counting_row_4 = float((rollout - trainer)[generated].mean())  # the over-turn row, masked
    assert metrics[health.VERL_GAP_METRICS[0]] != pytest.approx(counting_row_4, rel=1e-5)
    assert health.VERL_GAP_METRICS[1] in metrics
    assert health.VERL_GAP_METRICS[2] in calculate_debug_metrics(data)
