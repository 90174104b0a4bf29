"""``codedance data to-verl``: tasks as verl RL parquet, read back by verl's own RLHFDataset.

The rows are loaded with verl 0.9's real ``RLHFDataset`` and tokenized the way its
agent loop does (``process_multi_modal_info`` + the Continuous Token builder) with
the tiny Qwen2.5-VL processor of ``tests/tiny_vlm.py``, so a column verl misreads,
an image that is resized twice or a prompt that differs from inference fails here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from codedance.core.errors import ConfigError
from codedance.core.registry import Registry
from codedance.plugins import commands as builtin_commands
from codedance.plugins.protocols.codedance import SYSTEM
from codedance.runtime.images import smart_resize
from codedance.runtime.types import Task
from codedance.trainers.verl.data import (
    RowBuilder,
    input_images,
    split_tasks,
    task_from_extra_info,
    write_verl_parquet,
)

pytest.importorskip("pyarrow")

# The tiny processor's bounds (tests/tiny_vlm.py): 56*56 to 112*112 pixels.
CONFIG = "runtime: {image_max_pixels: 12544}\ntools: {enabled: [crop]}\n"
OVERRIDES = ("-o", "runtime.image_max_pixels=12544", "-o", "tools.enabled=[crop]")
# 100x60 is no multiple of 28: stored as 112x56 (8 merged patches); 84x84 stays (9).
SIZES = {"wide.png": ((100, 60), (112, 56)), "square.png": ((84, 84), (84, 84))}


@pytest.fixture(scope="session")
def tiny_processor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The tiny Qwen2.5-VL processor, built once per session, with the hub switched off."""
    pytest.importorskip("verl")
    pytest.importorskip("qwen_vl_utils")
    from transformers import AutoProcessor

    from tests.tiny_vlm import build_tiny_qwen2_5_vl

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        path = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("models") / "tiny-qwen2.5-vl")
        yield AutoProcessor.from_pretrained(path)


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    """Three tasks: one image, two images with options, and text only."""
    Image.new("RGB", (100, 60), (255, 0, 0)).save(tmp_path / "wide.png")
    Image.new("RGB", (84, 84), (0, 0, 255)).save(tmp_path / "square.png")
    lines = [
        {"id": "one", "question": "How many red bars?", "image": "wide.png", "answer": "3",
         "answer_type": "number", "category": "count"},
        {"id": "two", "question": "Which is blue?", "images": ["wide.png", "square.png"],
         "answer": "B", "answer_type": "choice", "options": ["left", "right"], "note": [1, 2]},
        {"id": "text", "question": "What is 2+2?", "answer": "4", "answer_type": "number"},
    ]  # fmt: skip
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def builder(codedance_registry: Registry, codedance_config: Callable[..., Any]) -> RowBuilder:
    return RowBuilder.from_config(codedance_config(CONFIG), codedance_registry, data_source="toy")


def load_rlhf(path: Path, processor: Any) -> Any:
    """verl's RLHFDataset over ``path``, with the smallest data config it reads."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {"max_prompt_length": 4096, "filter_overlong_prompts": True,
         "filter_overlong_prompts_workers": None, "cache_dir": str(path.parent / "cache")}
    )  # fmt: skip
    return RLHFDataset(str(path), processor.tokenizer, config, processor)


def tokenize_like_agent_loop(dataset: Any, row: dict[str, Any], processor: Any) -> tuple:
    """The prompt ids and processor features verl's agent loop builds for ``row``."""
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    patch = processor.image_processor.patch_size
    images, _, _ = dataset._process_multi_modal_info(row["raw_prompt"], patch, dataset.config)
    tokens = create_continuous_token_builder(
        processor.tokenizer, hf_model_type="qwen2_5_vl", processor=processor
    )
    features: dict[str, Any] = {}
    ids = tokens.build_initial_tokens(row["raw_prompt"], images=images, mm_inputs_out=features)
    return ids, images or [], features


def pad_spans(ids: list[int], pad: int) -> list[int]:
    """Lengths of the runs of ``pad`` in ``ids``."""
    spans: list[int] = []
    for previous, current in zip([None, *ids], ids, strict=False):
        if current == pad:
            spans[-1:] = [spans[-1] + 1] if previous == pad else [*spans[-1:], 1]
    return spans


def test_rows_tokenize_in_verl_with_one_image_span_per_resized_image(
    tasks_file: Path, builder: RowBuilder, tiny_processor: Any, tmp_path: Path
) -> None:
    from codedance.runtime.tasks import load_tasks

    write_verl_parquet(load_tasks(tasks_file), tmp_path / "out", builder)
    dataset = load_rlhf(tmp_path / "out" / "train.parquet", tiny_processor)
    assert len(dataset) == 3  # a row verl cannot process would be filtered out
    pad = tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    expected = {"one": [(112, 56)], "two": [(112, 56), (84, 84)], "text": []}
    for row in (dataset[i] for i in range(len(dataset))):
        sizes = expected[row["extra_info"]["task_id"]]
        ids, images, features = tokenize_like_agent_loop(dataset, row, tiny_processor)
        assert [image.size for image in images] == sizes
        assert pad_spans(ids, pad) == [(w // 28) * (h // 28) for w, h in sizes]
        if sizes:
            grid = features["image_grid_thw"].tolist()
            assert grid == [[1, h // 14, w // 14] for w, h in sizes]
            assert features["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grid)
        else:
            assert "pixel_values" not in features
        text = tiny_processor.tokenizer.decode(ids)
        assert SYSTEM in text
        assert "<answer></answer>" in text
        assert row["extra_info"]["question"] in text
        assert row["agent_name"] == "codedance"
        assert row["data_source"] == "toy"


def test_ground_truth_and_extra_info_round_trip(
    tasks_file: Path, builder: RowBuilder, tiny_processor: Any, tmp_path: Path
) -> None:
    from codedance.runtime.tasks import load_tasks

    write_verl_parquet(load_tasks(tasks_file), tmp_path / "out", builder)
    row = load_rlhf(tmp_path / "out" / "train.parquet", tiny_processor)[1]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "B"}
    info = row["extra_info"]
    assert (info["index"], info["split"], info["task_id"]) == (1, "train", "two")
    assert (info["answer"], info["answer_type"], info["options"]) == (
        "B",
        "choice",
        ["left", "right"],
    )
    assert row["index"] == 1
    assert info["codedance"]["image_sizes"] == [[112, 56], [84, 84]]
    task = task_from_extra_info(info)
    assert task == Task("two", "Which is blue?", ["input_image.jpg", "input_image_2.jpg"], "B",
                        "choice", ["left", "right"], {"note": [1, 2]})  # fmt: skip
    assert info["codedance"]["input_names"] == task.images


def test_training_prompt_and_pixels_match_what_inference_sends(
    tasks_file: Path,
    tiny_processor: Any,
    tmp_path: Path,
    codedance_registry: Registry,
    codedance_config: Callable[..., Any],
) -> None:
    """Same chat-template text, same image pixels, same sandbox input files as the Runner."""
    import asyncio

    import numpy as np

    from codedance.plugins.models.hf import render_prompt
    from codedance.runtime.build import build_runner
    from codedance.runtime.tasks import load_tasks
    from codedance.testing import HandlerSandbox, ScriptedModel

    config = codedance_config(CONFIG)
    seen: list[Any] = []

    def model(messages: Any) -> str:
        seen.append(list(messages))
        return (
            "<code>\n```python\nprint(1)\n```\n</code>" if len(seen) == 1 else "<answer>B</answer>"
        )

    sandbox = HandlerSandbox()
    runner = build_runner(config, codedance_registry, model=ScriptedModel(model), sandbox=sandbox)
    task = load_tasks(tasks_file)[1]
    asyncio.run(runner.solve(task))
    text, images = render_prompt(tiny_processor, seen[0])

    builder = RowBuilder.from_config(config, codedance_registry, data_source="toy")
    write_verl_parquet([task], tmp_path / "out", builder)
    dataset = load_rlhf(tmp_path / "out" / "train.parquet", tiny_processor)
    row = dataset[0]
    verl_text = tiny_processor.apply_chat_template(
        row["raw_prompt"], tokenize=False, add_generation_prompt=True
    )
    assert verl_text == text
    _, verl_images, _ = tokenize_like_agent_loop(dataset, row, tiny_processor)
    assert [np.asarray(a).tolist() for a in verl_images] == [np.asarray(b).tolist() for b in images]
    inputs = sandbox.opened[0].spec.images
    assert input_images(row["raw_prompt"]) == [f.data for f in inputs]
    assert row["extra_info"]["codedance"]["input_names"] == [f.name for f in inputs]


def test_stored_images_are_smart_resized_pngs(
    tasks_file: Path, builder: RowBuilder, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from codedance.runtime.tasks import load_tasks

    write_verl_parquet(load_tasks(tasks_file), tmp_path / "out", builder)
    stored = pq.read_table(tmp_path / "out" / "train.parquet").column("images").to_pylist()[1]
    for entry, name in zip(stored, ["wide.png", "square.png"], strict=True):
        (width, height), resized = SIZES[name]
        image = Image.open(io.BytesIO(entry["bytes"]))
        assert image.format == "PNG"
        assert image.size == resized
        assert smart_resize(height, width, max_pixels=12544)[::-1] == resized
        assert (entry["min_pixels"], entry["max_pixels"]) == (3136, 12544)


def test_verl_keeps_the_stored_size_even_below_qwen_default_bounds(
    tiny_processor: Any,
    tmp_path: Path,
    codedance_registry: Registry,
    codedance_config: Callable[..., Any],
) -> None:
    """The rows carry our pixel bounds, so qwen_vl_utils does not resize a 28x28 image to 56x56."""
    Image.new("RGB", (30, 30), (0, 255, 0)).save(tmp_path / "tiny.png")
    config = codedance_config(CONFIG.replace("{image_max", "{image_min_pixels: 784, image_max"))
    builder = RowBuilder.from_config(config, codedance_registry, data_source="toy")
    task = Task("tiny", "What colour?", [str(tmp_path / "tiny.png")], "green")
    write_verl_parquet([task], tmp_path / "out", builder)
    dataset = load_rlhf(tmp_path / "out" / "train.parquet", tiny_processor)
    _, images, _ = tokenize_like_agent_loop(dataset, dataset[0], tiny_processor)
    assert [image.size for image in images] == [(28, 28)]


def test_split_ratio_shuffle_and_limit() -> None:
    tasks = [Task(str(i), "q", answer="1") for i in range(10)]
    train, val = split_tasks(tasks, 0.8)
    assert [t.id for t in train] == [str(i) for i in range(8)]
    assert len(val) == 2
    shuffled, _ = split_tasks(tasks, 0.5, shuffle=True, seed=3)
    assert shuffled == split_tasks(tasks, 0.5, shuffle=True, seed=3)[0] != tasks[:5]
    train, val = split_tasks(tasks, 0.5, limit=4)
    assert (len(train), len(val)) == (2, 2)
    assert split_tasks(tasks)[1] == []


@pytest.mark.parametrize(
    ("ratio", "limit", "message"),
    [(0.0, None, "in (0, 1]"), (1.5, None, "in (0, 1]"), (0.1, 2, "leaves none"),
     (1.0, 0, "--limit")],
)  # fmt: skip
def test_bad_split_settings_are_explained(ratio: float, limit: int | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        split_tasks([Task("a", "q", answer="1")] * 3, ratio, limit=limit)


def test_val_file_written_for_the_rest_and_removed_when_none(
    tasks_file: Path, builder: RowBuilder, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from codedance.runtime.tasks import load_tasks

    out = tmp_path / "out"
    assert write_verl_parquet(load_tasks(tasks_file), out, builder, split_ratio=0.6) == {
        "train": 2,
        "val": 1,
    }
    val = pq.read_table(out / "val.parquet").column("extra_info").to_pylist()
    assert [(v["task_id"], v["split"], v["index"]) for v in val] == [("text", "val", 0)]
    assert write_verl_parquet(load_tasks(tasks_file), out, builder) == {"train": 3}
    assert not (out / "val.parquet").exists()
    assert not list(out.glob("*.partial"))


def test_unanswered_task_bad_image_and_placeholder_text_are_errors(
    builder: RowBuilder, tasks_file: Path
) -> None:
    image = str(tasks_file.parent / "wide.png")
    with pytest.raises(ConfigError, match="'open' has no answer"):
        builder.row(Task("open", "Why?"), 0, "train")
    with pytest.raises(ConfigError, match="'odd': verl reads '<video>'"):
        builder.row(Task("odd", "Pick", [image], "A", options=["a <video> b"]), 0, "train")
    with pytest.raises(ConfigError, match="'bad': cannot read image"):
        builder.row(Task("bad", "Pick", [str(tasks_file)], "A"), 0, "train")
    text_only = builder.row(Task("plain", "Is <image> a tag?", answer="yes"), 0, "train")
    assert "<image>" not in text_only["prompt"][1]["content"]  # stripped, as inference does


def test_rows_from_other_datasets_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="codedance data to-verl"):
        task_from_extra_info({"index": 0})
    with pytest.raises(ConfigError, match="neither 'bytes' nor"):
        input_images([{"role": "user", "content": [{"type": "image", "image": "a.png"}]}])
    red = Image.new("RGB", (28, 28), (255, 0, 0))
    assert input_images([{"role": "user", "content": [{"type": "image", "image": red}]}])


# -- the command line ---------------------------------------------------------------------


def test_cli_writes_train_and_val_from_a_tasks_file(
    tasks_file: Path,
    codedance_cli: Callable,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "verl"
    args = ("data", "to-verl", "--tasks", str(tasks_file), "--out", str(out), "--shuffle")
    result = codedance_cli(*OVERRIDES, *args, "--seed", "2", "--split-ratio", "0.6")
    assert result.exit_code == 0, result.output
    assert f"{out / 'train.parquet'}: 2 rows" in result.output
    assert f"{out / 'val.parquet'}: 1 rows" in result.output
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert {r["data_source"] for r in rows} == {"toy"}
    assert all(r["prompt"][0]["content"].startswith(SYSTEM) for r in rows)


def test_cli_converts_the_synthetic_benchmark(codedance_cli: Callable, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "verl"
    result = codedance_cli(
        *OVERRIDES, "data", "to-verl", "--benchmark", "synthetic", "--data", str(tmp_path / "gen"),
        "--option", "per_kind=1", "--limit", "3", "--out", str(out), "--agent-name", "mine",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert len(rows) == 3
    assert {r["data_source"] for r in rows} == {"synthetic"}
    assert {r["agent_name"] for r in rows} == {"mine"}
    for row in rows:
        for width, height in row["extra_info"]["codedance"]["image_sizes"]:
            assert width % 28 == 0
            assert height % 28 == 0
            assert width * height <= 12544
        assert row["reward_model"]["ground_truth"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--tasks", "missing.jsonl"), 1, "tasks file 'missing.jsonl' does not exist"),
        (("--benchmark", "nope", "--data", "."), 1, "no benchmark named 'nope'"),
        (("--benchmark", "synthetic"), 2, "needs --data"),
        ((), 2, "either --tasks FILE or --benchmark"),
    ],
)
def test_cli_explains_bad_sources(
    args: tuple[str, ...],
    code: int,
    message: str,
    codedance_cli: Callable,
    tmp_path: Path,
) -> None:
    result = codedance_cli("data", "to-verl", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == code
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_the_data_command_is_built_in(codedance_registry: Registry) -> None:
    assert codedance_registry.entry("command", "data").plugin.name == builtin_commands.__name__
