"""The V* Bench loader reads craigwu/vstar_bench (jsonl + folders) and lmms-lab's parquet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks.vstar import VStarBench, parse_options
from codedance.runtime.types import Message, Task, Trajectory

INSTRUCTION = "Answer with the option's letter from the given choices directly."

ROWS = [
    {
        "image": "direct_attributes/sa_4690.jpg",
        "text": f"What is the color of the glove?\n(A) white\n(B) black\n(C) red\n(D) blue\n"
        f"{INSTRUCTION}",
        "category": "direct_attributes",
        "question_id": 0,
        "label": "C",
    },
    {
        "image": "direct_attributes/sa_5012.jpg",
        "text": f"What is the material of the bag?\n(A) leather\n(B) cloth\n(C) plastic\n"
        f"(D) paper\n{INSTRUCTION}",
        "category": "direct_attributes",
        "question_id": 1,
        "label": "A",
    },
    {
        "image": "relative_position/sa_7001.jpg",
        "text": "Is the cup on the left or right side of the dog?\n(A) left\n(B) right\n"
        f"{INSTRUCTION}",
        "category": "relative_position",
        "question_id": 2,
        "label": "B",
    },
]


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def _release(root: Path, rows: list[dict] = ROWS) -> Path:
    """The HF release's layout: test_questions.jsonl beside the category folders."""
    for i, row in enumerate(rows):
        image = root / row["image"]
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(_jpeg((40 * i, 10, 200)))
    lines = "\n".join(json.dumps(row) for row in rows) + "\n"
    (root / "test_questions.jsonl").write_text(lines, encoding="utf-8")
    return root


def _load(data: Path, image_dir: Path) -> list[Task]:
    return list(VStarBench(data).tasks(image_dir))


def _score(task: Task, answer: str, scorer: str = "lenient") -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", "q"), answer=answer)
    return VStarBench(Path("."), {"scorer": scorer}).score(trajectory)


def test_jsonl_rows_become_multiple_choice_tasks(tmp_path):
    tasks = _load(_release(tmp_path / "vstar"), tmp_path / "images")
    assert [t.id for t in tasks] == ["0", "1", "2"]
    assert [t.answer for t in tasks] == ["C", "A", "B"]
    assert {t.answer_type for t in tasks} == {"multiple_choice"}
    assert tasks[0].question == ROWS[0]["text"]  # the published text already lists the options
    assert tasks[0].options == ["white", "black", "red", "blue"]
    assert tasks[2].options == ["left", "right"]


def test_categories_and_images_come_from_the_release(tmp_path):
    root = _release(tmp_path / "vstar")
    tasks = _load(root, tmp_path / "images")
    bench = VStarBench(root)
    assert [bench.category(t) for t in tasks] == [
        "direct_attributes",
        "direct_attributes",
        "relative_position",
    ]
    assert tasks[2].images == [str(root / "relative_position/sa_7001.jpg")]
    for task in tasks:
        with Image.open(task.images[0]) as image:
            assert image.size == (24, 16)


def test_the_jsonl_file_itself_can_be_given(tmp_path):
    root = _release(tmp_path / "vstar")
    tasks = _load(root / "test_questions.jsonl", tmp_path / "images")
    assert len(tasks) == 3


def test_lmms_lab_parquet_with_embedded_images(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [
        {**row, "image": {"bytes": _jpeg((0, 90 * i, 0)), "path": None}}
        for i, row in enumerate(ROWS)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    tasks = _load(tmp_path, tmp_path / "images")
    assert [t.id for t in tasks] == ["0", "1", "2"]
    assert tasks[1].answer == "A"
    assert tasks[1].metadata["category"] == "direct_attributes"
    for task in tasks:
        assert Path(task.images[0]).parent == tmp_path / "images"
        with Image.open(task.images[0]) as image:
            assert image.size == (24, 16)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("C", 1.0),
        ("(C) red", 1.0),
        ("The answer is option C.", 1.0),
        ("red", 1.0),  # the text of exactly one option
        ("B", 0.0),
        ("black", 0.0),
        ("(A) or (C)", 0.0),  # a hedge names no option
        ("E", 0.0),  # past the last option
        ("", 0.0),
    ],
)
def test_lenient_score_reads_the_option_letter_or_text(tmp_path, prediction, expected):
    task = _load(_release(tmp_path / "vstar"), tmp_path / "images")[0]
    assert _score(task, prediction) == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("<answer>C</answer>", 1.0),
        ("(C) red", 1.0),
        ("The answer is option C.", 1.0),
        ("<answer>c</answer>", 1.0),  # uppercased first
        ("Answer: C", 0.0),  # lmms-eval's first rule reads the A of "ANSWER"
        ("red", 0.0),  # lmms-eval wants the letter, never the option's text
        ("Clearly red", 1.0),  # its quirk: a response starting with a letter A-D
        ("B", 0.0),
        ("(A) or (C)", 0.0),  # the first rule that matches: starts with "(": (A)
        ("E", 0.0),
        ("", 0.0),
    ],
)
def test_official_score_is_lmms_evals_letter_extraction(tmp_path, prediction, expected):
    task = _load(_release(tmp_path / "vstar"), tmp_path / "images")[0]
    assert _score(task, prediction, "official") == expected


def test_two_option_question_rejects_a_third_letter(tmp_path):
    task = _load(_release(tmp_path / "vstar"), tmp_path / "images")[2]
    assert _score(task, "B") == 1.0
    assert _score(task, "C") == 0.0


def test_parse_options_needs_labels_in_order():
    assert parse_options("Q?\n(A) a\n(B) b") == ["a", "b"]
    assert parse_options("Q? (A) up (B) down") == ["up", "down"]
    assert parse_options("Which of (B) and (C)?") is None


def test_missing_folder_names_the_expected_file(tmp_path):
    with pytest.raises(BenchmarkDataError) as error:
        _load(tmp_path / "nowhere", tmp_path / "images")
    message = str(error.value)
    assert "test_questions.jsonl" in message
    assert "craigwu/vstar_bench" in message


def test_malformed_line_names_file_and_line(tmp_path):
    root = _release(tmp_path / "vstar")
    with (root / "test_questions.jsonl").open("a", encoding="utf-8") as stream:
        stream.write('{"image": "x.jpg", "text": \n')
    with pytest.raises(BenchmarkDataError, match=r"test_questions\.jsonl line 4 is not JSON"):
        _load(root, tmp_path / "images")


def test_label_outside_the_options_is_an_error(tmp_path, data_problems):
    rows = [dict(ROWS[2], label="D")]
    _load(_release(tmp_path / "vstar", rows), tmp_path / "images")
    assert data_problems.has("line 1: 'label' 'D' is not one of"), data_problems


def test_missing_image_file_is_an_error(tmp_path, data_problems):
    root = _release(tmp_path / "vstar")
    (root / ROWS[1]["image"]).unlink()
    _load(root, tmp_path / "images")
    assert data_problems.has(r"line 2: image .*sa_5012\.jpg' does not exist"), data_problems


def test_registered_under_its_name(codedance_registry):
    entry = codedance_registry.entry("benchmark", "vstar")
    assert entry.obj is VStarBench
    assert entry.plugin.name == "codedance.plugins.benchmarks.vstar"
