"""The countbench loader reads the vikhyatk/CountBenchQA parquet with embedded images."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import countbench
from codedance.plugins.benchmarks.countbench import CountBenchBenchmark, count_range
from codedance.runtime.types import Message, Task, Trajectory

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def jpeg_bytes(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def columns() -> dict[str, list]:
    return {
        "image": [{"bytes": jpeg_bytes(c), "path": "x.jpg"} for c in ("red", "blue", "white")],
        "text": ["three red apples on a table", "seven birds", "ten white cups"],
        "question": [
            "How many apples are in the image?",
            "How many birds are in the image?",
            "How many cups are in the image?",
        ],
        "number": pa.array([3, 7, 10], pa.int32()),
    }


def write(folder: Path, table: dict[str, list]) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), folder / "data" / "test-00000-of-00001.parquet")
    return folder


def load(data: Path, tmp_path: Path) -> list[Task]:
    return list(CountBenchBenchmark(data).tasks(tmp_path / "images"))


def score(task: Task, answer: str, scorer: str = "official") -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", ""), answer=answer)
    return CountBenchBenchmark(Path("."), {"scorer": scorer}).score(trajectory)


def test_parquet_tasks(tmp_path: Path) -> None:
    tasks = load(write(tmp_path / "cb", columns()), tmp_path)
    assert [t.id for t in tasks] == ["countbench-0", "countbench-1", "countbench-2"]
    assert tasks[0].question == "How many apples are in the image?"
    assert [t.answer for t in tasks] == ["3", "7", "10"]
    assert {t.answer_type for t in tasks} == {"count"}
    assert [t.metadata["category"] for t in tasks] == ["2-4", "5-7", "8-10"]
    assert tasks[1].metadata["caption"] == "seven birds"
    with Image.open(tasks[1].images[0]) as image:
        red, _, blue = image.convert("RGB").getpixel((5, 5))
    assert blue > 200  # the second row's image is blue
    assert red < 50


def test_count_ranges() -> None:
    assert [count_range(n) for n in (0, 2, 4, 5, 7, 8, 10, 12)] == [
        "0-1", "2-4", "2-4", "5-7", "5-7", "8-10", "8-10", "11+",
    ]  # fmt: skip


def test_official_scoring_is_lmms_evals_exact_match(tmp_path: Path) -> None:
    three, _, ten = load(write(tmp_path / "cb", columns()), tmp_path)
    assert score(three, "<answer>3</answer>") == 1.0
    assert score(three, "<answer> Three </answer>") == 1.0  # number words read as digits
    assert score(three, "The answer is three.") == 0.0  # the whole response, as given
    assert score(three, "<answer>4</answer>") == 0.0
    assert score(three, "<answer>3.5</answer>") == 0.0
    assert score(three, "There are three apples.") == 0.0  # not exactly the count
    assert score(ten, "<answer>9 or 10</answer>") == 0.0  # lmms-eval: no hedging
    assert score(ten, "<answer>10 apples</answer>") == 0.0


def test_lenient_scoring_reads_the_one_number_given(tmp_path: Path) -> None:
    three, _, ten = load(write(tmp_path / "cb", columns()), tmp_path)
    assert score(three, "There are three apples.", "lenient") == 1.0
    assert score(ten, "<answer>10 apples</answer>", "lenient") == 1.0
    assert score(three, "<answer>4</answer>", "lenient") == 0.0
    bench = CountBenchBenchmark(Path("."), {"scorer": "lenient"})
    assert bench.scorer() == {"mode": "lenient", "grader": bench.graders["lenient"]}
    assert CountBenchBenchmark(Path(".")).scorer()["mode"] == "official"


def test_missing_parquet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"(?s)no test-\*.parquet found.*CountBenchQA"):
        load(tmp_path, tmp_path)


def test_malformed_row_names_the_row(tmp_path: Path, data_problems) -> None:
    table = columns() | {"number": pa.array([3, None, 10], pa.int32())}
    write(tmp_path / "cb", table)
    load(tmp_path / "cb", tmp_path)
    assert data_problems.has(r"test-00000-of-00001.parquet row 1: missing"), data_problems


def test_row_without_image_bytes(tmp_path: Path, data_problems) -> None:
    table = columns()
    table["image"][2] = {"bytes": None, "path": "http://gone.example/cup.jpg"}
    write(tmp_path / "cb", table)
    load(tmp_path / "cb", tmp_path)
    assert data_problems.has(r"row 2: 'image' holds no readable image"), data_problems


def test_registered_as_countbench(codedance_registry) -> None:  # type: ignore[no-untyped-def]
    entry = codedance_registry.entry("benchmark", "countbench")
    assert entry.obj is CountBenchBenchmark
    assert entry.plugin.name == countbench.__name__
