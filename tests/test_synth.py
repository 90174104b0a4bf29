"""`codedance synth`: reference programs run through the real runtime, verified, exported.

The candidates run through the real codedance protocol and the local sandbox; the
annotated rows are drawn here with known answers (one broken on purpose per failure
kind). verl's real MultiTurnSFTDataset reads the parquet export with the tiny
Qwen2.5-VL processor from tests/tiny_vlm.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from codedance.commands import synth
from codedance.core.cli import invocation
from codedance.core.config import load_config
from codedance.core.discovery import load_registry
from codedance.core.errors import CodedanceError, ConfigError
from codedance.plugins import commands as builtin_commands
from codedance.rewards import score_answer
from codedance.runtime.examples import build_examples
from codedance.trainers.sft_export import export, export_sharegpt, export_verl
from codedance.trainers.synth import annotated_candidates, plan, run_synth

ALL_KINDS = {"bar_chart": 1, "count_shapes": 1, "small_tag": 1, "triangle": 1}
SQUARE = (600, 400, 680, 460)  # the red square in the scene, original pixels
CIRCLES = [[50, 50, 120, 120], [200, 80, 260, 140], [400, 300, 470, 380]]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def scene(path: Path, size: tuple[int, int] = (1000, 710)) -> Path:
    """A white image with a red square at SQUARE and blue circles at CIRCLES (scaled)."""
    sx, sy = size[0] / 1000, size[1] / 710
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([SQUARE[0] * sx, SQUARE[1] * sy, SQUARE[2] * sx, SQUARE[3] * sy], fill="red")
    for x0, y0, x1, y1 in CIRCLES:
        draw.ellipse([x0 * sx, y0 * sy, x1 * sx, y1 * sy], fill=(30, 30, 220))
    image.save(path)
    return path


def row(id: str, skill: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "question": f"Question {id}?", "image": "scene.png", "skill": skill, **fields}


ROWS = [
    row("crop-ok", "crop_zoom", box=list(SQUARE), answer="red"),
    row("crop-outside", "crop_zoom", box=[1200, 800, 1300, 900], answer="red"),
    row("count-ok", "draw_count", objects=CIRCLES),
    row("compute-ok", "compute", expression="3*sqrt(12)", answer="6\\sqrt{3}"),
    row("compute-wrong", "compute", expression="2+3", answer="6"),
    row("replot-ok", "read_replot", values={"a": 10, "b": 30}, answer="30"),
]


def annotations(folder: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    scene(folder / "scene.png")
    path = folder / "annotations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def setup() -> tuple[Any, Any]:
    # A generous execution timeout: OCR turns are slow on a busy machine.
    config = load_config(None, ("sandbox.timeout_s=60",), env={})
    return config, load_registry(env={"CODEDANCE_LOAD_PLUGINS": ""})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, setup: tuple[Any, Any]) -> Path:
    """One synth run: an example of every kind plus the annotated rows, then both exports."""
    root = tmp_path_factory.mktemp("synth")
    config, registry = setup
    out = root / "out"
    run_synth(config, registry, out, kinds=ALL_KINDS, seed=0, annotations=annotations(root / "ann"))
    export(out, ["sharegpt", "verl"])
    return out


def test_plan_is_deterministic_for_a_seed(tmp_path, setup):
    config = setup[0]
    kinds = {"small_tag": 2, "triangle": 2}

    def planned(folder: str, seed: int) -> list[tuple[Any, ...]]:
        out = tmp_path / folder
        candidates = plan(config, out, kinds=kinds, seed=seed)
        return [
            (
                c.task.id,
                c.task.question,
                c.task.answer,
                c.turns,
                Path(c.task.images[0]).read_bytes(),
            )
            for c in candidates
        ]

    first = planned("a", seed=3)
    assert first == planned("b", seed=3)
    assert [item[0] for item in first] == [
        "small_tag-3-0",
        "small_tag-3-1",
        "triangle-3-0",
        "triangle-3-1",
    ]
    assert first[0][1:] != first[1][1:], "tasks of one kind vary"
    assert [item[1:] for item in first] != [item[1:] for item in planned("c", seed=4)]
    built = {e.task.id: e.reference for e in build_examples(tmp_path / "d", seed=3, per_kind=2)}
    assert [built[item[0]] for item in first] == [item[3] for item in first]


def test_kept_trajectories_rerun_clean_and_correct(built):
    """Every kept line: stopped with an answer that scores 1, every execution clean."""
    kept = lines(built / "trajectories.jsonl")
    ids = {t["task"]["id"] for t in kept}
    assert {"crop-ok", "count-ok", "compute-ok", "replot-ok"} <= ids
    assert {t["task"]["metadata"]["skill"] for t in kept} == {
        "crop_zoom", "draw_count", "compute", "read_replot"
    }  # fmt: skip
    assert {t["task"]["metadata"]["source"] for t in kept} == {"examples", "annotations"}
    for trajectory in kept:
        task = trajectory["task"]
        assert trajectory["stop"] == "answer"
        assert score_answer(trajectory["answer"], task["answer"], task["answer_type"]) == 1.0
        executions = [turn["execution"] for turn in trajectory["turns"] if turn["execution"]]
        assert executions, "every reference program runs code"
        for execution in executions:
            assert execution["error"] is None
            assert not execution["timed_out"]


def test_annotated_crop_shows_the_box_and_count_prints_len(built):
    kept = {t["task"]["id"]: t for t in lines(built / "trajectories.jsonl")}
    crop = Image.open(built / kept["crop-ok"]["turns"][0]["execution"]["images"][0]).convert("RGB")
    mean = np.asarray(crop, dtype=float).mean(axis=(0, 1))
    assert np.allclose(mean, (255, 0, 0), atol=40), f"the zoom shows {mean}, not the red square"
    assert kept["count-ok"]["answer"] == "3"


def test_broken_reference_programs_are_rejected_with_their_reason(built):
    rejected = {r["id"]: r for r in lines(built / "rejected.jsonl")}
    assert {"compute-wrong", "crop-outside"} <= set(rejected)
    assert rejected["compute-wrong"]["reason"] == "wrong answer: got '5', want '6'"
    reason = rejected["crop-outside"]["reason"]
    assert reason.startswith("execution failed in turn 1: ValueError: box"), reason
    kept = {t["task"]["id"] for t in lines(built / "trajectories.jsonl")}
    assert not kept & set(rejected)
    summary = json.loads((built / "summary.json").read_text())
    assert summary["per_skill"]["compute"]["rejected"] >= 1
    assert {"wrong answer", "execution failed: ValueError"} <= {
        r["reason"] for r in summary["top_rejections"]
    }


def test_resume_skips_done_ids(built, tmp_path, setup):
    out = tmp_path / "out"
    shutil.copytree(built, out)
    extra = row("compute-new", "compute", expression="7*6", answer="42")
    source = annotations(tmp_path / "ann", [*ROWS, extra])
    before = (out / "trajectories.jsonl").read_text(), (out / "rejected.jsonl").read_text()
    started: list[str] = []
    run_synth(
        *setup,
        out,
        kinds=ALL_KINDS,
        annotations=source,
        resume=True,
        on_start=lambda cs: started.extend(c.task.id for c in cs),
    )
    assert started == ["compute-new"]
    kept, rejected = (out / "trajectories.jsonl").read_text(), (out / "rejected.jsonl").read_text()
    assert kept.startswith(before[0])
    assert rejected == before[1]
    assert [t["task"]["id"] for t in lines(out / "trajectories.jsonl")][-1] == "compute-new"


def test_a_second_run_without_resume_is_refused(built, setup):
    with pytest.raises(CodedanceError, match="--resume"):
        run_synth(*setup, built, kinds={"triangle": 1})


def test_sharegpt_export_pairs_placeholders_with_image_files(built):
    rows = lines(built / "sharegpt.jsonl")
    assert len(rows) == len(lines(built / "trajectories.jsonl"))
    for row_ in rows:
        roles = [m["role"] for m in row_["messages"]]
        assert roles[:2] == ["system", "user"]
        assert roles[-1] == "assistant"
        placeholders = sum(m["content"].count("<image>") for m in row_["messages"])
        assert placeholders == len(row_["images"]) >= 1
        assert row_["images"][0].startswith("inputs/")
        assert all((built / path).is_file() for path in row_["images"])
    shown = [r for r in rows if any(p.startswith("images/") for p in r["images"])]
    assert shown, "observation images are exported too"


def test_exports_escape_literal_placeholders(built, tmp_path):
    """A literal <image> in a turn's text never becomes an unpaired placeholder."""
    out = tmp_path / "out"
    shutil.copytree(built, out)
    text = (out / "trajectories.jsonl").read_text().replace("Question crop-ok?", "Is <image> ok?")
    (out / "trajectories.jsonl").write_text(text)
    for row_ in lines(export_sharegpt(out)):
        assert sum(m["content"].count("<image>") for m in row_["messages"]) == len(row_["images"])


@pytest.fixture(scope="module")
def tiny_processor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("torch")
    from transformers import AutoProcessor

    from tests.tiny_vlm import build_tiny_qwen2_5_vl

    return AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("vlm")))


@pytest.fixture
def qwen_vl_utils(monkeypatch: pytest.MonkeyPatch) -> None:
    """verl opens parquet images with qwen_vl_utils.fetch_image (verl's verl-core extra).

    Where it is not installed, a stand-in with its behaviour for an ``{"image": PIL}``
    element is used: RGB, smart-resized to multiples of 2 patches.
    """
    try:
        import qwen_vl_utils  # noqa: F401
    except ImportError:
        from codedance.runtime.images import smart_resize

        def fetch_image(element: dict[str, Any], image_patch_size: int = 14) -> Image.Image:
            image = element["image"].convert("RGB")
            height, width = smart_resize(image.height, image.width, factor=2 * image_patch_size)
            return image.resize((width, height))

        standin = types.ModuleType("qwen_vl_utils")
        standin.fetch_image = fetch_image  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "qwen_vl_utils", standin)


def test_verl_multiturn_sft_dataset_loads_the_parquet(built, tiny_processor, qwen_vl_utils):
    """verl's real dataset: images pair with their tokens; only assistant tokens are trained."""
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    tokenizer = tiny_processor.tokenizer
    settings = OmegaConf.create({"max_length": 65536, "pad_mode": "no_padding"})
    dataset = MultiTurnSFTDataset(
        str(built / "verl_sft.parquet"), tokenizer, settings, processor=tiny_processor
    )
    rows = lines(built / "sharegpt.jsonl")
    assert len(dataset) == len(rows)
    pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for index in (0, len(rows) - 1):
        item, messages = dataset[index], rows[index]["messages"]
        ids, mask = item["input_ids"], item["loss_mask"].bool()
        trained = tokenizer.decode(ids[mask])
        assistant = [m["content"] + "<|im_end|>\n" for m in messages if m["role"] == "assistant"]
        assert trained == "".join(assistant)
        grid = item["multi_modal_inputs"]["image_grid_thw"]
        assert len(grid) == len(rows[index]["images"])
        assert int((ids == pad).sum()) == int(grid.prod(-1).sum()) // 4  # 2x2 merge


def test_export_verl_writes_exactly_the_columns_verl_reads(built):
    import pyarrow.parquet as pq

    table = pq.read_table(export_verl(built, built / "again.parquet"))
    assert table.column_names == ["messages", "images"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first["images"][0]["bytes"] == (built / first["images"][0]["path"]).read_bytes()


def test_crop_box_is_scaled_to_the_resized_image(tmp_path):
    from codedance.runtime.images import ImagePolicy

    source = annotations(tmp_path, [row("c", "crop_zoom", box=[100, 50, 300, 250], answer="x")])
    (candidate,) = annotated_candidates(source, ImagePolicy(max_pixels=500 * 28 * 28 // 4))
    # 1000x710 fits 98000 pixels as 364x252: x scales by 0.364, y by 252/710.
    assert "box = [36, 18, 109, 89]" in candidate.turns[0]
    assert candidate.turns[1].endswith("<answer>x</answer>")
    assert candidate.task.answer_type == "text"


def test_annotated_row_without_its_annotation_names_the_fix(tmp_path):
    source = annotations(tmp_path, [row("c", "compute", answer="1")])
    with pytest.raises(ConfigError, match='needs an "expression"'):
        annotated_candidates(source)
    source = annotations(tmp_path, [row("c", "juggle", answer="1")])
    with pytest.raises(ConfigError, match="skill 'juggle' has no template"):
        annotated_candidates(source)


def test_kinds_accept_kinds_skills_and_counts():
    assert synth.resolve_kinds(["crop_zoom=3", "triangle"], 2) == {"small_tag": 3, "triangle": 2}
    with pytest.raises(ConfigError, match="neither a kind"):
        synth.resolve_kinds(["juggling"], 1)


def test_cli_builds_and_prints_the_summary(codedance_cli, tmp_path):
    """Annotations only, images downscaled by the runtime: the crop still shows the square."""
    folder = tmp_path / "ann"
    source = annotations(folder, [ROWS[0], ROWS[4]])
    scene(folder / "scene.png", size=(2000, 1420))  # same scene, twice the size
    rows = [{**ROWS[0], "box": [v * 2 for v in SQUARE]}, ROWS[4]]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ["-o", "runtime.image_max_pixels=250000", "synth", "--annotations", str(source)]
    result = codedance_cli(*args, "--out", str(out), "--format", "sharegpt")
    assert result.exit_code == 0, result.output
    assert "Synth summary" in result.output
    assert "Top rejection reasons" in result.output
    assert "wrong answer" in result.output
    assert "crop_zoom" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 1
    assert summary["rejected"] == 1
    assert summary["exports"] == {"sharegpt": str(out / "sharegpt.jsonl")}
    assert f"(view: {invocation()} view {out})" in result.output  # works from a new shell
    (kept,) = lines(out / "trajectories.jsonl")
    crop = Image.open(out / kept["turns"][0]["execution"]["images"][0]).convert("RGB")
    centre = crop.getpixel((crop.width // 2, crop.height // 2))
    assert np.allclose(centre, (255, 0, 0), atol=25), "the box was scaled with the image"
    again = codedance_cli(*args, "--out", str(out), "--resume", "--format", "")
    assert again.exit_code == 0, again.output
    assert len(lines(out / "trajectories.jsonl")) == 1


def test_synth_and_train_are_built_in_commands(codedance_registry):
    for name in ("synth", "train"):
        assert codedance_registry.entry("command", name).plugin.name == builtin_commands.__name__
