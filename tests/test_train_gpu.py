"""One real GRPO step on a GPU: codedance's agent loop, rewards and estimator inside stock verl.

GPU-only: it needs CUDA and vLLM, so it skips cleanly on CPU machines (including
this project's CI). It runs the whole chain the CPU tests check piece by piece:
`codedance data to-verl`, then `codedance train` (verl.trainer.main_ppo) for one
step with a tiny random-weight Qwen2.5-VL built in the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.gpu
def test_one_training_step_on_a_gpu(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    pytest.importorskip("verl")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from tests.tiny_vlm import build_tiny_qwen2_5_vl

    model = build_tiny_qwen2_5_vl(tmp_path / "tiny")
    data = tmp_path / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    config = {
        "training": {
            "model_path": str(model),
            "train_files": [str(data / "train.parquet")],
            "n_rollouts": 2,
            "train_batch_size": 2,
            "ppo_mini_batch_size": 2,
            "micro_batch_size_per_gpu": 1,
            "max_turns": 2,
            "max_prompt_length": 4096,
            "max_response_length": 1024,
            "gpus_per_node": 1,
            "output_dir": str(tmp_path / "train"),
            "overrides": [
                "trainer.total_training_steps=1",
                "trainer.val_before_train=false",
                "trainer.test_freq=-1",
                "trainer.save_freq=-1",
                "actor_rollout_ref.rollout.gpu_memory_utilization=0.3",
                "actor_rollout_ref.rollout.enforce_eager=true",
                # verl's defaults need flash-attn, which takes long to build: sdpa instead
                "actor_rollout_ref.model.use_remove_padding=false",
                "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
            ],
        },
        "tools": {"enabled": ["crop", "zoom"]},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    # Converted with the same config, so the prompt documents the same two tools: the tiny
    # tokenizer spends ~0.8 tokens a character, and the prompt must fit the tiny model's
    # 4096 positions (vLLM's max_model_len); with every tool documented it needs ~11,500.
    convert = [
        sys.executable, "-m", "codedance", "--config", str(path), "data", "to-verl",
        "--benchmark", "synthetic", "--data", str(tmp_path / "gen"), "--option", "per_kind=1",
        "--out", str(data),
    ]  # fmt: skip
    subprocess.run(convert, check=True, env=env)
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "--config", str(path), "train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # verl's console logger prints the step's metrics, codedance's health metrics among them
    assert "timing_s/codedance/tool_rate:" in result.stdout, result.stdout[-4000:]
