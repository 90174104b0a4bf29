"""A record of every generated training batch, for ``codedance train --smoke`` and its tests.

:class:`RecordingAgentLoopManager` is codedance's rollout manager
(:class:`~codedance.trainers.verl.reward.CodedanceAgentLoopManager`: verl's
``AgentLoopManager``, then the reward composition per uid group) plus one step: when
``$CODEDANCE_STEP_RECORD`` names a folder, it writes what a smoke verdict needs to know
about the batch the actor is about to train on, as ``step-<N>.json``:

- per row: its uid, its total reward and every reward key of the step
  (``reward_extra_info``: ``score``, each component, each ``component.part``);
- per row and assistant turn: whether the turn called a tool and whether the call
  failed, and BAT's turn term in the advantage on that turn's tokens, computed by
  the ``codedance_grpo`` estimator's own functions from the batch's token-level
  rewards (what the trainer then reads, ``algorithm.use_kl_in_reward`` being off);
- per row: the images, the ``<|image_pad|>`` tokens in ``input_ids`` (in contiguous
  spans) and the tokens the processor's ``image_grid_thw`` accounts for;
- per row: ``weights_version``, the trainer step whose weights the rollout server
  generated with (the server's ``global_steps``), which shows the weight sync.

``codedance train --smoke`` names this manager (``agent_loop_manager_class``); any
``codedance train`` can, with the verl override
``++actor_rollout_ref.rollout.agent.agent_loop_manager_class=`` :data:`MANAGER`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from verl import DataProto
from verl.utils.ray_utils import auto_await

from codedance.trainers.verl.advantage import turn_advantage, turn_values
from codedance.trainers.verl.reward import (
    SPANS_KEY,
    TRAJECTORY_KEY,
    UID_KEY,
    CodedanceAgentLoopManager,
    turn_runs,
)

__all__ = ["MANAGER", "RECORD_ENV", "RecordingAgentLoopManager", "batch_record", "image_counts"]

RECORD_ENV = "CODEDANCE_STEP_RECORD"
MANAGER = "codedance.trainers.verl.probe.RecordingAgentLoopManager"
MM_KEY = "multi_modal_inputs"


class RecordingAgentLoopManager(CodedanceAgentLoopManager):
    """codedance's rollout manager that also writes :func:`batch_record` of training batches."""

    @auto_await  # type: ignore[untyped-decorator]
    async def generate_sequences(self, prompts: DataProto) -> DataProto:
        output: DataProto = await super().generate_sequences(prompts)
        folder = os.environ.get(RECORD_ENV)
        if folder and not prompts.meta_info.get("validate", False):
            step = int(prompts.meta_info.get("global_steps", 0) or 0)
            record = batch_record(output, self._image_token_id(), self._merge_size(), step)
            path = Path(folder) / f"step-{step}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1), encoding="utf-8")
        return output

    def _processor(self) -> Any:
        from verl.utils.config import omega_conf_to_dataclass

        return omega_conf_to_dataclass(self.config.actor_rollout_ref.model).processor

    def _image_token_id(self) -> int:
        processor = self._processor()
        return int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))

    def _merge_size(self) -> int:
        return int(self._processor().image_processor.merge_size)


def batch_record(
    data: DataProto, image_token_id: int, merge_size: int, step: int = 0
) -> dict[str, Any]:
    """The module docs' record of ``data``: rows, turns, turn terms, image tokens."""
    batch, extra = data.batch, data.non_tensor_batch
    keys = list(data.meta_info.get("reward_extra_keys") or [])
    runs = turn_runs(batch["response_mask"])
    rewards = batch["rm_scores"]
    term = turn_advantage(turn_values(rewards, runs), runs, batch["response_mask"])
    spans = extra.get(SPANS_KEY)
    rows = []
    for row in range(len(data)):
        trajectory = extra[TRAJECTORY_KEY][row]
        if isinstance(trajectory, str):
            trajectory = json.loads(trajectory)
        if spans is not None:
            row_spans = [dict(span) for span in spans[row]]
        else:
            row_spans = [{"start": start, "end": end} for start, end in runs[row]]
        turns = [_turn(span, term[row]) for span in row_spans]
        images = image_counts(data, row, image_token_id, merge_size)
        rows.append(
            {
                "uid": str(extra[UID_KEY][row]),
                "total": float(rewards[row].sum()),
                "rewards": {key: _number(extra[key][row]) for key in keys},
                "stop": trajectory.get("stop"),
                "weights_version": _version(extra, row),
                "turns": turns,
                **images,
            }
        )
    return {"step": step, "rows": rows, "reward_keys": keys}


def _turn(span: dict[str, Any], term: torch.Tensor) -> dict[str, Any]:
    """One assistant turn: its tool call and BAT's mean turn term on its tokens."""
    start, end = int(span["start"]), int(span["end"])
    return {
        "called_tool": bool(span.get("called_tool", False)),
        "tool_failed": bool(span.get("tool_failed", False)),
        "tokens": end - start,
        "turn_term": float(term[start:end].mean()) if end > start else 0.0,
    }


def image_counts(data: DataProto, row: int, image_token_id: int, merge_size: int) -> dict[str, Any]:
    """Row ``row``'s image-pad spans in ``input_ids`` and the processor's count per image."""
    ids = data.batch["input_ids"][row]
    mask = data.batch["attention_mask"][row].bool()
    spans = _spans((ids[mask] == image_token_id).to(torch.int8).tolist())
    inputs = data.non_tensor_batch.get(MM_KEY)
    grid = None if inputs is None or inputs[row] is None else inputs[row].get("image_grid_thw")
    expected = [] if grid is None else [int(thw.prod()) // merge_size**2 for thw in grid]
    return {"images": len(expected), "image_spans": spans, "processor_counts": expected}


def _spans(flags: Sequence[int]) -> list[int]:
    """Lengths of the runs of 1 in ``flags``."""
    lengths, current = [], 0
    for flag in [*flags, 0]:
        if flag:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    return lengths


def _version(extra: Any, row: int) -> int | None:
    """The trainer step whose weights the rollout server held (``codedance-hf``, vLLM)."""
    column = extra.get("max_global_steps")
    value = None if column is None else column[row]
    return None if value is None else int(value)


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
