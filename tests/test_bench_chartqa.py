"""The chartqa loader reads ChartQA's GitHub json and Hugging Face parquet releases."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import chartqa
from codedance.plugins.benchmarks.chartqa import ChartQABenchmark
from codedance.runtime.types import Message, Task, Trajectory

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

HUMAN = [
    {"imgname": "bar1.png", "query": "What is the highest value?", "label": "42"},
    {"imgname": "bar1.png", "query": "Which country is last?", "label": "Chile"},
]
AUGMENTED = [{"imgname": "line2.png", "query": "What is the share in 2019?", "label": "12.5"}]


def png_bytes(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_github(root: Path) -> Path:
    test = root / "ChartQA Dataset" / "test"
    (test / "png").mkdir(parents=True)
    (test / "test_human.json").write_text(json.dumps(HUMAN))
    (test / "test_augmented.json").write_text(json.dumps(AUGMENTED))
    (test / "png" / "bar1.png").write_bytes(png_bytes("red"))
    (test / "png" / "line2.png").write_bytes(png_bytes("blue"))
    return root


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def m4_columns() -> dict[str, list]:
    return {
        "image": [{"bytes": png_bytes(c), "path": None} for c in ("red", "blue", "green")],
        "query": ["How many bars?", "What is the peak?", "Is it rising?"],
        "label": [["3"], ["7.5%"], ["Yes"]],
        "human_or_machine": [0, 1, 0],
    }


def load(data: Path, tmp_path: Path, **options: str) -> list[Task]:
    return list(ChartQABenchmark(data, options).tasks(tmp_path / "images"))


def score(task: Task, answer: str) -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", ""), answer=answer)
    return ChartQABenchmark(Path(".")).score(trajectory)


def test_github_json_tasks(tmp_path: Path) -> None:
    tasks = load(write_github(tmp_path / "repo"), tmp_path)
    assert [t.id for t in tasks] == ["human-0", "human-1", "augmented-0"]
    assert [t.question for t in tasks] == [row["query"] for row in HUMAN + AUGMENTED]
    assert [t.answer for t in tasks] == ["42", "Chile", "12.5"]
    assert {t.answer_type for t in tasks} == {"chartqa"}
    bench = ChartQABenchmark(tmp_path)
    assert [bench.category(t) for t in tasks] == ["human", "human", "augmented"]
    assert Image.open(tasks[2].images[0]).getpixel((0, 0)) == (0, 0, 255)


def test_github_json_found_from_the_test_folder(tmp_path: Path) -> None:
    root = write_github(tmp_path / "repo")
    tasks = load(root / "ChartQA Dataset" / "test", tmp_path)
    assert len(tasks) == 3


def test_huggingface_m4_parquet(tmp_path: Path) -> None:
    write_parquet(tmp_path / "hf" / "data" / "test-00000-of-00001-e2cd.parquet", m4_columns())
    tasks = load(tmp_path / "hf", tmp_path)
    assert [t.id for t in tasks] == ["human-0", "augmented-0", "human-1"]
    assert [t.answer for t in tasks] == ["3", "7.5%", "Yes"]
    assert [t.metadata["category"] for t in tasks] == ["human", "augmented", "human"]
    assert Image.open(tasks[2].images[0]).getpixel((0, 0)) == (0, 128, 0)


def test_lmms_lab_parquet(tmp_path: Path) -> None:
    columns = {
        "type": ["human_test", "augmented_test"],
        "question": ["What is the peak?", "How many lines?"],
        "answer": ["19", "2"],
        "image": [{"bytes": png_bytes("red"), "path": None}] * 2,
    }
    write_parquet(tmp_path / "lmms" / "data" / "test-00000-of-00001.parquet", columns)
    tasks = load(tmp_path / "lmms", tmp_path)
    assert [(t.id, t.question, t.answer) for t in tasks] == [
        ("human-0", "What is the peak?", "19"),
        ("augmented-0", "How many lines?", "2"),
    ]


def test_scoring_is_relaxed_accuracy(tmp_path: Path) -> None:
    """Numbers within 5% (a % divides by 100), other answers exact up to case."""
    number, text, _ = load(write_github(tmp_path / "repo"), tmp_path)
    percent = Task("p", "q", answer="7.5%", answer_type="chartqa")
    assert score(number, "<answer>43</answer>") == 1.0  # within 5% of 42
    assert score(number, "<answer>44.5</answer>") == 0.0  # 5.95% off
    assert score(text, "<answer>chile</answer>") == 1.0  # case-insensitive
    assert score(text, "<answer>Chile.</answer>") == 0.0  # otherwise exact
    assert score(percent, "<answer>0.076</answer>") == 1.0  # 7.5% reads as 0.075
    assert score(Task("z", "q", answer="0", answer_type="chartqa"), "0.01") == 0.0


def test_missing_data_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"test_human.json.*test-\*.parquet"):
        load(tmp_path, tmp_path)


def test_missing_image_is_reported(tmp_path: Path, data_problems) -> None:
    root = write_github(tmp_path / "repo")
    (root / "ChartQA Dataset" / "test" / "png" / "line2.png").unlink()
    load(root, tmp_path)
    assert data_problems.has(r"png/line2.png of test_augmented.json row 0"), data_problems


def test_malformed_row_names_file_and_row(tmp_path: Path, data_problems) -> None:
    root = write_github(tmp_path / "repo")
    rows = [*HUMAN, {"imgname": "bar1.png", "label": "1"}]
    (root / "ChartQA Dataset" / "test" / "test_human.json").write_text(json.dumps(rows))
    load(root, tmp_path)
    assert data_problems.has(r"test_human.json row 2: missing field.*query"), data_problems


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    root = write_github(tmp_path / "repo")
    (root / "ChartQA Dataset" / "test" / "test_augmented.json").write_text("[{")
    with pytest.raises(BenchmarkDataError, match=r"test_augmented.json: not valid JSON"):
        load(root, tmp_path)


def test_malformed_parquet_row(tmp_path: Path, data_problems) -> None:
    columns = m4_columns() | {"human_or_machine": [0, 5, 0]}
    write_parquet(tmp_path / "test-0.parquet", columns)
    load(tmp_path, tmp_path)
    assert data_problems.has(r"row 1: human_or_machine is 5"), data_problems


def test_registered_as_chartqa(codedance_registry) -> None:  # type: ignore[no-untyped-def]
    entry = codedance_registry.entry("benchmark", "chartqa")
    assert entry.obj is ChartQABenchmark
    assert entry.plugin.name == chartqa.__name__
