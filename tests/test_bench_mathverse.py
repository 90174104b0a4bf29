"""MathVerse loader: versions, prompts, both published forms, scoring by letter or math."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from codedance.core.errors import ConfigError
from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import mathverse
from codedance.plugins.benchmarks.mathverse import MathVerse, parse_choices
from codedance.runtime.types import Message, Task, Trajectory

WO = "Please directly answer the question and provide the final value, e.g., 1, 2.5, 300."
COT = (
    "Please first conduct reasoning, and then answer the question and provide the final "
    "value, e.g., 1, 2.5, 300, at the end."
)
CHOICES = "Choices:\nA:40°\nB:60°\nC:120°\nD:140°"
ANGLE = "In triangle ABC, angle A = 80.0, angle B = 60.0, DE parallel BC; angle CED is ()"


def sample(index: int, version: str, question: str, answer: str, **extra: Any) -> dict[str, Any]:
    """One sample in testmini.json's schema."""
    free = extra.pop("question_type", "free-form") == "free-form"
    head = "According to the question shown in the image, " if version == "Vision Only" else ""
    tail = "" if version == "Vision Only" else f"\nQuestion: {question}"
    subject = extra.pop("subject", "Solid Geometry")
    return {
        "sample_index": str(index),
        "problem_index": extra.pop("problem_index", "685"),
        "problem_version": version,
        "question": question,
        "image": extra.pop("image", f"images_version_6/image_{index}.png"),
        "answer": answer,
        "question_type": "free-form" if free else "multi-choice",
        "metadata": {
            "split": "testmini",
            "source": "synthetic",
            "subject": subject,
            "subfield": "Length",
        },
        "query_wo": head + (WO if free else "please directly answer the option letter.") + tail,
        "query_cot": head + (COT if free else "please reason, then give the letter.") + tail,
        "question_for_eval": question or "Find L.",
    }


def samples() -> list[dict[str, Any]]:
    """Problem 685 in the five main versions, and choice samples answered D, (B) and C\\nD."""
    versions = ["Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant"]
    rows = [
        sample(3421 + i, v, "The radius is 3 cm. Find L.", "14", image="images_version_1-4/a.png")
        for i, v in enumerate(versions)
    ]
    rows.append(sample(3425, "Vision Only", "", "14"))
    choice = {"question_type": "multi-choice", "problem_index": "1", "subject": "Plane Geometry"}
    rows.append(
        sample(
            1,
            "Text Dominant",
            f"{ANGLE}\n{CHOICES}",
            "D",
            image="images_version_1-4/b.png",
            **choice,
        )
    )
    rows.append(sample(5, "Vision Only", "", "(B)", **choice))
    rows.append(sample(6, "Vision Only", "", "C\nD", **choice))
    return rows


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (7, 5), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def json_dir(tmp_path: Path) -> Path:
    """The json layout: testmini.json, images_version_* folders, testmini_text_only.json."""
    root = tmp_path / "mathverse"
    for row in samples():
        path = root / row["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 4), "green").save(path)
    (root / "testmini.json").write_text(json.dumps(samples()), encoding="utf-8")
    text_only = [sample(1, "Text Only", f"{ANGLE}\n{CHOICES}", "D", image="")]
    text_only[0]["question_type"] = "multi-choice"
    (root / "testmini_text_only.json").write_text(json.dumps(text_only), encoding="utf-8")
    return root


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    """The Hugging Face layout: testmini.parquet with the image as {bytes, path}."""
    root = tmp_path / "hf"
    root.mkdir()
    rows = [{**row, "image": {"bytes": png("red"), "path": row["image"]}} for row in samples()]
    pq.write_table(pa.Table.from_pylist(rows), root / "testmini.parquet")
    return root


def load(data: Path, tmp_path: Path, **options: Any) -> dict[str, Task]:
    return {t.id: t for t in MathVerse(data, options).tasks(tmp_path / "out")}


def score(task: Task, prediction: str) -> float:
    trajectory = Trajectory(task, "", Message.text("user", task.question), answer=prediction)
    return MathVerse(Path(".")).score(trajectory)


def test_default_loads_only_vision_only_with_the_cot_query(
    parquet_dir: Path, tmp_path: Path
) -> None:
    tasks = load(parquet_dir, tmp_path)
    assert sorted(tasks) == ["3425", "5", "6"]
    free = tasks["3425"]
    assert free.question == "According to the question shown in the image, " + COT
    assert (free.answer, free.answer_type, free.options) == ("14", "math", None)
    assert free.metadata["category"] == "Vision Only / Solid Geometry"
    assert free.metadata["question_for_eval"] == "Find L."
    with Image.open(free.images[0]) as image:
        assert image.size == (7, 5)


def test_choice_answers_become_letters_and_odd_ones_stay_math(
    parquet_dir: Path, tmp_path: Path
) -> None:
    tasks = load(parquet_dir, tmp_path)
    assert (tasks["5"].answer, tasks["5"].answer_type) == ("B", "multiple_choice")
    assert (tasks["6"].answer, tasks["6"].answer_type) == ("C\nD", "math")


def test_all_versions_from_json_with_image_files_and_parsed_options(
    json_dir: Path, tmp_path: Path
) -> None:
    tasks = load(json_dir, tmp_path, versions="all")
    assert len(tasks) == 8
    choice = tasks["1"]
    assert choice.options == ["40°", "60°", "120°", "140°"]
    assert (choice.answer, choice.answer_type) == ("D", "multiple_choice")
    assert choice.metadata["category"] == "Text Dominant / Plane Geometry"
    assert choice.images == [str(json_dir / "images_version_1-4" / "b.png")]
    assert {t.metadata["problem_version"] for t in tasks.values()} == {
        "Text Dominant",
        "Text Lite",
        "Vision Intensive",
        "Vision Dominant",
        "Vision Only",
    }


def test_text_only_reads_its_own_file_and_has_no_image(json_dir: Path, tmp_path: Path) -> None:
    tasks = load(json_dir, tmp_path, versions=["text only"])
    assert list(tasks) == ["1"]
    assert tasks["1"].images == []
    assert tasks["1"].metadata["problem_version"] == "Text Only"


def test_prompt_option_picks_the_question_field(json_dir: Path, tmp_path: Path) -> None:
    direct = load(json_dir, tmp_path, versions="Text Lite", prompt="query_wo")
    assert direct["3422"].question == f"{WO}\nQuestion: The radius is 3 cm. Find L."
    bare = load(json_dir, tmp_path, versions="Text Lite, Vision Only", prompt="question")
    assert bare["3422"].question == "The radius is 3 cm. Find L."
    assert bare["3425"].question == ""


@pytest.mark.parametrize(
    ("sample_id", "prediction", "expected"),
    [
        ("1", "D", 1.0),
        ("1", "(D) 140°", 1.0),
        ("1", "140°", 1.0),  # the option text, read through the parsed options
        ("1", "C", 0.0),
        ("5", "B", 1.0),
        ("5", "A", 0.0),
        ("3425", "14", 1.0),
        ("3425", "\\boxed{14}", 1.0),
        ("3425", "L = 14 cm", 1.0),
        ("3425", "15", 0.0),
    ],
)
def test_scoring_by_letter_or_math(
    json_dir: Path, tmp_path: Path, sample_id: str, prediction: str, expected: float
) -> None:
    tasks = load(json_dir, tmp_path, versions="all")
    assert score(tasks[sample_id], prediction) == expected


def test_parse_choices_needs_consecutive_letters() -> None:
    assert parse_choices(f"{ANGLE}\nChoices:\n(A) 1\n(B) 2") == ["1", "2"]
    assert parse_choices("Choices:\nA. x\nC. y") is None
    assert parse_choices("no options here") is None


def test_parsed_options_that_miss_the_answer_letter_are_dropped(
    json_dir: Path, tmp_path: Path
) -> None:
    changed = samples()
    changed[5]["answer"] = "E"  # four choices listed
    (json_dir / "testmini.json").write_text(json.dumps(changed), encoding="utf-8")
    task = load(json_dir, tmp_path, versions="Text Dominant")["1"]
    assert (task.answer, task.options) == ("E", None)


def test_unknown_version_or_prompt_is_a_config_error(json_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown versions \['Vision Heavy'\].*Vision Only"):
        load(json_dir, tmp_path, versions="Vision Heavy")
    with pytest.raises(ConfigError, match=r"prompt 'query' is not one of query_cot"):
        load(json_dir, tmp_path, prompt="query")


def test_missing_data_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"no testmini\.parquet or testmini\.json found"):
        load(tmp_path, tmp_path)


def test_missing_image_file_is_reported(json_dir: Path, tmp_path: Path, data_problems) -> None:
    (json_dir / "images_version_6" / "image_3425.png").unlink()
    load(json_dir, tmp_path)
    assert data_problems.has(r"image_3425\.png' of testmini\.json item 4"), data_problems


def test_a_malformed_row_names_the_file_and_row(
    json_dir: Path, tmp_path: Path, data_problems
) -> None:
    broken = samples()
    broken[4]["question_type"] = "open"
    (json_dir / "testmini.json").write_text(json.dumps(broken), encoding="utf-8")
    load(json_dir, tmp_path)
    assert data_problems.has(r"testmini\.json item 4: question_type 'open'"), data_problems


def test_registered_as_mathverse(codedance_registry: Any) -> None:
    entry = codedance_registry.entry("benchmark", "mathverse")
    assert entry.obj is MathVerse
    assert entry.plugin.name == mathverse.__name__
