"""The pixmocount loader reads allenai/pixmo-count parquet plus locally downloaded images."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.plugins.benchmarks import pixmocount
from codedance.plugins.benchmarks.pixmocount import PixmoCountBenchmark
from codedance.runtime.types import Message, Task, Trajectory

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

COLORS = ("red", "green", "blue")


def jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 9), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def columns() -> dict[str, list]:
    images = [jpeg(c) for c in COLORS]
    return {
        "image_url": [f"https://example.org/{c}.jpg" for c in COLORS],
        "image_sha256": [sha(data) for data in images],
        "count": pa.array([2, 6, 9], pa.int32()),
        "points": [[{"x": 1.0, "y": 2.0}] * n for n in (2, 6, 9)],
        "label": ["dogs", "cars", "people"],
    }


def write(root: Path, table: dict[str, list], split: str = "test") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), root / "data" / f"{split}-00000-of-00001.parquet")
    return root


def download(folder: Path, colors: tuple[str, ...] = COLORS) -> None:
    """Save images as the user would: named by their sha256, with an extension."""
    folder.mkdir(parents=True, exist_ok=True)
    for color in colors:
        data = jpeg(color)
        (folder / f"{sha(data)}.jpg").write_bytes(data)


def load(data: Path, tmp_path: Path, **options: str) -> list[Task]:
    return list(PixmoCountBenchmark(data, options).tasks(tmp_path / "out"))


def test_tasks_with_images_named_by_sha256(tmp_path: Path) -> None:
    root = write(tmp_path / "pixmo", columns())
    download(root / "images")
    tasks = load(root, tmp_path)
    assert [t.id for t in tasks] == ["pixmocount-test-0", "pixmocount-test-1", "pixmocount-test-2"]
    assert tasks[0].question == "How many dogs are there in this image?"
    assert [t.answer for t in tasks] == ["2", "6", "9"]
    assert {t.answer_type for t in tasks} == {"count"}
    assert [t.metadata["category"] for t in tasks] == ["2-4", "5-7", "8-10"]
    assert tasks[1].metadata["label"] == "cars"
    assert tasks[1].metadata["image_url"] == "https://example.org/green.jpg"
    assert Path(tasks[2].images[0]).name == f"{sha(jpeg('blue'))}.jpg"
    assert Image.open(tasks[2].images[0]).size == (12, 9)


def test_images_option_and_validation_split(tmp_path: Path) -> None:
    root = write(tmp_path / "pixmo", columns(), split="validation")
    download(tmp_path / "elsewhere")
    tasks = load(root, tmp_path, split="validation", images=str(tmp_path / "elsewhere"))
    assert tasks[0].id == "pixmocount-validation-0"


def test_image_path_column_and_embedded_bytes(tmp_path: Path) -> None:
    table = columns() | {"image_path": ["imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg"]}
    root = write(tmp_path / "pixmo", table)
    (root / "imgs").mkdir()
    for name, color in zip("abc", COLORS, strict=True):
        (root / "imgs" / f"{name}.jpg").write_bytes(jpeg(color))
    assert Path(load(root, tmp_path)[1].images[0]) == root / "imgs" / "b.jpg"
    embedded = columns() | {"image": [{"bytes": jpeg(c), "path": None} for c in COLORS]}
    tasks = load(write(tmp_path / "embedded", embedded), tmp_path)
    assert Path(tasks[0].images[0]).read_bytes() == jpeg("red")


def test_missing_images_are_skipped_each_with_its_reason(tmp_path: Path, data_problems) -> None:
    root = write(tmp_path / "pixmo", columns())
    download(root / "images", colors=("red",))
    assert [task.metadata["image_sha256"] for task in load(root, tmp_path)] == [sha(jpeg("red"))]
    assert len(data_problems) == 2
    assert data_problems.has(f"{sha(jpeg('green'))}.*not found")
    assert data_problems.has("https://example.org/blue.jpg")


def test_no_image_at_all_lists_them_in_one_error(tmp_path: Path) -> None:
    root = write(tmp_path / "pixmo", columns())
    (root / "images").mkdir(parents=True, exist_ok=True)
    with pytest.raises(BenchmarkDataError) as error:
        load(root, tmp_path)
    message = str(error.value)
    assert "3 of 3 images not found" in message
    assert "https://example.org/blue.jpg" in message


def test_image_with_wrong_sha256_is_rejected_unless_disabled(tmp_path: Path, data_problems) -> None:
    root = write(tmp_path / "pixmo", columns())
    download(root / "images")
    red = root / "images" / f"{sha(jpeg('red'))}.jpg"
    red.write_bytes(jpeg("black"))  # the URL now serves another picture
    assert len(load(root, tmp_path)) == 2
    assert data_problems.has(r"does not match image_sha256 " + sha(jpeg("red"))), data_problems
    assert len(load(root, tmp_path, verify_sha256="false")) == 3


def test_scoring_is_exact_count(tmp_path: Path) -> None:
    task = Task("t", "How many dogs are there in this image?", answer="6", answer_type="count")
    bench = PixmoCountBenchmark(tmp_path)

    def score(answer: str) -> float:
        prompt = Message.text("user", "")
        return bench.score(Trajectory(task=task, system="", prompt=prompt, answer=answer))

    assert score("<answer>6</answer>") == 1.0
    assert score("I count six dogs.") == 1.0
    assert score("<answer>7</answer>") == 0.0


def test_missing_parquet_and_bad_split(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"no test-\*.parquet found"):
        load(tmp_path, tmp_path)
    with pytest.raises(BenchmarkDataError, match=r"unknown split 'dev'"):
        load(tmp_path, tmp_path, split="dev")


def test_malformed_row_names_the_row(tmp_path: Path, data_problems) -> None:
    table = columns() | {"label": ["dogs", None, "people"]}
    root = write(tmp_path / "pixmo", table)
    download(root / "images")
    assert len(load(root, tmp_path)) == 2
    assert data_problems.has(r"test-00000-of-00001.parquet row 1: missing"), data_problems


def test_registered_as_pixmocount(codedance_registry) -> None:  # type: ignore[no-untyped-def]
    entry = codedance_registry.entry("benchmark", "pixmocount")
    assert entry.obj is PixmoCountBenchmark
    assert entry.plugin.name == pixmocount.__name__
