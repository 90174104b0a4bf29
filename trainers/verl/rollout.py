"""``codedance-hf``: a verl rollout backend that generates with Hugging Face transformers.

verl 0.9.1's rollouts are inference servers (vLLM, SGLang, TensorRT-LLM) that the
agent loops call token-in, token-out; its old in-process ``HFRollout`` is no longer
registered. This module adds one more server, for machines those engines do not run
on (the CPU profile of ``codedance train --device cpu``), through verl's public
registries and without forking verl:

- :class:`HFRolloutServer`, a Ray actor holding the policy as a transformers model:
  :meth:`~HFRolloutServer.generate` takes the prompt's token ids (image pads already
  expanded by the agent loop) and the images, computes ``pixel_values`` and
  ``image_grid_thw`` with the checkpoint's processor, samples with the rollout's
  temperature/top-p/top-k, and returns verl's ``TokenOutput`` with each token's
  log-probability (log-softmax of the logits over the temperature, as verl's actor
  computes them). The vision special tokens are suppressed: a sampled
  ``<|image_pad|>`` has no image behind it and crashes the next turn's rope index
  (ms-swift #9287). Requests run one at a time in a thread.
- :class:`HFServerAdapter`, the ``BaseRollout`` that lives in each hybrid
  actor/rollout worker: verl's naive checkpoint engine hands it the actor's weights
  after every step (:meth:`~HFServerAdapter.update_weights`), and it sends them to
  its replica's server, which loads them in place.
- :class:`HFReplica`, the ``RolloutReplica`` that launches one server per trainer
  rank (a hybrid replica of world size 1).

:func:`register` puts them in ``RolloutReplicaRegistry`` and ``_ROLLOUT_REGISTRY``
under :data:`ROLLOUT_NAME`; importing this module registers them, so ``codedance train
--device cpu`` lists it in ``VERL_USE_EXTERNAL_MODULES`` and ``rollout.name`` picks it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from typing import Any

import ray
import torch
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

from codedance.core.errors import ConfigError

__all__ = [
    "ROLLOUT_NAME",
    "HFReplica",
    "HFRolloutServer",
    "HFServerAdapter",
    "register",
    "server_name",
    "vision_token_ids",
]

ROLLOUT_NAME = "codedance-hf"
#: Tokens a policy must never sample: they stand for media the prompt does not have.
VISION_TOKENS = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_CONFIG_TOKEN_IDS = (
    "image_token_id",
    "video_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
)


def server_name(replica_rank: int) -> str:
    """The Ray actor name of replica ``replica_rank``'s server (one node per replica)."""
    return f"codedance_hf_server_{replica_rank}"


def vision_token_ids(tokenizer: Any, model_config: Any) -> list[int]:
    """The ids of the vision special tokens the tokenizer and the model config know."""
    ids = {getattr(model_config, key, None) for key in _CONFIG_TOKEN_IDS}
    vocab = tokenizer.get_vocab()
    ids.update(vocab.get(token) for token in VISION_TOKENS)
    return sorted(i for i in ids if isinstance(i, int) and i >= 0)


class HFRolloutServer:
    """A transformers model behind verl's token-in, token-out server interface (a Ray actor)."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int = 0) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config, self.replica_rank = config, replica_rank
        path = str(getattr(model_config, "local_path", None) or model_config.path)
        trust = bool(getattr(model_config, "trust_remote_code", False))
        self.processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            path, trust_remote_code=trust
        )
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=torch.float32, trust_remote_code=trust
        )
        self.model: Any = model.eval()  # type: ignore[no-untyped-call]
        self.suppress = vision_token_ids(self.tokenizer, self.model.config)
        eos = self.model.generation_config.eos_token_id
        ends = [*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id]
        self.eos = sorted({int(i) for i in ends if i is not None})
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.global_steps: int | None = None
        self.lock = asyncio.Lock()
        # verl's rollout seed, as vLLM uses it (requests are served one at a time)
        torch.manual_seed(int(getattr(config, "seed", 0) or 0) + replica_rank)

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Sequence[Any] | None = None,
        video_data: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Sample a continuation of ``prompt_ids``; ``image_data`` are the prompt's images."""
        if video_data:
            raise ConfigError(
                f"rollout {ROLLOUT_NAME!r} got video input for request {request_id}; it handles "
                f"images only. Fix: use rollout vllm for video tasks."
            )
        async with self.lock:
            tokens, logprobs = await asyncio.to_thread(
                self._sample, prompt_ids, sampling_params, image_data or [], mm_processor_kwargs
            )
        return TokenOutput(
            token_ids=tokens,
            log_probs=logprobs,
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps},
        )

    def _inputs(
        self, prompt_ids: list[int], images: Sequence[Any], mm_kwargs: dict[str, Any] | None
    ) -> dict[str, Any]:
        """input_ids, attention_mask and, with images, pixel_values and image_grid_thw."""
        ids = torch.tensor([prompt_ids], dtype=torch.long)
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if images:
            vision = self.processor.image_processor(
                images=list(images), return_tensors="pt", **(mm_kwargs or {})
            )
            inputs["pixel_values"] = vision["pixel_values"].to(self.model.dtype)
            inputs["image_grid_thw"] = vision["image_grid_thw"]
        return inputs

    @torch.no_grad()
    def _sample(
        self,
        prompt_ids: list[int],
        params: dict[str, Any],
        images: Sequence[Any],
        mm_kwargs: dict[str, Any] | None,
    ) -> tuple[list[int], list[float]]:
        max_tokens = int(params.get("max_tokens") or params.get("max_new_tokens") or 0)
        if max_tokens <= 0:
            return [], []
        temperature = float(params.get("temperature", 1.0))
        greedy = temperature <= 0
        top_k = int(params.get("top_k", -1) or -1)
        output = self.model.generate(
            **self._inputs(prompt_ids, images, mm_kwargs),
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_p=float(params.get("top_p", 1.0)),
            top_k=top_k if top_k > 0 else None,
            max_new_tokens=max_tokens,
            suppress_tokens=self.suppress or None,
            eos_token_id=self.eos,
            pad_token_id=self.pad,
            output_logits=True,
            return_dict_in_generate=True,
        )
        tokens = output.sequences[0, len(prompt_ids) :].tolist()
        scale = 1.0 if greedy else temperature
        logprobs = [
            float(torch.log_softmax(logits[0].float() / scale, dim=-1)[token])
            for logits, token in zip(output.logits, tokens, strict=False)
        ]
        return tokens, logprobs

    def update_weights(self, state: dict[str, torch.Tensor], global_steps: int | None) -> int:
        """Load the actor's weights (names as in the HF checkpoint); returns how many."""
        own = self.model.state_dict()
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise ConfigError(
                f"rollout {ROLLOUT_NAME!r}: the actor sent {len(unknown)} weight(s) the rollout "
                f"model does not have, e.g. {unknown[:3]}. Fix: the actor and the rollout must "
                f"load the same checkpoint (actor_rollout_ref.model.path)."
            )
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].dtype))
        self.global_steps = global_steps
        return len(state)

    # verl's server control surface: nothing to free or resume on the CPU.
    async def wake_up(self) -> None: ...
    async def sleep(self) -> None: ...
    async def abort_all_requests(self, reject_request: bool = False) -> None: ...
    async def resume_generation(self) -> None: ...
    async def clear_kv_cache(self) -> None: ...
    async def release_kv_cache(self) -> None: ...
    async def resume_kv_cache(self) -> None: ...
    async def start_profile(self, **kwargs: Any) -> None: ...
    async def stop_profile(self) -> None: ...


class HFServerAdapter(rollout_base.BaseRollout):
    """The rollout side of a hybrid worker: forwards the actor's weights to its server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, **kwargs: Any):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        self.replica_rank = rank  # one trainer rank per replica (world size 1)
        self.is_leader_rank = True
        self.sleep_level = 1
        self._server: Any = None

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        **kwargs: Any,
    ) -> None:
        """Send every ``(name, tensor)`` to the server as full CPU tensors."""
        if wire_format != "named_tensors":
            raise ConfigError(
                f"rollout {ROLLOUT_NAME!r} takes full weights, not {wire_format!r}. Fix: set "
                f"actor_rollout_ref.rollout.checkpoint_engine.backend=naive."
            )
        state = {}
        for name, tensor in weights:
            full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            state[name] = full.detach().to("cpu", copy=True)
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        await self._server.update_weights.remote(state, kwargs.get("global_steps"))


class HFReplica(RolloutReplica):
    """One :class:`HFRolloutServer` per hybrid replica, named by :func:`server_name`."""

    async def launch_servers(self) -> None:
        if self.world_size != 1:
            raise ConfigError(
                f"rollout {ROLLOUT_NAME!r} runs one process per replica, but the rollout's "
                f"tensor/data/pipeline parallel sizes make {self.world_size}. Fix: set "
                f"actor_rollout_ref.rollout.tensor_model_parallel_size=1."
            )
        server_class: Any = ray.remote(HFRolloutServer)
        server = server_class.options(
            name=server_name(self.replica_rank),
            num_cpus=0,
            max_concurrency=self.max_concurrency,
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{ROLLOUT_NAME}-{self.replica_rank}"


def _load_replica() -> type[RolloutReplica]:
    return HFReplica


def register() -> None:
    """Register ``codedance-hf`` with verl's rollout registries; idempotent."""
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"


register()
