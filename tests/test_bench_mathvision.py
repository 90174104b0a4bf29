"""MATH-Vision loader: jsonl and parquet forms, options, letters, subjects, scoring."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import mathvision
from codedance.plugins.benchmarks.mathvision import MathVision, question_text
from codedance.plugins.benchmarks.mathvision_official import official_answer, official_equal
from codedance.runtime.types import Message, Task, Trajectory

LETTERS = ["A", "B", "C", "D", "E"]
COLOURS = ["red", "blue", "green", "Yellow", "This cannot be worked out for certain."]


def problem(pid: str, question: str, options: list[str], answer: str, **extra: Any) -> dict:
    """One problem in data/testmini.jsonl's schema."""
    return {
        "id": pid,
        "question": question,
        "options": options,
        "answer": answer,
        "solution": extra.get("solution"),
        "level": extra.get("level", 2),
        "subject": extra.get("subject", "arithmetic"),
        "image": f"images/{pid}.jpg",
    }


def problems() -> list[dict[str, Any]]:
    return [
        problem(
            "1", "Which number should be written in place of the question mark?\n<image1>", [], "60"
        ),
        problem("2", "Which bike is most expensive?\n<image1>", LETTERS, "A", level=1),
        problem("7", "What colour is the hidden ball?\n<image1>", COLOURS, "B", subject="logic"),
        problem(
            "9",
            "What fraction of the square is shaded?\n<image1>",
            [],
            "\\frac{1}{2}",
            subject="metric geometry - area",
            level=5,
            solution="Half of it.",
        ),
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def jsonl_dir(tmp_path: Path) -> Path:
    """The GitHub layout: data/testmini.jsonl and images/ at the repository root."""
    root = tmp_path / "MATH-V"
    write_jsonl(root / "data" / "testmini.jsonl", problems())
    (root / "images").mkdir()
    for row in problems():
        Image.new("RGB", (9, 3), "white").save(root / row["image"])
    return root


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    """The Hugging Face layout: data/testmini-*.parquet with decoded_image bytes."""
    rows = []
    for row in problems():
        buffer = io.BytesIO()
        Image.new("RGB", (4, int(row["id"])), "black").save(buffer, format="PNG")
        rows.append({**row, "decoded_image": {"bytes": buffer.getvalue(), "path": None}})
    root = tmp_path / "hf"
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "testmini-00000-of-00001.parquet")
    return root


def load(data: Path, tmp_path: Path, **options: Any) -> dict[str, Task]:
    return {t.id: t for t in MathVision(data, options).tasks(tmp_path / "out")}


def score(task: Task, prediction: str, scorer: str = "lenient") -> float:
    trajectory = Trajectory(task, "", Message.text("user", task.question), answer=prediction)
    return MathVision(Path("."), {"scorer": scorer}).score(trajectory)


def test_jsonl_problems_become_tasks(jsonl_dir: Path, tmp_path: Path) -> None:
    tasks = load(jsonl_dir, tmp_path)
    assert list(tasks) == ["1", "2", "7", "9"]
    assert (tasks["1"].answer, tasks["1"].answer_type, tasks["1"].options) == ("60", "math", None)
    assert (tasks["2"].answer, tasks["2"].answer_type) == ("A", "multiple_choice")
    assert tasks["2"].options == LETTERS
    assert tasks["7"].options == COLOURS
    assert [MathVision(jsonl_dir).category(t) for t in tasks.values()] == [
        "arithmetic",
        "arithmetic",
        "logic",
        "metric geometry - area",
    ]
    assert tasks["9"].metadata["level"] == 5
    assert tasks["9"].metadata["solution"] == "Half of it."
    assert tasks["2"].images == [str(jsonl_dir / "images" / "2.jpg")]


def test_options_are_listed_only_when_they_are_not_bare_letters(
    jsonl_dir: Path, tmp_path: Path
) -> None:
    tasks = load(jsonl_dir, tmp_path)
    assert tasks["2"].question == "Which bike is most expensive?\n<image1>"
    assert tasks["7"].question == (
        "What colour is the hidden ball?\n<image1>\n(A) red\n(B) blue\n(C) green\n(D) Yellow\n"
        "(E) This cannot be worked out for certain."
    )
    assert question_text("Q", []) == "Q"


def test_parquet_images_are_embedded_and_readable(parquet_dir: Path, tmp_path: Path) -> None:
    tasks = load(parquet_dir, tmp_path)
    assert sorted(tasks) == ["1", "2", "7", "9"]
    with Image.open(tasks["7"].images[0]) as image:
        assert image.size == (4, 7)


@pytest.mark.parametrize(
    ("pid", "prediction", "expected"),
    [
        ("1", "60", 1.0),
        ("1", "The answer is \\boxed{60}.", 1.0),
        ("1", "59", 0.0),
        ("2", "A", 1.0),
        ("2", "(A)", 1.0),
        ("2", "B", 0.0),
        ("7", "blue", 1.0),  # the option text names option B
        ("7", "(B) blue", 1.0),
        ("7", "red", 0.0),
        ("9", "0.5", 1.0),
        ("9", "\\dfrac{1}{2}", 1.0),
        ("9", "1/3", 0.0),
    ],
)
def test_lenient_scoring_by_letter_or_math(
    jsonl_dir: Path, tmp_path: Path, pid: str, prediction: str, expected: float
) -> None:
    assert score(load(jsonl_dir, tmp_path)[pid], prediction) == expected


@pytest.mark.parametrize(
    ("pid", "prediction", "expected"),
    [
        ("1", "<answer>60</answer>", 1.0),
        ("1", "The answer is \\boxed{60}.", 1.0),
        ("1", "<answer>60.004</answer>", 1.0),  # equal rounded to 2 decimals
        ("1", "<answer>x = 60</answer>", 1.0),  # the value after "="
        ("1", "<answer>60 apples</answer>", 0.0),  # extra text: latex2sympy fails
        ("2", "<answer>A</answer>", 1.0),
        ("2", "<answer>(A)</answer>", 1.0),  # "(a)" becomes "a"
        ("2", "<answer>B</answer>", 0.0),
        ("7", "<answer>blue</answer>", 1.0),  # the right option's text
        ("7", "<answer>(B) blue</answer>", 0.0),  # "bblue": officially wrong
        ("9", "<answer>0.5</answer>", 1.0),
        ("9", "<answer>\\dfrac{1}{2}</answer>", 1.0),
        ("9", "<answer>1/3</answer>", 0.0),
    ],
)
def test_official_scoring_is_evaluate_py(
    jsonl_dir: Path, tmp_path: Path, pid: str, prediction: str, expected: float
) -> None:
    assert score(load(jsonl_dir, tmp_path)[pid], prediction, "official") == expected


def test_official_equal_rounds_values_to_two_decimals() -> None:
    assert official_equal("0.33", "\\frac{1}{3}")
    assert official_equal("(0.33,1)", "(\\frac{1}{3},1)")
    assert not official_equal("0.3", "\\frac{1}{3}")
    assert not official_equal("x+1", "1+x")  # not numbers: text only, as officially
    assert official_answer("The answer is 5.") == "5"
    assert official_answer("so \\boxed{\\frac12}") == "\\frac12"  # fixed only beside sqrt
    assert official_equal("\\frac12", "0.5")


def test_split_option_reads_the_test_file(jsonl_dir: Path, tmp_path: Path) -> None:
    write_jsonl(jsonl_dir / "data" / "test.jsonl", problems()[:1])
    assert list(load(jsonl_dir, tmp_path, split="test")) == ["1"]


def test_missing_data_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError) as error:
        load(tmp_path, tmp_path)
    assert "no data/testmini-*.parquet and no testmini.jsonl found" in str(error.value)
    assert "huggingface.co/datasets/MathLLMs/MathVision" in str(error.value)


def test_a_broken_line_is_named(jsonl_dir: Path, tmp_path: Path) -> None:
    path = jsonl_dir / "data" / "testmini.jsonl"
    path.write_text(path.read_text().replace('"id": "2"', '"id": 2,,'), encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"testmini\.jsonl line 2: not valid JSON"):
        load(jsonl_dir, tmp_path)


def test_a_choice_answer_past_the_options_is_named(
    jsonl_dir: Path, tmp_path: Path, data_problems
) -> None:
    rows = problems()
    rows[1]["options"] = ["A", "B"]
    rows[1]["answer"] = "D"
    write_jsonl(jsonl_dir / "data" / "testmini.jsonl", rows)
    load(jsonl_dir, tmp_path)
    assert data_problems.has(r"line 2: answer 'D' is not the letter of one"), data_problems


def test_missing_image_is_reported(jsonl_dir: Path, tmp_path: Path, data_problems) -> None:
    (jsonl_dir / "images" / "9.jpg").unlink()
    loaded = load(jsonl_dir, tmp_path)
    assert data_problems.has(r"image 'images/9\.jpg' of testmini\.jsonl line 4"), data_problems
    assert "9" not in loaded


def test_registered_as_mathvision(codedance_registry: Any) -> None:
    entry = codedance_registry.entry("benchmark", "mathvision")
    assert entry.obj is MathVision
    assert entry.plugin.name == mathvision.__name__


def test_a_symbolic_gold_with_spaces_fails_even_itself_as_officially() -> None:
    """MATH-V test id 2866: evaluate.py scores its own gold 0 (checked with the official code)."""
    gold = "$\\pi-\\tan ^{-1}\\left(\\frac{1}{d}\\right)$"
    task = Task("2866", "q", answer=gold, answer_type="math")
    assert score(task, f"<answer>{gold}</answer>", "official") == 0.0
    assert score(task, f"<answer>{gold}</answer>", "lenient") == 1.0
