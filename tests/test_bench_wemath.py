"""We-Math loader, the official letter match and the four-dimensional metrics."""

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
from codedance.plugins.benchmarks import wemath
from codedance.plugins.benchmarks.wemath import (
    WeMath,
    official_letter,
    parse_options,
    wemath_metrics,
)
from codedance.runtime.types import Message, Task, Trajectory

LENGTH = "Conversion Rates and Calculations Between Length Units"
ANGLES = "Understanding Angles (Using a Protractor)"
OPTION = "A. 300, 400;B. 400, 300;C. 3000, 4000;D. 4000, 3000; E. No correct answer"


def row(group: str, key: str, number: int, answer: str, concept: str = LENGTH) -> dict:
    """One row in testmini.json's schema."""
    index = group.split("_")[1]
    part = key.split("_")[1]
    return {
        "ID": group,
        "split": "testmini",
        "knowledge concept": concept,
        "question": f"Question {number}: OA = ( ) m, AB = ( ) m",
        "option": OPTION,
        "answer": answer,
        "image_path": f"{group.split('_')[0]}/image/{index}-{'4' if part == 'multi' else part}.png",
        "key": key,
        "question number": number,
        "knowledge concept description": f"{concept}:\n1. 1 km = 1000 m",
    }


def rows() -> list[dict[str, Any]]:
    """A two-step problem (2 sub-problems + composite) and a three-step one."""
    return [
        row("2steps_1", "2steps_1", 1, "C"),
        row("2steps_1", "2steps_2", 361, "A", concept=ANGLES),
        row("2steps_1", "2steps_multi", 721, "B"),
        row("3steps_1", "3steps_1", 1081, "A"),
        row("3steps_1", "3steps_2", 1246, "D"),
        row("3steps_1", "3steps_3", 1411, "E"),
        row("3steps_1", "3steps_multi", 1576, "B"),
    ]


NODES = [
    {
        "root0": "Geometry and Figures",
        "root1": "Measurement",
        "root2": "Understanding and Conversion of Units",
        "root3": LENGTH,
        "root4": None,
        "full node": f"Measurement_Understanding and Conversion of Units_{LENGTH}",
    },
    {
        "root0": "Geometry and Figures",
        "root1": "Measurement",
        "root2": "Angles and Length",
        "root3": ANGLES,
        "root4": None,
        "full node": f"Measurement_Angles and Length_{ANGLES}",
    },
]


@pytest.fixture
def json_dir(tmp_path: Path) -> Path:
    """testmini.json, the images of testmini.zip and knowledge_structure_nodes.json."""
    root = tmp_path / "We-Math"
    for item in rows():
        path = root / item["image_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (3, 2), "white").save(path)
    (root / "testmini.json").write_text(json.dumps(rows()), encoding="utf-8")
    (root / "knowledge_structure_nodes.json").write_text(json.dumps(NODES), encoding="utf-8")
    return root


def load(data: Path, tmp_path: Path) -> dict[str, Task]:
    return {t.id: t for t in WeMath(data).tasks(tmp_path / "out")}


def score(task: Task, prediction: str, scorer: str = "official") -> float:
    trajectory = Trajectory(task, "", Message.text("user", task.question), answer=prediction)
    return WeMath(Path("."), {"scorer": scorer}).score(trajectory)


def test_rows_become_tasks_keyed_by_id_and_key(json_dir: Path, tmp_path: Path) -> None:
    tasks = load(json_dir, tmp_path)
    assert list(tasks)[:3] == ["2steps_1-2steps_1", "2steps_1-2steps_2", "2steps_1-2steps_multi"]
    assert len(tasks) == 7
    first = tasks["2steps_1-2steps_1"]
    assert first.options == [
        "300, 400",
        "400, 300",
        "3000, 4000",
        "4000, 3000",
        "No correct answer",
    ]
    assert (first.answer, first.answer_type) == ("C", "multiple_choice")
    assert first.question == (
        "Question 1: OA = ( ) m, AB = ( ) m\nOptions:\nA. 300, 400\nB. 400, 300\n"
        "C. 3000, 4000\nD. 4000, 3000\nE. No correct answer"
    )
    assert first.images == [str(json_dir / "2steps" / "image" / "1-1.png")]
    assert first.metadata["question_number"] == 1


def test_categories_are_the_official_step_levels_and_areas_come_from_nodes(
    json_dir: Path, tmp_path: Path
) -> None:
    tasks = load(json_dir, tmp_path)
    bench = WeMath(json_dir)
    assert [bench.category(t) for t in tasks.values()] == [
        "one-step",
        "one-step",
        "two-step",
        "one-step",
        "one-step",
        "one-step",
        "three-step",
    ]
    assert tasks["2steps_1-2steps_2"].metadata["area"] == "Angles and Length"
    assert tasks["2steps_1-2steps_1"].metadata["area"] == "Understanding and Conversion of Units"


def test_parquet_form_embeds_the_image_in_image_path(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), "red").save(buffer, format="PNG")
    table = [{**r, "image_path": {"bytes": buffer.getvalue(), "path": None}} for r in rows()]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "data" / "testmini-0.parquet")
    tasks = load(tmp_path, tmp_path)
    assert len(tasks) == 7
    with Image.open(tasks["3steps_1-3steps_multi"].images[0]) as image:
        assert image.size == (6, 6)
    assert tasks["3steps_1-3steps_multi"].metadata["area"] is None  # no nodes file


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("C", 1.0),
        ("C. 3000, 4000", 1.0),
        ("Answer: C", 1.0),
        ("<Thought process>: 3 km is 3000 m <Answer>: C", 1.0),
        ("<answer>C</answer>", 1.0),  # the protocol's answer field holds the answer
        ("\\boxed{C}", 0.0),  # officially: "\\" is no letter
        ("The answer is C.", 0.0),  # officially: "T" is no letter
        ("(C)", 0.0),  # the official rule reads only a leading letter
        ("c", 0.0),
        ("B", 0.0),
        ("", 0.0),
    ],
)
def test_official_letter_match(
    json_dir: Path, tmp_path: Path, prediction: str, expected: float
) -> None:
    assert score(load(json_dir, tmp_path)["2steps_1-2steps_1"], prediction) == expected


def test_lenient_letter_match_reads_the_extracted_answer(json_dir: Path, tmp_path: Path) -> None:
    task = load(json_dir, tmp_path)["2steps_1-2steps_1"]
    assert score(task, "\\boxed{C}", "lenient") == 1.0
    assert score(task, "The answer is C.", "lenient") == 1.0
    assert score(task, "(C)", "lenient") == 0.0


def test_official_letter_strips_only_angle_brackets_colons_and_dots() -> None:
    assert official_letter("reasoning... Answer:> .B") == "B"
    assert official_letter("Answer is B") is None  # "is B" starts with i
    assert official_letter("I pick D") is None


def test_parse_options_reads_the_one_string_field() -> None:
    assert parse_options("A. 3, 5, 4; B. 30, 50, 40.; C. x") == ["3, 5, 4", "30, 50, 40.", "x"]
    with pytest.raises(BenchmarkDataError, match=r"option 'A. x;C. y' is not"):
        parse_options("A. x;C. y")


def outcome(group: str, steps: int, singles: list[bool | None], composite: bool | None) -> list:
    """(task, score) pairs for one problem; None leaves that row out."""
    keys = [f"{steps}steps_{i}" for i in range(1, steps + 1)] + [f"{steps}steps_multi"]
    pairs = []
    for key, right in zip(keys, [*singles, composite], strict=True):
        if right is not None:
            task = Task(f"{group}-{key}", "q", metadata={"ID": group, "key": key})
            pairs.append((task, 1.0 if right else 0.0))
    return pairs


def scored_groups() -> list:
    T, F = True, False
    return [
        *outcome("2steps_1", 2, [T, T], T),  # complete mastery (strict and loose)
        *outcome("2steps_2", 2, [T, F], T),  # rote memorization strict, mastery loose
        *outcome("2steps_3", 2, [F, F], T),  # rote memorization (strict and loose)
        *outcome("2steps_4", 2, [T, T], F),  # inadequate generalization
        *outcome("3steps_1", 3, [T, F, T], F),  # insufficient knowledge
        *outcome("3steps_2", 3, [F, F, F], F),  # insufficient knowledge
        *outcome("2steps_5", 2, [T, T], None),  # no composite: counted, in no dimension
        *outcome("2steps_6", 2, [None, T], T),  # no first sub-problem: left out
    ]


def test_four_dimensional_metrics_follow_the_official_filters() -> None:
    metrics = wemath_metrics(scored_groups())
    assert metrics.problems == 7
    assert (metrics.insufficient_knowledge, metrics.inadequate_generalization) == (2, 1)
    assert (metrics.complete_mastery_strict, metrics.complete_mastery_loose) == (1, 2)
    assert (metrics.rote_memorization_strict, metrics.rote_memorization_loose) == (2, 1)
    assert metrics.score_strict == pytest.approx((7 - 0.5 - 2 - 2) / 7)
    assert metrics.score_loose == pytest.approx((7 - 0.5 - 1 - 2) / 7)
    assert metrics.rates() == pytest.approx(
        {
            "IK": 2 / 7,
            "IG": 1 / 7,
            "CM_strict": 1 / 7,
            "CM_loose": 2 / 7,
            "RM_strict": 2 / 3,
            "RM_loose": 1 / 3,
        }
    )
    assert (metrics.one_step, metrics.two_step, metrics.three_step) == (9 / 16, 3 / 4, 0.0)


def test_metrics_json_is_in_percent_with_counts() -> None:
    report = wemath_metrics(scored_groups()).to_json()
    assert report["score_loose"] == 50.0
    assert report["RM_strict_rate"] == 66.67
    assert report["counts"]["IK"] == 2


def test_benchmark_metrics_give_the_strict_and_loose_scores(tmp_path: Path) -> None:
    """WeMath.metrics is what `codedance eval` adds to the report: the official scores."""
    T, F = True, False
    scored = [
        *outcome("2steps_1", 2, [T, T], T),  # complete mastery
        *outcome("2steps_2", 2, [T, F], T),  # rote memorization (strict), mastery (loose)
        *outcome("3steps_1", 3, [T, T, T], F),  # inadequate generalization
    ]
    metrics = WeMath(tmp_path).metrics(scored)
    assert metrics["score_strict"] == 50.0  # (3 - 0.5 IG - 1 RM_strict - 0 IK) / 3
    assert metrics["score_loose"] == 83.33  # (3 - 0.5 IG - 0 RM_loose - 0 IK) / 3
    assert metrics["counts"] == {
        "problems": 3,
        "IK": 0,
        "IG": 1,
        "CM_strict": 1,
        "CM_loose": 2,
        "RM_strict": 1,
        "RM_loose": 0,
    }
    assert WeMath(tmp_path).metrics([]) == {}


def test_metrics_reject_tasks_of_another_benchmark() -> None:
    with pytest.raises(ValueError, match=r"task 'x' has key 'None': not a We-Math task"):
        wemath_metrics([(Task("x", "q"), 1.0)])


def test_missing_data_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError) as error:
        load(tmp_path, tmp_path)
    assert "no testmini.json and no data/testmini-*.parquet found" in str(error.value)
    assert "huggingface.co/datasets/We-Math/We-Math" in str(error.value)


def test_a_malformed_row_names_the_file_and_item(
    json_dir: Path, tmp_path: Path, data_problems
) -> None:
    broken = rows()
    broken[2]["answer"] = "G"
    (json_dir / "testmini.json").write_text(json.dumps(broken), encoding="utf-8")
    load(json_dir, tmp_path)
    assert data_problems.has(r"testmini\.json item 2: answer 'G' is not"), data_problems


def test_registered_as_wemath(codedance_registry: Any) -> None:
    entry = codedance_registry.entry("benchmark", "wemath")
    assert entry.obj is WeMath
    assert entry.plugin.name == wemath.__name__
