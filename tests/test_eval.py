"""`codedance eval`: a benchmark from local files, official scoring, resume, reports, compare."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from codedance import hookimpl
from codedance.evaluation import files
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError, write_image_bytes
from codedance.evaluation.report import Bucket, compare_runs, summarize_run
from codedance.runtime.types import Message, Task, Trajectory


class Doubling(Benchmark):
    """A tiny benchmark: 'what is 2 * n?', read from questions.json under --data."""

    name = "doubling"
    description = "doubling numbers"
    layout = "  questions.json  a list of {id, n, kind}"
    source = "the test"
    reported: ClassVar[dict[str, float]] = {"Oracle": 100.0}

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        path = self.data / "questions.json"
        if not path.is_file():
            raise self.missing("no questions.json found")
        for row in json.loads(path.read_text()):
            yield Task(
                row["id"],
                f"What is 2 * {row['n']}?",
                answer=str(2 * row["n"]),
                answer_type="number",
                metadata={"category": row["kind"]},
            )

    def score(self, trajectory: Trajectory) -> float:
        """The official rule of this benchmark: exact digits only."""
        return float((trajectory.answer or "").strip() == trajectory.task.answer)


def plugin() -> types.SimpleNamespace:
    @hookimpl
    def register_benchmarks(register):  # type: ignore[no-untyped-def]
        register(Doubling)

    return types.SimpleNamespace(
        register_benchmarks=register_benchmarks, __name__="doubling_plugin"
    )


CODE = "<code>\n```python\nprint(2 * {n})\n```\n</code>"


@pytest.fixture
def doubling(tmp_path: Path, register_plugin) -> tuple[Path, Path]:
    register_plugin(plugin())
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"q{i}", "n": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(5)]
    (data / "questions.json").write_text(json.dumps(rows))
    replies = []
    for row in rows:
        # q3 answers "6.0": right by number, wrong by the benchmark's official rule
        answer = "6.0" if row["id"] == "q3" else "{{last_stdout}}"
        turns = [CODE.format(n=row["n"]), f"<answer>{answer}</answer>"]
        replies.append({"id": row["id"], "turns": turns})
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in replies))
    return data, replay


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_eval_scores_by_the_benchmarks_rule_and_reports(codedance_cli, doubling, tmp_path):
    data, replay = doubling
    out = tmp_path / "run"
    result = codedance_cli(
        "eval",
        "--benchmark",
        "doubling",
        "--data",
        str(data),
        "--model",
        f"replay:{replay}",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    saved = {t["task"]["id"]: t for t in lines(out / "trajectories.jsonl")}
    assert saved["q3"]["rewards"]["accuracy"] == 0.0  # the official rule, not score_answer
    assert saved["q2"]["rewards"]["accuracy"] == 1.0
    report = json.loads((out / "report.json").read_text())
    assert report["categories"]["all"]["accuracy"] == 80.0
    assert report["categories"]["odd"]["accuracy"] == 50.0
    assert report["categories"]["even"]["accuracy"] == 100.0
    assert report["by_calls"]["1"]["n"] == 5
    assert "| Oracle | 100.0 |" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert (out / "plots" / "accuracy_by_category.png").stat().st_size > 1000


def test_eval_resume_completes_a_killed_run_without_duplicates(codedance_cli, doubling, tmp_path):
    data, replay = doubling
    out = tmp_path / "run"
    args = (
        "eval",
        "--benchmark",
        "doubling",
        "--data",
        str(data),
        "--model",
        f"replay:{replay}",
        "--out",
        str(out),
    )
    assert codedance_cli(*args, "--limit", "2").exit_code == 0
    assert len(lines(out / "trajectories.jsonl")) == 2
    assert codedance_cli(*args, "--resume").exit_code == 0
    ids = [t["task"]["id"] for t in lines(out / "trajectories.jsonl")]
    assert sorted(ids) == ["q0", "q1", "q2", "q3", "q4"]
    assert json.loads((out / "report.json").read_text())["categories"]["all"]["n"] == 5


def test_compare_puts_two_runs_side_by_side(codedance_cli, doubling, tmp_path):
    data, replay = doubling
    runs = []
    for name, limit in (("a", "5"), ("b", "4")):
        out = tmp_path / name
        result = codedance_cli(
            "eval",
            "--benchmark",
            "doubling",
            "--data",
            str(data),
            "--model",
            f"replay:{replay}",
            "--out",
            str(out),
            "--limit",
            limit,
        )
        assert result.exit_code == 0, result.output
        runs.append(out)
    result = codedance_cli("eval", "--compare", str(runs[0]), str(runs[1]))
    assert result.exit_code == 0, result.output
    assert "| all | 5 | 80.0 | 75.0 | -5.0 |" in result.output
    assert "Tasks: replay:" in result.output
    assert "in both 4." in result.output
    assert "On the 4 tasks in both:" in result.output  # like for like: 75.0 vs 75.0
    assert "75.0%, replay:" in result.output


def test_wrong_data_path_names_the_expected_files(codedance_cli, doubling, tmp_path):
    result = codedance_cli("eval", "--benchmark", "doubling", "--data", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "no questions.json found" in result.output
    assert "questions.json  a list of {id, n, kind}" in result.output


def test_list_and_usage(codedance_cli, doubling):
    listed = codedance_cli("eval", "--list")
    assert "doubling" in listed.output
    assert "synthetic" in listed.output
    assert codedance_cli("eval").exit_code == 2


def test_synthetic_benchmark_runs_the_whole_path_without_a_model(codedance_cli, tmp_path):
    """The built-in synthetic benchmark: generated data, reference programs, official score."""
    pytest.importorskip("rapidocr_onnxruntime")
    out = tmp_path / "synthetic"
    result = codedance_cli(
        "eval",
        "--benchmark",
        "synthetic",
        "--data",
        str(tmp_path / "gen"),
        "--option",
        "per_kind=1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "No model was used" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["categories"]["all"] == {**report["categories"]["all"], "n": 4, "accuracy": 100.0}
    assert set(report["categories"]) == {
        "all",
        "bar_chart",
        "count_shapes",
        "small_tag",
        "triangle",
    }


def test_summaries_and_comparison_from_trajectories():
    def trajectory(task_id: str, correct: bool, category: str) -> Trajectory:
        task = Task(task_id, "q", metadata={"category": category})
        return Trajectory(task, "", Message.text("user", "q"), rewards={"accuracy": float(correct)})

    first = summarize_run([trajectory("a", True, "x"), trajectory("b", False, "y")], "bench")
    second = summarize_run([trajectory("a", True, "x"), trajectory("b", True, "y")], "bench")
    assert first.overall.accuracy == 50.0
    assert first.categories["y"].success_rate is None
    assert "| y | 1 | 0.0 | 100.0 | +100.0 |" in compare_runs(first, second)
    assert Bucket().accuracy == 0.0


def test_embedded_images_are_written_once_by_content(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 10
    first = write_image_bytes(tmp_path, png, "row")
    assert write_image_bytes(tmp_path, png, "row") == first
    assert first.endswith(".png")
    assert write_image_bytes(tmp_path, b"\xff\xd8jpeg", "row").endswith(".jpg")


# -- evaluation.files: the helpers the loaders share ---------------------------------------

bad_place = files.place_error("demo", "Fix: download it again.")


def test_place_error_names_the_benchmark_the_place_and_the_fix():
    error = bad_place("a.json item 3", "missing field 'id'")
    assert (
        str(error) == "benchmark 'demo': a.json item 3: missing field 'id'. Fix: download it again."
    )
    assert isinstance(error, BenchmarkDataError)
    with pytest.raises(BenchmarkDataError, match=r"a.json item 3: missing field 'id'"):
        files.required_field({"id": ""}, "id", "a.json item 3", bad_place)
    assert files.required_field({"id": 7}, "id", "a.json item 3", bad_place) == "7"


def test_jsonl_rows_skip_blank_lines_and_name_the_bad_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert list(files.jsonl_rows(path, bad_place)) == [
        ("q.jsonl line 1", {"a": 1}),
        ("q.jsonl line 3", {"a": 2}),
    ]
    path.write_text('{"a": 1}\n[1]\n', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"q.jsonl line 2: not a JSON object"):
        list(files.jsonl_rows(path, bad_place))
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"q.jsonl line 2: not valid JSON \(Expecting"):
        list(files.jsonl_rows(path, bad_place))


def test_json_list_rows_name_the_item_and_reject_other_shapes(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('[{"a": 1}, {"a": 2}]', encoding="utf-8")
    assert [where for where, _ in files.json_list_rows(path, bad_place)] == [
        "t.json item 0",
        "t.json item 1",
    ]
    path.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"t.json: the top level is not a list of rows"):
        list(files.json_list_rows(path, bad_place, items="rows"))
    path.write_text('[{"a": 1}, 2]', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"t.json item 1: the item is not an object"):
        list(files.json_list_rows(path, bad_place))
    path.write_text("[", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"t.json: not valid JSON"):
        files.read_json(path, bad_place)


def test_data_files_take_the_file_itself_or_the_first_matching_pattern(tmp_path):
    for name in ("test-1.parquet", "data/test-0.parquet", "data/test-1.parquet"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    patterns = ("val-*.parquet", "data/test-*.parquet", "test-*.parquet")
    found = files.data_files(tmp_path, patterns)
    assert found == [tmp_path / "data/test-0.parquet", tmp_path / "data/test-1.parquet"]
    assert files.data_files(tmp_path / "test-1.parquet", ("*.json",)) == [
        tmp_path / "test-1.parquet"
    ]
    assert files.data_files(tmp_path / "test-1.parquet", ("*.parquet",), suffix=".json") == []
    assert len(files.data_files(tmp_path, ("**/*.parquet",))) == 3


def test_find_file_tries_the_folders_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.png").write_bytes(b"")
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    assert files.find_file("x.png", folders) == tmp_path / "b" / "x.png"
    assert files.find_file("y.png", folders) is None
    assert files.first_file([tmp_path / "b", tmp_path / "c" / "x.png"]) == tmp_path / "c" / "x.png"


def test_write_image_reads_every_cell_form_and_writes_once(tmp_path):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="PNG")
    png = buffer.getvalue()
    (tmp_path / "img.png").write_bytes(png)
    out = tmp_path / "out"
    cells = [
        png,
        {"bytes": png},
        {"bytes": None, "path": "img.png"},
        base64.b64encode(png).decode(),
    ]
    written = {files.write_image(cell, tmp_path, out, "row") for cell in cells}
    assert len(written) == 1  # one file, named by content
    assert Path(written.pop()).read_bytes() == png
    assert files.write_image(b"not an image", tmp_path, out, "row") is None
    assert files.write_image({"bytes": None, "path": "gone.png"}, tmp_path, out, "row") is None
    assert files.safe_stem("wemath-3steps_1/a b") == "wemath-3steps_1_a_b"


def test_a_bad_benchmark_option_names_the_flag_that_sets_it(codedance_cli, tmp_path):
    """The fix in the message is the eval command's real flag, --option (not -o)."""
    result = codedance_cli(
        "eval", "--benchmark", "chartqa", "--data", str(tmp_path), "--option", "split=dev"
    )
    assert result.exit_code == 1
    assert "unknown split 'dev'. Fix: --option split=<one of test, val>." in result.output
