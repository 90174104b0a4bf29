"""MathVista loader (parquet and GitHub json forms) and the official answer normalisation."""

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
from codedance.plugins.benchmarks import mathvista
from codedance.plugins.benchmarks.mathvista import MathVista, normalize_extracted_answer
from codedance.runtime.types import Message, Task, Trajectory

# The official prompts, in lupantech/MathVista data/query.json's form (problem 3's question
# is an English stand-in for the published Chinese one).
QUERY_2 = (
    "Hint: Please answer the question requiring an integer answer and provide the final "
    "value, e.g., 1, 2, 3, at the end.\nQuestion: what is the total volume of the measuring "
    "cup? (Unit: g)"
)
QUERY_3 = (
    "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, "
    "D, at the end.\nQuestion: The bisectors OB and OC of triangle ABC meet at O; if angle "
    "A = 110°, angle BOC = ?\n"
    "Choices:\n(A) 135°\n(B) 140°\n(C) 145°\n(D) 150°"
)
QUERY_225 = (
    "Hint: Please answer the question requiring a Python list as an answer and provide the "
    "final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: Between which two "
    "years does the line  graph saw its maximum peak?"
)


def png(size: tuple[int, int], color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def meta(task: str, **extra: Any) -> dict[str, Any]:
    return {
        "split": "testmini",
        "language": "english",
        "img_width": 8,
        "img_height": 6,
        "source": "synthetic",
        "category": "math-targeted-vqa",
        "task": task,
        "context": "synthetic scene",
        "grade": "high school",
        "skills": ["arithmetic reasoning"],
        **extra,
    }


def problems() -> dict[str, dict[str, Any]]:
    """Four problems in testmini.json's schema: float, integer with unit, choice, list."""
    return {
        "1": {
            "question": "By what distance d is the spring compressed?",
            "image": "images/1.jpg",
            "choices": None,
            "unit": None,
            "precision": 1,
            "answer": "1.2",
            "question_type": "free_form",
            "answer_type": "float",
            "pid": "1",
            "metadata": meta("textbook question answering"),
        },
        "2": {
            "question": "what is the total volume of the measuring cup?",
            "image": "images/2.jpg",
            "choices": None,
            "unit": "g",
            "precision": None,
            "answer": "1000",
            "question_type": "free_form",
            "answer_type": "integer",
            "pid": "2",
            "metadata": meta("visual question answering", skills=["numeric commonsense"]),
        },
        "3": {
            "question": "The bisectors OB and OC of triangle ABC meet at O; "
            "if angle A = 110°, angle BOC = ?",
            "image": "images/3.jpg",
            "choices": ["135°", "140°", "145°", "150°"],
            "unit": None,
            "precision": None,
            "answer": "145°",
            "question_type": "multi_choice",
            "answer_type": "text",
            "pid": "3",
            "metadata": meta("geometry problem solving", language="chinese"),
        },
        "225": {
            "question": "Between which two years does the line  graph saw its maximum peak?",
            "image": "images/225.jpg",
            "choices": None,
            "unit": None,
            "precision": None,
            "answer": "[2014, 2016]",
            "question_type": "free_form",
            "answer_type": "list",
            "pid": "225",
            "metadata": meta("figure question answering"),
        },
    }


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    """The Hugging Face layout: data/testmini-*.parquet, images embedded, ``query`` set."""
    queries = {"1": "Hint: one decimal.\nQuestion: spring", "2": QUERY_2, "3": QUERY_3}
    queries["225"] = QUERY_225
    rows = []
    for pid, problem in problems().items():
        size = (8 + int(pid) % 5, 6)
        row = {**problem, "query": queries[pid]}
        row["precision"] = None if problem["precision"] is None else float(problem["precision"])
        row["decoded_image"] = {"bytes": png(size), "path": f"{pid}.png"}
        rows.append(row)
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.Table.from_pylist(rows), tmp_path / "data" / "testmini-00000-of-00001.parquet"
    )
    return tmp_path


@pytest.fixture
def json_dir(tmp_path: Path) -> Path:
    """The GitHub layout: testmini.json keyed by pid, images/ beside it, no query.json."""
    (tmp_path / "images").mkdir()
    for pid in problems():
        Image.new("RGB", (5, 4), "blue").save(tmp_path / "images" / f"{pid}.jpg")
    (tmp_path / "testmini.json").write_text(json.dumps(problems()), encoding="utf-8")
    return tmp_path


def load(data: Path, tmp_path: Path) -> dict[str, Task]:
    return {task.id: task for task in MathVista(data).tasks(tmp_path / "images-out")}


def score(task: Task, prediction: str, scorer: str = "lenient") -> float:
    trajectory = Trajectory(task, "", Message.text("user", task.question), answer=prediction)
    return MathVista(Path("."), {"scorer": scorer}).score(trajectory)


def test_parquet_rows_become_tasks_with_query_letter_answers_and_categories(
    parquet_dir: Path, tmp_path: Path
) -> None:
    tasks = load(parquet_dir, tmp_path)
    assert list(tasks) == ["1", "2", "3", "225"]
    choice = tasks["3"]
    assert choice.question == QUERY_3
    assert (choice.answer, choice.answer_type) == ("C", "multiple_choice")
    assert choice.options == ["135°", "140°", "145°", "150°"]
    assert choice.metadata["answer_text"] == "145°"
    assert {t.id: t.answer_type for t in tasks.values()} == {
        "1": "number",
        "2": "number",
        "3": "multiple_choice",
        "225": "text",
    }
    assert [MathVista(parquet_dir).category(t) for t in tasks.values()] == [
        "TQA",
        "VQA",
        "GPS",
        "FQA",
    ]
    assert tasks["2"].metadata["skills"] == ["numeric commonsense"]
    assert tasks["1"].metadata["precision"] == 1
    assert tasks["2"].metadata["unit"] == "g"


def test_parquet_images_are_written_once_and_readable(parquet_dir: Path, tmp_path: Path) -> None:
    tasks = load(parquet_dir, tmp_path)
    with Image.open(tasks["2"].images[0]) as image:
        assert image.size == (10, 6)
    assert load(parquet_dir, tmp_path)["2"].images == tasks["2"].images


def test_github_json_builds_the_official_query_when_query_json_is_absent(
    json_dir: Path, tmp_path: Path
) -> None:
    tasks = load(json_dir, tmp_path)
    assert tasks["2"].question == QUERY_2
    assert tasks["3"].question == QUERY_3
    assert tasks["225"].question == QUERY_225
    assert tasks["1"].question.startswith(
        "Hint: Please answer the question requiring a floating-point number with one decimal "
        "place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: By"
    )
    assert tasks["3"].images == [str(json_dir / "images" / "3.jpg")]


def test_github_json_takes_prompts_from_query_json(json_dir: Path, tmp_path: Path) -> None:
    (json_dir / "query.json").write_text(json.dumps({"3": "custom prompt"}), encoding="utf-8")
    tasks = load(json_dir, tmp_path)
    assert tasks["3"].question == "custom prompt"
    assert tasks["2"].question == QUERY_2


@pytest.mark.parametrize(
    ("pid", "prediction", "expected"),
    [
        # float, precision 1: the prediction is rounded to one decimal, then compared
        ("1", "1.2", 1.0),
        ("1", "1.23", 1.0),
        ("1", "1.15", 0.0),  # round(1.15, 1) == 1.1 in binary floating point
        ("1", "1.3", 0.0),
        ("1", "d = 1.2 m", 1.0),  # lenient: the number after "="
        # integer with a unit: truncated by int(float(x)), units and separators ignored
        ("2", "1000", 1.0),
        ("2", "1000 g", 1.0),
        ("2", "1,000", 1.0),
        ("2", "1000.7", 1.0),
        ("2", "The total volume is 999 g.", 0.0),
        ("2", "<think>it holds a litre</think><answer>1000 g</answer>", 1.0),
        # multiple choice: letters and option texts both name the option text
        ("3", "C", 1.0),
        ("3", "(C) 145°", 1.0),
        ("3", "145°", 1.0),
        ("3", "145", 1.0),  # the closest option by edit distance
        ("3", "B", 0.0),
        ("3", "140°", 0.0),
        ("3", 'The answer is "C".', 1.0),
        ("3", "", 0.0),
        # list: compared as the Python list's text
        ("225", "[2014, 2016]", 1.0),
        ("225", "[2014,2016]", 0.0),  # compared verbatim, as calculate_score.py
        ("225", "between 2014 and 2016", 1.0),
        ("225", "[2016, 2014]", 0.0),
    ],
)
def test_lenient_scoring_extracts_by_rule_then_applies_the_official_rule(
    json_dir: Path, tmp_path: Path, pid: str, prediction: str, expected: float
) -> None:
    assert score(load(json_dir, tmp_path)[pid], prediction) == expected


@pytest.mark.parametrize(
    ("pid", "prediction", "expected"),
    [
        ("1", "<answer>1.2</answer>", 1.0),
        ("1", "1.23", 1.0),  # rounded to the precision
        ("1", "d = 1.2 m", 0.0),  # float() fails: no GPT to extract 1.2
        ("2", "<think>a litre</think><answer>1000</answer>", 1.0),
        ("2", "1000.7", 1.0),  # int(float(x))
        ("2", "1,000", 0.0),
        ("3", "C", 1.0),
        ("3", "c", 0.0),  # no option letter: the closest option text, the first of ties
        ("3", "145°", 1.0),
        ("3", "B", 0.0),
        ("3", 'The answer is "C".', 1.0),  # extract_answer.py's quick rule
        ("225", "[2014, 2016]", 1.0),
        ("225", "[2014,2016]", 0.0),
    ],
)
def test_official_scoring_takes_the_answer_as_given_as_the_extraction(
    json_dir: Path, tmp_path: Path, pid: str, prediction: str, expected: float
) -> None:
    assert score(load(json_dir, tmp_path)[pid], prediction, "official") == expected


def test_a_float_answer_with_two_decimals_must_round_to_it() -> None:
    task = Task(
        "199",
        "q",
        answer="0.21",
        answer_type="number",
        metadata={
            "question_type": "free_form",
            "mathvista_answer_type": "float",
            "precision": 2,
            "answer_text": "0.21",
        },
    )
    assert score(task, "0.2108") == 1.0
    assert score(task, "0.2") == 0.0  # str(round(0.2, 2)) is "0.2", not "0.21"


@pytest.mark.parametrize(
    ("extraction", "question_type", "answer_type", "precision", "expected"),
    [
        ("(B) 140°", "multi_choice", "text", None, "140°"),
        ("B", "multi_choice", "text", None, "140°"),
        ("b", "multi_choice", "text", None, "135°"),  # lowercase is not a letter: closest text
        ("E", "multi_choice", "text", None, "135°"),  # past the options: closest text
        ("", "multi_choice", "text", None, None),
        ("3.7", "free_form", "integer", None, "3"),
        ("three", "free_form", "integer", None, None),
        ("1.456", "free_form", "float", 2, "1.46"),
        ("2", "free_form", "float", 1, "2.0"),
        ("2", "free_form", "float", None, None),
        ("[1, 2]", "free_form", "list", None, "[1, 2]"),
    ],
)
def test_normalize_extracted_answer_matches_the_official_function(
    extraction: str,
    question_type: str,
    answer_type: str,
    precision: int | None,
    expected: str | None,
) -> None:
    choices = ["135°", "140°", "145°", "150°"]
    got = normalize_extracted_answer(extraction, choices, question_type, answer_type, precision)
    assert got == expected


def test_missing_data_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError) as error:
        list(MathVista(tmp_path / "nowhere").tasks(tmp_path))
    message = str(error.value)
    assert "no data/testmini-*.parquet and no testmini.json found" in message
    assert "huggingface.co/datasets/AI4Math/MathVista" in message


def test_missing_image_file_is_reported(json_dir: Path, tmp_path: Path, data_problems) -> None:
    (json_dir / "images" / "2.jpg").unlink()
    load(json_dir, tmp_path)
    assert data_problems.has(r"image 'images/2\.jpg' of testmini\.json"), data_problems


def test_a_choice_answer_outside_the_choices_names_the_entry(
    json_dir: Path, tmp_path: Path, data_problems
) -> None:
    broken = problems()
    broken["3"]["answer"] = "120°"
    (json_dir / "testmini.json").write_text(json.dumps(broken), encoding="utf-8")
    load(json_dir, tmp_path)
    assert data_problems.has(r"testmini\.json entry '3': answer '120°'"), data_problems


def test_a_parquet_row_without_pid_names_the_file_and_row(tmp_path: Path, data_problems) -> None:
    row = {**problems()["1"], "pid": None}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "testmini-0.parquet")
    load(tmp_path, tmp_path)
    assert data_problems.has(r"testmini-0\.parquet row 0: missing field 'pid'"), data_problems


def test_registered_as_mathvista(codedance_registry: Any) -> None:
    entry = codedance_registry.entry("benchmark", "mathvista")
    assert entry.obj is MathVista
    assert entry.plugin.name == mathvista.__name__
