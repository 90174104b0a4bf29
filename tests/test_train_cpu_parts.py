"""The CPU profile's parts, each against the real thing and in seconds (no Ray cluster).

- the ``cpu`` platform, loaded as verl loads it (``VERL_USE_EXTERNAL_MODULES`` in a
  fresh interpreter): verl's device helpers, engine registry and process group;
- the ``codedance-hf`` rollout server on a real tiny Qwen2.5-VL: logprobs against the
  model's own forward pass, vision tokens never sampled, weight updates applied;
- ``codedance train --dry-run --device cpu``: composed and validated by verl's schema.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("verl")
torch = pytest.importorskip("torch")


def test_verl_loads_the_cpu_platform_in_a_fresh_process() -> None:
    script = """
import os, torch.distributed as dist
import verl  # imports VERL_USE_EXTERNAL_MODULES first
from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device, get_device_id
from verl.utils.distributed import initialize_global_process_group_ray
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
import torch
assert get_device_name() == "cpu" and get_nccl_backend() == "gloo"
assert get_device_id() == torch.device("cpu")
get_torch_device().empty_cache(); get_torch_device().synchronize()
assert get_torch_device().mem_get_info()[1] > 0
assert EngineRegistry.get_engine_cls("language_model", "fsdp2") is FSDPEngineWithLMHead
initialize_global_process_group_ray()
print(dist.get_backend(), dist.get_world_size())
"""
    env = {
        **os.environ,
        "VERL_PLATFORM": "cpu",
        "VERL_USE_EXTERNAL_MODULES": "codedance.trainers.verl.platform",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(29500 + os.getpid() % 1000),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["gloo", "1"]


def test_without_verl_platform_the_module_changes_nothing() -> None:
    script = (
        "import verl\nfrom verl.utils.device import get_device_name\nprint(get_device_name())\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "codedance.trainers.verl.platform"}
    env.pop("VERL_PLATFORM", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() != "cpu"  # never auto-detected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codedance.trainers.verl.tiny import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("models") / "tiny")


def _server(path: Path) -> Any:
    from codedance.trainers.verl.rollout import HFRolloutServer

    model_config = SimpleNamespace(path=str(path), local_path=str(path), trust_remote_code=False)
    return HFRolloutServer(SimpleNamespace(seed=0), model_config)


def _prompt(server: Any) -> tuple[list[int], list[Any]]:
    from PIL import Image

    image = Image.new("RGB", (84, 84), (30, 120, 200))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = server.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    ids = server.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0]
    return ids.tolist(), [image]


def test_the_hf_server_returns_the_models_own_logprobs(tiny: Path) -> None:
    server = _server(tiny)
    prompt, images = _prompt(server)
    params = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 6}
    output = asyncio.run(server.generate(prompt, params, "r1", image_data=images))
    assert len(output.token_ids) == len(output.log_probs) == 6
    assert output.extra_fields["global_steps"] is None
    # the same numbers from one forward pass over prompt + response, logits / temperature
    inputs = server._inputs(prompt + output.token_ids, images, None)
    with torch.no_grad():
        logits = server.model(**inputs).logits[0, len(prompt) - 1 : -1].float() / 0.7
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(output.token_ids)[:, None])
    assert torch.allclose(torch.tensor(output.log_probs), expected[:, 0], atol=1e-4)


def test_the_hf_server_never_samples_a_vision_token(tiny: Path) -> None:
    server = _server(tiny)
    vision = list(server.suppress)
    image_pad = server.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert image_pad in vision
    # make the vision tokens the model's overwhelming favourites: a constant feature in
    # every embedding (the final norm keeps it) that only their output rows read
    with torch.no_grad():
        server.model.get_input_embeddings().weight[:, 0] = 50.0
        server.model.lm_head.weight[:, 0] = 0.0
        server.model.lm_head.weight[vision, 0] = 3.0
    prompt, images = _prompt(server)
    params = {"temperature": 1.0, "max_tokens": 8}
    output = asyncio.run(server.generate(prompt, params, "r2", image_data=images))
    assert len(output.token_ids) == 8
    assert not set(output.token_ids) & set(vision)
    server.suppress = []  # the control: unmasked, the same model samples them
    unmasked = asyncio.run(server.generate(prompt, params, "r3", image_data=images))
    assert set(unmasked.token_ids) & set(vision)


def test_the_hf_server_loads_the_actors_weights(tiny: Path) -> None:
    from codedance.core.errors import ConfigError

    server = _server(tiny)
    prompt, images = _prompt(server)
    greedy = {"temperature": 0, "max_tokens": 4}
    before = asyncio.run(server.generate(prompt, greedy, "a", image_data=images))
    state = {name: torch.randn_like(value) for name, value in server.model.state_dict().items()}
    assert server.update_weights(state, global_steps=3) == len(state)
    after = asyncio.run(server.generate(prompt, greedy, "b", image_data=images))
    assert after.extra_fields["global_steps"] == 3
    assert after.log_probs != before.log_probs
    with pytest.raises(ConfigError, match="does not have"):
        server.update_weights({"not.a.weight": torch.zeros(1)}, global_steps=4)


def test_dry_run_on_the_cpu_composes_the_cpu_profile(codedance_cli, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        f"training:\n  model_path: {tmp_path}\n  train_files: [{tmp_path / 'x.parquet'}]\n"
        f"  gpus_per_node: 1\n  output_dir: {tmp_path / 'out'}\n"
    )
    result = codedance_cli("--config", str(config), "train", "--dry-run", "--device", "cpu")
    assert result.exit_code == 0, result.output
    composed = (tmp_path / "out" / "verl_config.yaml").read_text()
    for expected in (
        "device: cpu",
        "strategy: fsdp2",
        "use_remove_padding: false",
        "attn_implementation: sdpa",
        "name: codedance-hf",
        "VERL_PLATFORM: cpu",
        "num_gpus: 1",
    ):
        assert expected in composed, expected
    assert "actor_rollout_ref.rollout.name=vllm" not in result.output


def test_the_hf_model_backend_runs_a_tiny_qwen3_vl(tmp_path: Path) -> None:
    """Qwen3-VL (deepstack, 16-px patches) through ``codedance run``'s hf backend."""
    from PIL import Image

    from codedance.core.config import ModelConfig
    from codedance.plugins.models.hf import HFModel, load_processor, render_prompt
    from codedance.runtime.types import Message, Part
    from codedance.trainers.verl.tiny import PRIMER_RESPONSES, build_tiny_qwen3_vl

    path = build_tiny_qwen3_vl(tmp_path / "qwen3", primed=True)
    config = ModelConfig(backend="hf", name=str(path), options={"device": "cpu"}, max_new_tokens=6)
    red, blue = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (96, 64), (0, 0, 255))
    prompt = [Message("user", [Part.of_image(red), Part.of_text("Which?"), Part.of_image(blue)])]
    generation = asyncio.run(HFModel(config).generate(prompt))

    processor = load_processor(str(path))
    text, images = render_prompt(processor, prompt)
    encoded = processor(text=[text], images=images, return_tensors="pt")
    pads = int(
        (encoded["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()
    )
    merged = sum(int(grid.prod()) // 4 for grid in encoded["image_grid_thw"])
    assert pads == merged == 4 + 6  # 64x64 -> 2x2 merged patches of 32 px, 96x64 -> 3x2
    assert generation.prompt_tokens == encoded["input_ids"].shape[1]
    assert any(turn in generation.text for turn in PRIMER_RESPONSES)  # the primed policy


def test_smoke_builds_the_configured_architecture_or_says_why_not(tmp_path: Path) -> None:
    from codedance.core.errors import ConfigError
    from codedance.trainers.verl.smoke import _architecture
    from codedance.trainers.verl.tiny import build_tiny, build_tiny_qwen3_vl

    assert _architecture(None) == "qwen2_5_vl"
    assert _architecture(str(build_tiny_qwen3_vl(tmp_path / "policy"))) == "qwen3_vl"
    with pytest.raises(ConfigError, match=r"training.model_path .*nowhere.*config.json"):
        _architecture(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="no tiny model for architecture 'llava'"):
        build_tiny(tmp_path / "x", "llava")


def test_smoke_takes_the_first_rows_of_the_configured_train_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from codedance.core.config import Config
    from codedance.core.errors import ConfigError
    from codedance.trainers.verl.smoke import PROMPTS, _rows

    source = tmp_path / "train.parquet"
    pq.write_table(pa.table({"data_source": ["a", "b", "c"], "n": [1, 2, 3]}), source)
    config = Config.model_validate({"training": {"train_files": [str(source)]}})
    (tmp_path / "one").mkdir()
    rows = pq.read_table(_rows(config, None, tmp_path / "one"))  # type: ignore[arg-type]
    assert rows.column("n").to_pylist() == [1, 2][:PROMPTS]
    pq.write_table(pa.table({"n": [1]}), source)
    (tmp_path / "two").mkdir()
    with pytest.raises(ConfigError, match="has 1 row"):
        _rows(config, None, tmp_path / "two")  # type: ignore[arg-type]
