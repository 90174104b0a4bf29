"""A real verl GRPO step on the CPU: `codedance data to-verl`, then `codedance train --device cpu`.

Nothing here stands in for verl: stock ``verl.trainer.main_ppo`` (the legacy trainer),
Ray, verl's FSDP2 engine, its agent-loop workers and its checkpointing run as they
would on GPUs, on the CPU profile (codedance's ``cpu`` platform and the
``codedance-hf`` rollout, which generates with transformers). The policy is a tiny
random-weight model built offline (:mod:`codedance.trainers.verl.tiny`, primed to
write the codedance protocol's turns: code that runs, fails or shows an image, or an
answer), so that sampled rollouts differ. The data are the built-in example tasks,
the rollouts run in real local sandbox sessions, and the rewards are accuracy,
format, BAT and the example distribution's ``concise_answer``, pip-installed into a
folder of its own and found through its ``codedance`` entry point in verl's Ray
workers. The rollout manager records the trained batch
(:mod:`codedance.trainers.verl.probe`); the assertions read that record, verl's
metrics log and the checkpoint. The Qwen3-VL twin runs the same step.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("verl")
pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "codedance-hello-tool"
REWARDS = [
    {"name": "accuracy", "weight": 1.0},
    {"name": "format", "weight": 0.2},
    {"name": "bat", "weight": 1.0},
    {"name": "concise_answer", "weight": 0.5, "params": {"max_words": 3}},
]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment with the example distribution pip-installed on PYTHONPATH."""
    source = tmp_path_factory.mktemp("hello-src") / "codedance-hello-tool"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp_path_factory.mktemp("hello-site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True)
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1"}


def _codedance(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "codedance", *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _settings(tmp_path: Path, training: dict[str, Any]) -> Path:
    config = {
        "rewards": REWARDS,
        "tools": {"enabled": ["crop", "hello"]},  # a short system prompt for the tiny model
        "runtime": {"image_min_pixels": 56 * 56, "image_max_pixels": 112 * 112},
        "training": {"device": "cpu", "output_dir": str(tmp_path / "train"), **training},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.train
@pytest.mark.parametrize("architecture", ["qwen2_5_vl", "qwen3_vl"])
def test_a_real_grpo_step_on_the_cpu(
    architecture: str, plugin_env: dict[str, str], tmp_path: Path
) -> None:
    from codedance.trainers.verl.probe import MANAGER, RECORD_ENV
    from codedance.trainers.verl.smoke import group_rewards, weight_change
    from codedance.trainers.verl.tiny import build_tiny

    model = build_tiny(tmp_path / "model", architecture, primed=True)
    data = tmp_path / "data"
    config = _settings(
        tmp_path,
        {
            "model_path": str(model),
            "train_files": [str(data / "train.parquet")],
            "n_rollouts": 4,
            "train_batch_size": 2,
            "ppo_mini_batch_size": 2,
            "micro_batch_size_per_gpu": 4,
            "max_turns": 3,
            "max_prompt_length": 2048,
            "max_response_length": 512,
            "gpus_per_node": 1,
            "lr": 1e-3,
            "overrides": [
                "trainer.total_training_steps=1",
                "trainer.val_before_train=false",
                "trainer.test_freq=-1",
                "trainer.save_freq=1",
                f"++actor_rollout_ref.rollout.agent.agent_loop_manager_class={MANAGER}",
            ],
        },
    )
    convert = _codedance(
        "--config", str(config), "data", "to-verl", "--benchmark", "synthetic",
        "--data", str(tmp_path / "examples"), "--out", str(data), "--shuffle", "--limit", "2",
        env=plugin_env, cwd=tmp_path,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stderr
    records = tmp_path / "records"
    env = {**plugin_env, RECORD_ENV: str(records)}
    run = _codedance("--config", str(config), "train", "--device", "cpu", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert not (tmp_path / "outputs").exists()  # Hydra's files stay in the run's folder
    assert (tmp_path / "train" / "hydra" / "main_ppo.log").is_file()

    # verl's own log of the step: a finite, nonzero policy loss and a gradient
    lines = (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()
    metrics = json.loads(lines[-1])["data"]
    loss = float(metrics["actor/pg_loss"])
    assert math.isfinite(loss)
    assert loss != 0.0
    assert float(metrics["actor/grad_norm"]) > 0

    # the checkpoint verl wrote differs from the initial weights
    checkpoint = tmp_path / "train" / "checkpoints" / "global_step_1" / "actor"
    assert (checkpoint / "huggingface" / "config.json").is_file()
    assert weight_change(model, checkpoint) > 0

    record = json.loads((records / "step-1.json").read_text())
    rows = record["rows"]
    assert len(rows) == 8
    # the third-party reward plugin scored every rollout inside verl's workers
    assert "concise_answer" in record["reward_keys"]
    assert {row["rewards"]["concise_answer"] for row in rows} == {0.0, 1.0}
    if importlib.util.find_spec("codedance.trainers.verl.health") is not None:
        # and verl logged it with the step's metrics (the training-health signals)
        assert "timing_s/codedance/reward/concise_answer/mean" in metrics
    # rewards vary within a prompt group, so GRPO has an advantage to follow
    _, stds = group_rewards(rows)
    assert max(stds.values()) > 0
    # every image's <|image_pad|> span is exactly the processor's count, observation
    # images (input_image.show()) included
    for row in rows:
        assert row["image_spans"] == row["processor_counts"], row
    assert max(row["images"] for row in rows) > 1
    # BAT's turn term: nonzero on every non-final turn whose call failed
    failed = [turn for row in rows for turn in row["turns"][:-1] if turn["tool_failed"]]
    assert failed, "no failed call in the batch"
    assert all(turn["turn_term"] != 0.0 for turn in failed)


@pytest.mark.train
def test_smoke_run_prints_a_json_verdict(plugin_env: dict[str, str], tmp_path: Path) -> None:
    """No model and no data configured: the built-in tiny Qwen2.5-VL on the example tasks."""
    config = _settings(tmp_path, {})
    run = _codedance("--config", str(config), "train", "--smoke", "--device", "cpu", "--json",
                     env=plugin_env, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    verdict = json.loads(run.stdout.strip().splitlines()[-1])
    assert verdict["ok"] is True
    assert verdict["steps"] == 2
    assert verdict["weights_changed"] is True
    assert verdict["architecture"] == "qwen2_5_vl"
    assert verdict["device"] == "cpu"
    assert len(verdict["policy_loss"]) == 2
    assert all(math.isfinite(loss) for loss in verdict["policy_loss"])
    assert len(verdict["reward_std"]) == 2
    assert len(verdict["metrics"]) == 2
    assert all(len(groups) == 2 for groups in verdict["reward_std"])
    assert "actor/grad_norm" in verdict["metrics"][-1]
    # the rollout server generated step 2 with the weights the actor synced after step 1
    first, second = verdict["weights_versions"]
    assert max(first) < min(second)
    assert Path(verdict["checkpoint"]).is_dir()


def test_a_failed_smoke_run_is_a_failed_verdict(tmp_path: Path) -> None:
    """verl exiting non-zero (here: before any step) gives ok=False and the log's tail."""
    from codedance.trainers.verl.smoke import _verdict

    (tmp_path / "verl.log").write_text("Traceback ...\nValueError: boom\n")
    verdict = _verdict(tmp_path, tmp_path / "model", tmp_path / "records", status=1)
    assert verdict.ok is False
    assert verdict.steps == 0
    assert not verdict.weights_changed
    assert verdict.error is not None
    assert "ValueError: boom" in verdict.error
