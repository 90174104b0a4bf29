"""``codedance-parquet`` reads the CodeDance release's verl-style eval parquet."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from codedance.core.errors import MissingDependencyError
from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks.release_parquet import ReleaseParquet, answer_type_for
from codedance.runtime.types import Message, Task, Trajectory

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(source: str, question: str, answer: Any, image: bytes | None, **extra: Any) -> dict:
    images = [] if image is None else [{"bytes": image, "path": None}]
    return {
        "data_source": source,
        "images": images,
        "ability": "vision",
        "extra_info": {"question": question, "answer": answer, "index": extra.get("index", 0)},
    }


ROWS = [
    _row("wemath", "<image>\nFind x if 2x = 1.", "\\frac{1}{2}", _png((20, 10), (255, 0, 0))),
    _row("vstar", "<image>What color?\n(A) red\n(B) blue", "blue", _png((10, 20), (0, 0, 255))),
    _row("pixmo_count", "<image>How many dots?", "3", _png((12, 12), (0, 255, 0))),
    _row("chartqa", "<image>What is the value of the tallest bar?", "45", _png((16, 8), (9, 9, 9))),
    _row("countbench", "<image>How many birds are there?", "many", _png((8, 8), (1, 2, 3))),
]  # fmt: skip


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _load(data: Path, image_dir: Path, **options: str) -> list[Task]:
    return list(ReleaseParquet(data, options).tasks(image_dir))


def _score(task: Task, answer: str) -> float:
    trajectory = Trajectory(task=task, system="", prompt=Message.text("user", "q"), answer=answer)
    return ReleaseParquet(Path(".")).score(trajectory)


def test_rows_become_tasks_with_types_from_data_source(tmp_path):
    tasks = _load(_write(tmp_path / "eval_mix.parquet", ROWS), tmp_path / "images")
    assert [t.id for t in tasks] == [f"eval_mix-{i}" for i in range(5)]
    assert [t.answer_type for t in tasks] == ["math", "multiple_choice", "count", "chartqa", "text"]
    assert [t.answer for t in tasks] == ["\\frac{1}{2}", "blue", "3", "45", "many"]
    assert [t.metadata["category"] for t in tasks] == [
        "wemath",
        "vstar",
        "pixmo_count",
        "chartqa",
        "countbench",
    ]


def test_image_token_is_stripped_and_options_parsed(tmp_path):
    tasks = _load(_write(tmp_path / "a.parquet", ROWS), tmp_path / "images")
    assert tasks[0].question == "Find x if 2x = 1."
    assert tasks[1].question == "What color?\n(A) red\n(B) blue"
    assert tasks[1].options == ["red", "blue"]
    assert tasks[0].options is None


def test_an_unreadable_inferred_type_falls_back_to_text(tmp_path):
    task = _load(_write(tmp_path / "a.parquet", ROWS), tmp_path / "images")[4]
    assert task.answer_type == "text"
    assert "count" in task.metadata["answer_type_fallback"]
    assert _score(task, "many") == 1.0


def test_embedded_images_are_written_and_readable(tmp_path):
    tasks = _load(_write(tmp_path / "a.parquet", ROWS), tmp_path / "images")
    with Image.open(tasks[0].images[0]) as image:
        assert image.size == (20, 10)
        assert image.getpixel((3, 3)) == (255, 0, 0)
    with Image.open(tasks[1].images[0]) as image:
        assert image.size == (10, 20)
    assert all(Path(t.images[0]).parent == tmp_path / "images" for t in tasks)


def test_only_the_first_image_is_used_and_empty_bytes_read_the_path(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "p.png").write_bytes(_png((7, 5), (5, 5, 5)))
    row = _row("vstar", "Q?", "A", None)
    row["images"] = [{"bytes": b"", "path": "pics/p.png"}, {"bytes": _png((3, 3), (0, 0, 0))}]
    [task] = _load(_write(tmp_path / "a.parquet", [row]), tmp_path / "images")
    assert len(task.images) == 1
    with Image.open(task.images[0]) as image:
        assert image.size == (7, 5)


def test_numeric_answer_columns_are_read_as_text(tmp_path):
    rows = [_row("countbench", "How many?", 4, None), _row("countbench", "And here?", 0, None)]
    tasks = _load(_write(tmp_path / "a.parquet", rows), tmp_path / "images")
    assert [(t.answer, t.answer_type) for t in tasks] == [("4", "count"), ("0", "count")]


def test_a_single_image_struct_is_read_like_a_list_of_one(tmp_path):
    row = _row("vstar", "Q?", "A", None)
    row["images"] = {"bytes": _png((6, 4), (1, 1, 1)), "path": None}
    [task] = _load(_write(tmp_path / "a.parquet", [row]), tmp_path / "images")
    with Image.open(task.images[0]) as image:
        assert image.size == (6, 4)


def test_rows_without_images_are_kept(tmp_path):
    [task] = _load(_write(tmp_path / "a.parquet", [_row("x", "1+1?", "2", None)]), tmp_path / "i")
    assert task.images == []
    assert task.answer_type == "text"


def test_a_folder_of_parquets_is_read_recursively(tmp_path):
    _write(tmp_path / "data" / "vstar.parquet", ROWS[1:2])
    _write(tmp_path / "data" / "math" / "wemath_testmini.parquet", ROWS[:1])
    tasks = _load(tmp_path / "data", tmp_path / "images")
    assert [t.id for t in tasks] == ["math/wemath_testmini-0", "vstar-0"]
    assert [t.metadata["file"] for t in tasks] == ["wemath_testmini.parquet", "vstar.parquet"]


def test_missing_data_source_uses_the_option_then_the_file_name(tmp_path):
    rows = [{k: v for k, v in ROWS[2].items() if k != "data_source"}]
    path = _write(tmp_path / "pixmo_test.parquet", rows)
    [task] = _load(path, tmp_path / "images")
    assert task.metadata["data_source"] == "pixmo_test"
    assert task.answer_type == "count"
    [task] = _load(path, tmp_path / "images", data_source="mathvista")
    assert task.answer_type == "math"


def test_answer_type_option_overrides_the_data_source(tmp_path):
    path = _write(tmp_path / "a.parquet", ROWS[:4])
    tasks = _load(path, tmp_path / "images", answer_type="text")
    assert {t.answer_type for t in tasks} == {"text"}
    assert "answer_type_fallback" not in tasks[0].metadata


def test_an_override_that_cannot_read_an_answer_is_an_error(tmp_path, data_problems):
    path = _write(tmp_path / "a.parquet", ROWS[:2])
    _load(path, tmp_path / "images", answer_type="count")
    assert data_problems.has(r"a.parquet row 0: answer '\\\\frac\{1\}\{2\}'"), data_problems


def test_an_unknown_answer_type_option_is_an_error(tmp_path):
    path = _write(tmp_path / "a.parquet", ROWS[:1])
    with pytest.raises(BenchmarkDataError, match="answer_type='maths' is not an answer type"):
        _load(path, tmp_path / "images", answer_type="maths")


@pytest.mark.parametrize(
    ("index", "prediction", "expected"),
    [
        (0, "0.5", 1.0),  # math-verify: 1/2 == 0.5
        (0, "\\boxed{\\frac{2}{4}}", 1.0),
        (0, "2", 0.0),
        (1, "B", 1.0),  # the reference is option text; the letter names it
        (1, "blue", 1.0),
        (1, "A", 0.0),
        (2, "three", 1.0),
        (2, "4", 0.0),
        (3, "46", 1.0),  # ChartQA: within 5%
        (3, "48", 0.0),
    ],
)
def test_score_follows_the_answer_type(tmp_path, index, prediction, expected):
    task = _load(_write(tmp_path / "a.parquet", ROWS), tmp_path / "images")[index]
    assert _score(task, prediction) == expected


def test_answer_type_for_known_sources():
    assert answer_type_for("MathVerse_testmini") == "math"
    assert answer_type_for("thinklite_eureka") == "math"
    assert answer_type_for("vstar") == "multiple_choice"
    assert answer_type_for("CountBench") == "count"
    assert answer_type_for("chartqa") == "chartqa"
    assert answer_type_for("charxiv") == "text"


def test_missing_path_names_the_expected_files(tmp_path):
    with pytest.raises(BenchmarkDataError) as error:
        _load(tmp_path / "absent.parquet", tmp_path / "images")
    message = str(error.value)
    assert "no *.parquet file found" in message
    assert "extra_info" in message


def test_malformed_row_names_file_and_row(tmp_path, data_problems):
    rows = [ROWS[0], {**ROWS[1], "extra_info": {"question": "Q?", "answer": None}}]
    _load(_write(tmp_path / "b.parquet", rows), tmp_path / "images")
    assert data_problems.has(r"b\.parquet row 1: extra_info has no 'answer'"), data_problems


def test_row_without_extra_info_is_an_error(tmp_path, data_problems):
    rows = [{"data_source": "x", "images": [], "prompt": "Q?"}]
    _load(_write(tmp_path / "c.parquet", rows), tmp_path / "images")
    assert data_problems.has(r"c\.parquet row 0 has no 'extra_info' struct"), data_problems


def test_unreadable_image_is_an_error(tmp_path, data_problems):
    row = _row("vstar", "Q?", "A", b"not a png")
    _load(_write(tmp_path / "d.parquet", [row]), tmp_path / "images")
    assert data_problems.has("row 0: images\\[0\\] holds neither"), data_problems


def test_a_corrupt_parquet_file_is_an_error(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BenchmarkDataError, match=r"broken\.parquet' is not a readable parquet"):
        _load(tmp_path / "broken.parquet", tmp_path / "images")


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.parquet", ROWS[:1])
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r"codedance\[eval\]"):
        _load(path, tmp_path / "images")


def test_registered_under_its_name(codedance_registry):
    entry = codedance_registry.entry("benchmark", "codedance-parquet")
    assert entry.obj is ReleaseParquet
    assert entry.plugin.name == "codedance.plugins.benchmarks.release_parquet"
