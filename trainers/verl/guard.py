"""The modality guard: every image the rollout saw reaches the trainer, token for token.

A vision-language policy is trained on ``input_ids`` in which each image is a run of
image-pad tokens (``<|image_pad|>`` for Qwen2.5-VL and Qwen3-VL), one per merged
patch, and on ``multi_modal_inputs`` (``pixel_values``, ``image_grid_thw``) that verl's
agent loop rebuilds for the trainer by running the processor again on the decoded text
and the rollout's images. When the two disagree, training either crashes deep in the
model ("Image features and image tokens do not match") or, worse, silently trains on
misaligned positions (agent-lightning #559, trl #6401, verl #3469).

:meth:`ModalityGuard.check` looks at every row of a generated batch before the
trainer sees it and raises :class:`ModalityMismatchError`, naming the row, its task id
and its ``uid``, unless all of these hold:

- the images the trajectory record lists (prompt images plus the images of every
  observation that was appended) have one ``image_grid_thw`` row each: the multimodal
  inputs reached the batch, none dropped, none extra;
- the image-pad tokens among the row's valid ``input_ids`` equal the grid's tokens,
  ``sum(t * h * w) / merge_size**2``;
- ``pixel_values`` has one row per patch, ``sum(t * h * w)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codedance.core.errors import CodedanceError, ConfigError
from codedance.runtime.types import Trajectory

__all__ = ["ModalityGuard", "ModalityMismatchError", "trajectory_images"]

MM_KEY = "multi_modal_inputs"


class ModalityMismatchError(CodedanceError):
    """A batch row whose image tokens, image grids and images do not agree."""


def trajectory_images(trajectory: Trajectory) -> int:
    """Images the model saw in ``trajectory``: the prompt's and every appended observation's."""
    messages = [trajectory.prompt]
    messages += [turn.observation for turn in trajectory.turns if turn.observation is not None]
    return sum(part.type == "image" for message in messages for part in message.parts)


@dataclass(frozen=True)
class ModalityGuard:
    """Checks image tokens against image grids; ``merge_size`` patches per side make a token."""

    image_token_id: int
    merge_size: int

    @classmethod
    def from_processor(cls, processor: Any) -> ModalityGuard | None:
        """The guard for ``processor`` (a Qwen-VL style processor), None for text-only models."""
        if processor is None:
            return None
        from verl.utils.tokenizer import get_processor_token_id

        token = get_processor_token_id(processor, "image")
        merge = getattr(getattr(processor, "image_processor", None), "merge_size", None)
        if token is None:
            return None
        if not isinstance(merge, int) or merge <= 0:
            raise ConfigError(
                f"the policy's processor {type(processor).__name__} has an image token but no "
                f"image_processor.merge_size, so image tokens cannot be checked against image "
                f"grids. Fix: set training.health.modality_guard: false for this model."
            )
        return cls(int(token), merge)

    def token_counts(self, data: Any) -> list[int]:
        """Image-pad tokens among each row's valid ``input_ids`` (attention mask 1)."""
        ids, attention = data.batch["input_ids"], data.batch["attention_mask"]
        hits = (ids == self.image_token_id) & (attention != 0)
        return [int(count) for count in hits.sum(dim=-1).tolist()]

    def check(self, data: Any, trajectories: Sequence[Trajectory]) -> list[int]:
        """Each row's image tokens, after checking the row (module docs); raises on a mismatch."""
        tokens = self.token_counts(data)
        column = data.non_tensor_batch.get(MM_KEY)
        uids = data.non_tensor_batch.get("uid")
        for row, trajectory in enumerate(trajectories):
            inputs = None if column is None else column[row]
            problem = self._problem(tokens[row], inputs, trajectory_images(trajectory))
            if problem:
                uid = "?" if uids is None else uids[row]
                raise ModalityMismatchError(
                    f"batch row {row} (task {trajectory.task.id!r}, uid {uid}): {problem}. "
                    f"The trainer would train on image features that do not line up with the "
                    f"image tokens. Fix: check that the rollout and the trainer use the same "
                    f"processor and image size limits (data.mm_processor_kwargs, "
                    f"runtime.image_min_pixels/image_max_pixels), and report the task."
                )
        return tokens

    def _problem(self, tokens: int, inputs: Any, images: int) -> str:
        """What is wrong with one row, or '' when its modalities agree."""
        grid = _get(inputs, "image_grid_thw")
        if grid is None:
            if images or tokens:
                return (
                    f"its trajectory shows {images} image(s) and its input_ids hold {tokens} "
                    f"image token(s), but no image_grid_thw reached the batch's {MM_KEY}"
                )
            return ""
        patches = [int(t) * int(h) * int(w) for t, h, w in grid.tolist()]
        expected = sum(patches) // self.merge_size**2
        if len(patches) != images:
            return f"its trajectory shows {images} image(s) but {MM_KEY} has {len(patches)} grid(s)"
        if tokens != expected:
            return (
                f"its input_ids hold {tokens} image token(s) but its image grids "
                f"{grid.tolist()} make {expected} (merge size {self.merge_size})"
            )
        pixels = _get(inputs, "pixel_values")
        if pixels is None or int(pixels.shape[0]) != sum(patches):
            rows = "none" if pixels is None else int(pixels.shape[0])
            return f"its pixel_values have {rows} patch row(s) but its grids make {sum(patches)}"
        return ""


def _get(inputs: Any, key: str) -> Any:
    return inputs.get(key) if isinstance(inputs, Mapping) else None
