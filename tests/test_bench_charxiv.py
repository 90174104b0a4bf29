"""The charxiv loader reads CharXiv's GitHub json + images and judges answers by rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import charxiv
from codedance.plugins.benchmarks.charxiv import CharXivBenchmark, judge
from codedance.runtime.types import Message, Task, Trajectory

REASONING = {
    "0": {"figure_id": 0, "query": "Which model declines most?", "answer": "Joint-CNN",
          "inst_category": 1, "qa_source": 1},
    "2": {"figure_id": 2, "query": "Which cluster is closest?", "answer": "right cluster",
          "inst_category": 2, "qa_source": 2},
    "5": {"figure_id": 5, "query": "What is the accuracy at epoch 60?", "answer": "94",
          "inst_category": 3, "qa_source": 2},
    "7": {"figure_id": 7, "query": "How much does the accuracy decrease?", "answer": "9.17",
          "inst_category": 4, "qa_source": 3},
}  # fmt: skip
DESCRIPTIVE = {
    "0": {"figure_id": 0, "num_subplots": 2, "subplot_loc": [1, 2], "qids": [7, 13, 11, 18],
          "answers": ["60", "Ft-CNN, iCaRL*", "Yes", "1 by 2"]},
    "2": {"figure_id": 2, "num_subplots": 1, "subplot_loc": [0, 0], "qids": [1, 10, 19, 16],
          "answers": ["Not Applicable", "3", "1", "increases"]},
    "5": {"figure_id": 5, "num_subplots": 3, "subplot_loc": "the bottom subplot",
          "qids": [2, 4, 14, 12], "answers": ["W_H", "10^-6", "Not Applicable", "4"]},
    "7": {"figure_id": 7, "num_subplots": 1, "subplot_loc": [0, 0], "qids": [3, 5, 8, 17],
          "answers": ["Accuracy (%)", "(a)", "0.1", "14"]},
}  # fmt: skip
METADATA = {key: {"category": "cs", "year": "20", "figure_path": f"x/{key}.jpg"} for key in "0257"}


def write_release(root: Path) -> Path:
    """The CharXiv repo layout: data/*.json and images/<figure_id>.jpg."""
    (root / "data").mkdir(parents=True)
    (root / "images").mkdir()
    for name, content in (
        ("reasoning_val.json", REASONING),
        ("descriptive_val.json", DESCRIPTIVE),
        ("image_metadata_val.json", METADATA),
    ):
        (root / "data" / name).write_text(json.dumps(content, indent=4))
    for key in "0257":
        Image.new("RGB", (16, 12), (int(key) * 30, 0, 0)).save(root / "images" / f"{key}.jpg")
    return root


def load(data: Path, **options: str) -> list[Task]:
    return list(CharXivBenchmark(data, options).tasks(data / "out"))


def score(task: Task, response: str) -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", ""), answer=response)
    return CharXivBenchmark(Path(".")).score(trajectory)


def test_reasoning_is_the_default_subset(tmp_path: Path) -> None:
    tasks = load(write_release(tmp_path / "CharXiv"))
    assert [t.id for t in tasks] == ["0", "2", "5", "7"]
    assert [t.answer for t in tasks] == ["Joint-CNN", "right cluster", "94", "9.17"]
    assert [t.metadata["category"] for t in tasks] == [
        "Text-in-Chart", "Text-in-General", "Number-in-Chart", "Number-in-General",
    ]  # fmt: skip
    assert [t.answer_type for t in tasks] == ["text", "text", "number", "number"]
    assert tasks[0].metadata["raw_question"] == "Which model declines most?"
    assert tasks[0].metadata["subject"] == "cs"
    assert tasks[0].metadata["year"] == "20"
    assert Path(tasks[1].images[0]) == tmp_path / "CharXiv" / "images" / "2.jpg"
    assert Image.open(tasks[1].images[0]).size == (16, 12)


def test_reasoning_questions_carry_the_official_instructions(tmp_path: Path) -> None:
    text, general, number, decimals = load(write_release(tmp_path / "CharXiv"))
    assert text.question.startswith("Which model declines most?\n* Your final answer must be")
    assert "separate them with commas" in text.question
    assert "If there are options in the question" in general.question
    assert "grounded to a number that is exlicitly written" in number.question  # sic
    assert decimals.question == (
        "How much does the accuracy decrease?\n"
        "* Your final answer must be a number with 2 decimal places."
    )


def test_descriptive_subset(tmp_path: Path) -> None:
    tasks = load(write_release(tmp_path / "CharXiv"), subset="descriptive")
    assert len(tasks) == 16
    assert [t.id for t in tasks[:4]] == ["0_0", "0_1", "0_2", "0_3"]
    first, legend, intersect, layout = tasks[:4]
    assert first.question.startswith(
        "For the subplot at row 1 and column 2, what is the spatially highest labeled tick"
    )
    assert layout.question.startswith("What is the layout of the subplots?\n")
    assert tasks[4].question.startswith("For the current plot, what is its title?")
    assert tasks[8].question.startswith("For the bottom subplot, what is the label of the x-axis")
    assert [t.metadata["category"] for t in tasks[:4]] == [
        "Information Extraction", "Enumeration", "Pattern Recognition", "Pattern Recognition",
    ]  # fmt: skip
    assert tasks[15].metadata["category"] == "Compositionality"
    assert (legend.answer, intersect.answer_type) == ("Ft-CNN, iCaRL*", "yes_no")
    assert all(t.images == [str(tmp_path / "CharXiv" / "images" / "0.jpg")] for t in tasks[:4])


def test_test_split_has_no_answers(tmp_path: Path) -> None:
    root = write_release(tmp_path / "CharXiv")
    nulls = {k: v | {"answer": None} for k, v in REASONING.items()}
    (root / "data" / "reasoning_test.json").write_text(json.dumps(nulls))
    tasks = load(root, split="test")
    assert [t.answer for t in tasks] == [None] * 4
    assert tasks[3].question.endswith("must be an exact integer.")
    assert score(tasks[0], "<answer>Joint-CNN</answer>") == 0.0


def test_reasoning_scoring_follows_each_rubric(tmp_path: Path) -> None:
    text, general, number, decimals = load(write_release(tmp_path / "CharXiv"))
    assert score(text, "The model is <answer>joint-cnn</answer>") == 1.0
    assert score(text, "<answer>Joint CNN+</answer>") == 0.0
    assert score(general, "<answer>The right cluster.</answer>") == 1.0
    assert score(general, "<answer>left cluster</answer>") == 0.0
    assert score(number, "<answer>94.0</answer>") == 1.0
    assert score(number, "<answer>94.5</answer>") == 0.0  # exact value, no tolerance band
    assert score(decimals, "The drop is 9.17 points.") == 1.0
    assert score(decimals, "<answer>9.2</answer>") == 0.0


@pytest.mark.parametrize(
    ("prediction", "answer", "rule", "expected"),
    [
        ("b", "(b)", "terms", True),  # CharXiv's own rubric example
        ("P55762", "P56962", "terms", False),  # likewise
        ("$\\alpha$", "\u03b1", "terms", True),
        ("\u03bb_L=0.13", "lambda_L = 0.13", "terms", True),
        ("SRLSTM, MomentumLSTM", "MomentumLSTM, SRLSTM", "terms", True),
        ("P=101", "P-101", "terms", False),
        ("1.5e3", "1500", "number", True),
        ("10^-2", "0.01", "number", True),
        ("0.012", "0.01", "number", False),
        ("1.0", "1.00", "term", True),
        ("A_v^t", "Increment over time", "term", False),
        ("B, A, C", "B, A, C", "ordered_terms", True),
        ("A, B, C", "B, A, C", "ordered_terms", False),
        ("No, all the lines are parallel.", "Yes", "yes_no", False),
        ("there are two rows and three columns", "2 by 3", "layout", True),
        ("2 by 3", "3 by 2", "layout", False),
        ("increases", "increases then stabilizes", "phrase", False),
        ("There is no title: Not Applicable", "Not Applicable", "term", True),
        ("0", "Not Applicable", "number", False),
        ("Not Applicable", "4", "number", False),
    ],
)
def test_judge_rules(prediction: str, answer: str, rule: str, expected: bool) -> None:
    assert judge(prediction, answer, rule) is expected


def test_descriptive_scoring(tmp_path: Path) -> None:
    tasks = load(write_release(tmp_path / "CharXiv"), subset="descriptive")
    by_id = {t.id: t for t in tasks}
    assert score(by_id["0_1"], "<answer>Ft-CNN, iCaRL*</answer>") == 1.0
    assert score(by_id["0_1"], "<answer>iCaRL*, Ft-CNN</answer>") == 0.0  # order matters
    assert score(by_id["2_0"], "<answer>Not Applicable</answer>") == 1.0
    assert score(by_id["5_1"], "<answer>1e-6</answer>") == 1.0  # gold written 10^-6
    assert score(by_id["0_3"], "The layout is 1 by 2.") == 1.0


def test_missing_files_are_named(tmp_path: Path, data_problems) -> None:
    with pytest.raises(BenchmarkDataError, match=r"no data/reasoning_val.json found"):
        load(tmp_path)
    root = write_release(tmp_path / "CharXiv")
    (root / "images" / "5.jpg").unlink()
    assert "5" not in {task.id for task in load(root)}  # skipped, the rest still load
    assert data_problems.has(r"image images/5.jpg not found"), data_problems
    with pytest.raises(BenchmarkDataError, match=r"unknown subset 'both'"):
        load(root, subset="both")


def test_malformed_entry_names_file_and_key(tmp_path: Path, data_problems) -> None:
    root = write_release(tmp_path / "CharXiv")
    broken = REASONING | {"5": {"figure_id": 5, "query": "q", "answer": "1", "inst_category": 9}}
    (root / "data" / "reasoning_val.json").write_text(json.dumps(broken))
    load(root)
    assert data_problems.has(r"reasoning_val.json entry '5': inst_category"), data_problems
    del broken["5"]["answer"]
    (root / "data" / "reasoning_val.json").write_text(json.dumps(broken))
    load(root)
    assert data_problems.has(r"entry '5': missing field\(s\) answer"), data_problems


def test_registered_as_charxiv(codedance_registry) -> None:  # type: ignore[no-untyped-def]
    entry = codedance_registry.entry("benchmark", "charxiv")
    assert entry.obj is CharXivBenchmark
    assert entry.plugin.name == charxiv.__name__
