"""The modality guard on batches made by verl's own AgentLoopWorker and the real processor.

The batch is one real rollout (tests/test_verl_agent_loop.py's fixtures: verl's
worker, the codedance agent loop, the local sandbox, the tiny random Qwen2.5-VL's
processor): a code turn that shows a crop and a plot, then an answer, so three images.
Each mismatch is made by editing that batch the way the bugs it guards against do:
an image lost on the way to the trainer, a pad token too many or too few, pixel rows
missing. Stood in: the LLM server (scripted turns) and the Ray actor handle around
the worker, as in the agent-loop and reward tests.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("verl")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from codedance.core.config import HealthConfig  # noqa: E402
from codedance.runtime.types import Trajectory  # noqa: E402
from codedance.trainers.verl import health, reward  # noqa: E402
from codedance.trainers.verl.guard import ModalityGuard, ModalityMismatchError  # noqa: E402
from tests import test_verl_agent_loop as agent_loop_tests  # noqa: E402

# The agent-loop tests' fixtures: the tiny model, the task image, its row, the worker.
tiny_path = agent_loop_tests.tiny_path
task_image = agent_loop_tests.task_image
parquet = agent_loop_tests.parquet
make_worker = agent_loop_tests.make_worker
UID = "uid-square"


@pytest.fixture(scope="module")
def rolled(make_worker: Callable[..., Any]) -> tuple[Any, Any]:
    """The worker and the batch its ``generate_sequences`` made for TWO_IMAGES."""
    worker, batch = make_worker(agent_loop_tests.TWO_IMAGES)
    batch.meta_info = {"global_steps": 1, "validate": False}
    result = asyncio.run(worker.generate_sequences(batch))
    result.non_tensor_batch["uid"] = np.array([UID], dtype=object)
    return worker, result


@pytest.fixture
def batch(rolled: tuple[Any, Any]) -> Any:
    """A fresh copy of the rolled batch, safe to edit."""
    import copy

    return copy.deepcopy(rolled[1])


@pytest.fixture
def guard(rolled: tuple[Any, Any]) -> ModalityGuard:
    made = ModalityGuard.from_processor(rolled[0].processor)
    assert made is not None
    return made


def trajectories(data: Any) -> list[Trajectory]:
    return reward.trajectories_of(data)


def expected_tokens(rolled: tuple[Any, Any]) -> int:
    """The pad tokens of the rollout's ids, checked against the processor's grid arithmetic."""
    worker, data = rolled
    pad = worker.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    valid = data.batch["attention_mask"][0].bool()
    count = int((data.batch["input_ids"][0][valid] == pad).sum())
    grid = data.non_tensor_batch["multi_modal_inputs"][0]["image_grid_thw"]
    assert count == int(grid.prod(-1).sum()) // 4 > 0  # merge size 2: 4 patches a token
    return count


def test_the_guard_passes_a_real_batch_and_counts_its_image_tokens(rolled, batch, guard):
    assert guard.image_token_id == rolled[0].tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert guard.merge_size == 2
    assert guard.check(batch, trajectories(batch)) == [expected_tokens(rolled)]
    assert len(batch.non_tensor_batch["multi_modal_inputs"][0]["image_grid_thw"]) == 3


def mismatch(guard: ModalityGuard, data: Any, message: str) -> None:
    pattern = rf"batch row 0 \(task 'square', uid {UID}\): {message}"
    with pytest.raises(ModalityMismatchError, match=pattern):
        guard.check(data, trajectories(data))


def test_an_image_lost_on_the_way_to_the_trainer(batch, guard):
    inputs = batch.non_tensor_batch["multi_modal_inputs"][0]
    last = int(inputs["image_grid_thw"][-1].prod())
    inputs["image_grid_thw"] = inputs["image_grid_thw"][:-1]
    inputs["pixel_values"] = inputs["pixel_values"][:-last]
    mismatch(guard, batch, r"its trajectory shows 3 image\(s\) but multi_modal_inputs has 2 grid")


def test_no_multimodal_inputs_at_all(batch, guard):
    batch.non_tensor_batch.pop("multi_modal_inputs")
    mismatch(guard, batch, r"its trajectory shows 3 image\(s\) .* but no image_grid_thw reached")


def test_an_image_pad_token_too_few(rolled, batch, guard):
    ids = batch.batch["input_ids"]
    first = int((ids[0] == guard.image_token_id).nonzero()[0])
    ids[0, first] = rolled[0].tokenizer.convert_tokens_to_ids("<|vision_pad|>")
    n = expected_tokens(rolled)
    mismatch(guard, batch, rf"its input_ids hold {n - 1} image token\(s\) but .* make {n}")


def test_pixel_rows_missing(batch, guard):
    inputs = batch.non_tensor_batch["multi_modal_inputs"][0]
    patches = int(inputs["pixel_values"].shape[0])
    inputs["pixel_values"] = inputs["pixel_values"][:-4]
    mismatch(guard, batch, rf"its pixel_values have {patches - 4} patch row\(s\) but .* {patches}")


def test_a_text_only_processor_has_no_guard():
    assert ModalityGuard.from_processor(None) is None


def test_the_monitor_reports_image_tokens_and_can_be_told_not_to_guard(rolled, batch):
    processor = rolled[0].processor
    on = health.HealthMonitor(HealthConfig(), lambda: processor)
    metrics = on.observe(batch, trajectories(batch), _cards(batch), {"validate": True})
    assert metrics["codedance/image_tokens/mean"] == expected_tokens(rolled)
    assert metrics["codedance/images/mean"] == 3.0
    batch.non_tensor_batch.pop("multi_modal_inputs")
    with pytest.raises(ModalityMismatchError):
        on.observe(batch, trajectories(batch), _cards(batch), {"validate": True})
    off = health.HealthMonitor(HealthConfig(modality_guard=False), lambda: processor)
    metrics = off.observe(batch, trajectories(batch), _cards(batch), {"validate": True})
    assert metrics["codedance/image_tokens/mean"] == expected_tokens(rolled)


def _cards(data: Any) -> list[Any]:
    return [types.SimpleNamespace(total=0.0, components={}, parts={})] * len(data)


class FakeWorker:
    """An agent-loop worker handle (a Ray actor in verl) returning a prepared batch."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.generate_sequences = types.SimpleNamespace(remote=self.remote)

    async def remote(self, chunk: Any) -> Any:
        metric = {"generate_sequences": 1.0, "tool_calls": 0.5, "compute_score": 0.0}
        self.output.meta_info = {"metrics": [{**metric, "num_preempted": 0}] * len(chunk)}
        return self.output


def test_the_rollout_manager_guards_with_the_processor_verl_loads(rolled, batch, monkeypatch):
    """The manager loads the policy's processor from verl's model config, as verl's workers
    do, and stops the step on a mismatched batch, naming the sample."""
    monkeypatch.delenv("CODEDANCE_CONFIG", raising=False)
    from verl import DataProto

    manager = reward.CodedanceAgentLoopManager(config=rolled[0].config, llm_client=None)
    prompts = DataProto.from_dict(
        {"input_ids": torch.zeros(1, 1)}, {"uid": np.array([UID], dtype=object)}
    )
    manager.agent_loop_workers = [FakeWorker(batch)]
    output = manager.generate_sequences(prompts)
    assert output.meta_info["timing"]["codedance/image_tokens/mean"] == expected_tokens(rolled)
    inputs = batch.non_tensor_batch["multi_modal_inputs"][0]
    inputs["image_grid_thw"] = inputs["image_grid_thw"][:-1]
    with pytest.raises(ModalityMismatchError, match=r"task 'square', uid uid-square"):
        manager.generate_sequences(prompts)
