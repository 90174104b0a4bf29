"""The HR-Bench loaders read DreamMr/HR-Bench's VLMEvalKit TSV and its parquet split."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import hrbench
from codedance.plugins.benchmarks.hrbench import HRBench4K, HRBench8K
from codedance.runtime.types import Message, Task, Trajectory

COLUMNS = ["index", "question", "A", "B", "C", "D", "answer", "category", "cycle_category", "image"]


def _png_base64(size: tuple[int, int], color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _rows() -> list[dict[str, str]]:
    """Two questions, the first in two option rotations (cycles) sharing one image."""
    sign = _png_base64((40, 30), (200, 20, 20))
    chart = _png_base64((30, 40), (20, 20, 200))
    return [
        {"index": "0", "question": "What is written on the sign?", "A": "STOP", "B": "EXIT",
         "C": "OPEN", "D": "SALE", "answer": "A", "category": "single",
         "cycle_category": "cycle1", "image": sign},
        {"index": "1", "question": "Which bar is taller?", "A": "left", "B": "right",
         "C": "equal", "D": "none", "answer": "B", "category": "cross",
         "cycle_category": "cycle1", "image": chart},
        # VLMEvalKit stores a repeated image once: a short cell names the row holding it
        {"index": "2", "question": "What is written on the sign?", "A": "SALE", "B": "STOP",
         "C": "EXIT", "D": "OPEN", "answer": "B", "category": "single",
         "cycle_category": "cycle2", "image": "0"},
    ]  # fmt: skip


def _tsv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _load(bench: type[HRBench4K] | type[HRBench8K], data: Path, images: Path) -> list[Task]:
    return list(bench(data).tasks(images))


def _score(task: Task, answer: str) -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", "q"), answer=answer)
    return HRBench4K(Path(".")).score(trajectory)


def test_tsv_rows_become_multiple_choice_tasks(tmp_path):
    _tsv(tmp_path / "HR-Bench" / "hr_bench_4k.tsv", _rows())
    tasks = _load(HRBench4K, tmp_path / "HR-Bench", tmp_path / "images")
    assert [t.id for t in tasks] == ["0", "1", "2"]
    assert [t.answer for t in tasks] == ["A", "B", "B"]
    assert tasks[2].options == ["SALE", "STOP", "EXIT", "OPEN"]
    assert {t.answer_type for t in tasks} == {"multiple_choice"}
    assert tasks[0].question == (
        "What is written on the sign?\nOptions:\nA. STOP\nB. EXIT\nC. OPEN\nD. SALE\n"
        "Please select the correct answer from the options above."
    )


def test_categories_and_cycles_are_kept(tmp_path):
    _tsv(tmp_path / "hr_bench_4k.tsv", _rows())
    bench = HRBench4K(tmp_path)
    tasks = list(bench.tasks(tmp_path / "images"))
    assert [bench.category(t) for t in tasks] == ["single", "cross", "single"]
    assert [t.metadata["cycle_category"] for t in tasks] == ["cycle1", "cycle1", "cycle2"]


def test_images_are_decoded_once_and_shared_by_reference(tmp_path):
    _tsv(tmp_path / "hr_bench_4k.tsv", _rows())
    tasks = _load(HRBench4K, tmp_path, tmp_path / "images")
    assert tasks[2].images == tasks[0].images
    assert tasks[0].images != tasks[1].images
    with Image.open(tasks[0].images[0]) as image:
        assert image.size == (40, 30)
        assert image.getpixel((5, 5)) == (200, 20, 20)
    with Image.open(tasks[1].images[0]) as image:
        assert image.size == (30, 40)
    assert len(list((tmp_path / "images").iterdir())) == 2


def test_each_resolution_reads_its_own_file(tmp_path):
    rows = _rows()
    _tsv(tmp_path / "hr_bench_4k.tsv", rows[:2])
    _tsv(tmp_path / "hr_bench_8k.tsv", rows[1:2])
    assert len(_load(HRBench4K, tmp_path, tmp_path / "i4")) == 2
    assert [t.id for t in _load(HRBench8K, tmp_path, tmp_path / "i8")] == ["1"]


def test_split_folder_names_count_as_the_file_name(tmp_path):
    _tsv(tmp_path / "hrbench_8k" / "test.tsv", _rows()[:1])
    assert [t.id for t in _load(HRBench8K, tmp_path, tmp_path / "images")] == ["0"]


def test_parquet_split_is_read(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [dict(row, index=int(row["index"])) for row in _rows()]
    folder = tmp_path / "hrbench_version_split"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "hrbench_8k-00000-of-00001.parquet")
    tasks = _load(HRBench8K, tmp_path, tmp_path / "images")
    assert [t.id for t in tasks] == ["0", "1", "2"]
    assert tasks[1].answer == "B"
    assert tasks[1].metadata["category"] == "cross"
    assert tasks[2].images == tasks[0].images
    with Image.open(tasks[1].images[0]) as image:
        assert image.size == (30, 40)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("B", 1.0),
        ("B. STOP", 1.0),
        ("STOP", 1.0),  # the option's text, which is B in this rotation
        ("The answer is (B).", 1.0),
        ("A", 0.0),  # the right letter of the first rotation is wrong here
        ("SALE", 0.0),
        ("E", 0.0),
        ("", 0.0),
    ],
)
def test_score_reads_the_letter_of_this_rotation(tmp_path, prediction, expected):
    _tsv(tmp_path / "hr_bench_4k.tsv", _rows())
    task = _load(HRBench4K, tmp_path, tmp_path / "images")[2]
    assert _score(task, prediction) == expected


def test_missing_file_names_the_expected_files(tmp_path):
    _tsv(tmp_path / "hr_bench_4k.tsv", _rows())
    with pytest.raises(BenchmarkDataError) as error:
        _load(HRBench8K, tmp_path, tmp_path / "images")
    message = str(error.value)
    assert "no hr_bench_8k.tsv" in message
    assert "DreamMr/HR-Bench" in message


def test_malformed_row_names_file_and_line(tmp_path, data_problems):
    rows = _rows()
    rows[1]["answer"] = "F"
    _tsv(tmp_path / "hr_bench_4k.tsv", rows)
    _load(HRBench4K, tmp_path, tmp_path / "images")
    assert data_problems.has(r"hr_bench_4k\.tsv line 3: 'answer' 'F'"), data_problems


def test_undecodable_image_is_an_error(tmp_path, data_problems):
    rows = _rows()
    rows[1]["image"] = base64.b64encode(b"not an image" * 10).decode("ascii")
    _tsv(tmp_path / "hr_bench_4k.tsv", rows)
    _load(HRBench4K, tmp_path, tmp_path / "images")
    assert data_problems.has("line 3: 'image' is not a base64-encoded image"), data_problems


def test_reference_to_a_missing_row_is_an_error(tmp_path, data_problems):
    rows = _rows()
    rows[2]["image"] = "7"
    _tsv(tmp_path / "hr_bench_4k.tsv", rows)
    _load(HRBench4K, tmp_path, tmp_path / "images")
    assert data_problems.has("line 4: 'image' names index '7'"), data_problems


def test_duplicate_index_is_an_error(tmp_path, data_problems):
    rows = _rows()
    rows[1]["index"] = "0"
    _tsv(tmp_path / "hr_bench_4k.tsv", rows)
    _load(HRBench4K, tmp_path, tmp_path / "images")
    assert data_problems.has("index '0' occurs twice"), data_problems


def test_both_resolutions_are_registered(codedance_registry):
    assert codedance_registry.get("benchmark", "hrbench4k") is HRBench4K
    assert codedance_registry.get("benchmark", "hrbench8k") is HRBench8K
    assert codedance_registry.entry("benchmark", "hrbench4k").plugin.name == hrbench.__name__
