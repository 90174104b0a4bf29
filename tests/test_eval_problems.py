"""`codedance eval` never aborts on data: bad rows are skipped, unreadable references fall
back to text, both are listed under "Data problems"; the report carries a manifest."""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from codedance import hookimpl
from codedance.evaluation.benchmark import Benchmark
from codedance.evaluation.problems import DataProblem, problems_of_run, safe_score
from codedance.runtime.types import Message, Task, Trajectory


class Ragged(Benchmark):
    """Rows of questions.json; a row without ``gold`` is malformed; ``kind`` is the type."""

    name = "ragged"
    description = "a benchmark with bad rows"
    layout = "  questions.json"
    source = "the test"

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        rows = json.loads((self.data / "questions.json").read_text())
        for index, row in enumerate(rows):
            task = self.row_task(f"questions.json item {index}", partial(self._task, row, index))
            if task is not None:
                yield task

    def _task(self, row: dict[str, Any], index: int) -> Task:
        if "gold" not in row:
            raise self.missing(f"questions.json item {index}: missing field 'gold'")
        return Task(row["id"], "q?", answer=row["gold"], answer_type=row["kind"])


def plugin() -> types.SimpleNamespace:
    @hookimpl
    def register_benchmarks(register):  # type: ignore[no-untyped-def]
        register(Ragged)

    return types.SimpleNamespace(register_benchmarks=register_benchmarks, __name__="ragged")


ROWS = [
    {"id": "ok", "gold": "7", "kind": "count"},
    {"id": "broken"},  # malformed: skipped with its reason
    {"id": "unreadable", "gold": "n/a", "kind": "count"},  # the count rule cannot read it
]


@pytest.fixture
def ragged(tmp_path: Path, register_plugin: Any) -> tuple[Path, Path]:
    register_plugin(plugin())
    data = tmp_path / "data"
    data.mkdir()
    (data / "questions.json").write_text(json.dumps(ROWS))
    replies = [
        {"id": "ok", "turns": ["<answer>7</answer>"]},
        {"id": "unreadable", "turns": ["<answer>n/a</answer>"]},
    ]
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in replies))
    return data, replay


def run(codedance_cli: Any, data: Path, replay: Path, out: Path, *extra: str) -> Any:
    args = ["eval", "--benchmark", "ragged", "--data", str(data), "--model", f"replay:{replay}"]
    result = codedance_cli(*args, "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    return result


def test_bad_rows_and_unreadable_references_end_in_a_report(codedance_cli, ragged, tmp_path):
    data, replay = ragged
    out = tmp_path / "run"
    run(codedance_cli, data, replay, out)
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == {"ok": 1.0, "unreadable": 1.0}  # n/a == n/a as text
    problems = {p["where"]: p for p in report["data_problems"]}
    assert problems["questions.json item 1"]["action"] == "skipped"
    assert "missing field 'gold'" in problems["questions.json item 1"]["reason"]
    assert problems["unreadable"]["action"] == "scored as text"
    assert "InvalidAnswerError" in problems["unreadable"]["reason"]
    markdown = (out / "report.md").read_text()
    assert "Data problems (2):" in markdown
    assert "| questions.json item 1 | skipped |" in markdown


def test_resume_and_report_rewrite_keep_the_problems(codedance_cli, ragged, tmp_path):
    data, replay = ragged
    out = tmp_path / "run"
    run(codedance_cli, data, replay, out, "--limit", "1")
    run(codedance_cli, data, replay, out, "--resume")
    assert codedance_cli("eval", "--report", str(out)).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["results"]) == ["ok", "unreadable"]
    assert len(report["data_problems"]) == 2


def test_report_carries_a_manifest_and_links_tasks_to_the_viewer(codedance_cli, ragged, tmp_path):
    data, replay = ragged
    out = tmp_path / "run"
    run(codedance_cli, data, replay, out)
    manifest = json.loads((out / "report.json").read_text())["manifest"]
    digest = hashlib.sha256((data / "questions.json").read_bytes()).hexdigest()
    assert manifest["dataset_files"] == [
        {
            "path": "questions.json",
            "bytes": (data / "questions.json").stat().st_size,
            "sha256": digest,
        }
    ]
    assert manifest["benchmark"] == "ragged"
    assert manifest["scorer"]["mode"] == "official"
    assert manifest["max_turns"] == manifest["config"]["runtime"]["max_turns"]
    assert "api_key" not in manifest["config"]["model"]
    assert manifest["codedance_version"]
    assert "grader:" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert 'href="view.html#task-ok"' in page
    assert "<h2>Scoring and settings</h2>" in page
    assert "<h2>Data problems (2)</h2>" in page
    assert codedance_cli("view", str(out)).exit_code == 0
    assert 'id="task-ok"' in (out / "view.html").read_text()


def test_strict_option_raises_the_first_bad_row(ragged, tmp_path):
    data, _ = ragged
    from codedance.evaluation.benchmark import BenchmarkDataError

    assert [t.id for t in Ragged(data).tasks(tmp_path)] == ["ok", "unreadable"]
    with pytest.raises(BenchmarkDataError, match="missing field 'gold'"):
        list(Ragged(data, {"strict": True}).tasks(tmp_path))


def test_safe_score_falls_back_to_text_and_records_why():
    task = Task("t", "q?", answer="n/a", answer_type="count")
    trajectory = Trajectory(task, "", Message.text("user", "q?"), answer="N/A")
    assert safe_score(Ragged(Path(".")), trajectory) == 1.0
    (problem,) = problems_of_run([], [trajectory])
    assert problem == DataProblem("t", problem.reason, "scored as text")
    assert "'n/a' is not a valid 'count' answer" in problem.reason


def test_compare_runs_of_different_benchmarks_and_subsets_compares_shared_tasks():
    from codedance.evaluation.report import compare_runs, summarize_run

    def run(benchmark: str, scores: dict[str, float], scorer: str) -> Any:
        trajectories = []
        for task_id, value in scores.items():
            task = Task(task_id, "q?", answer="1", metadata={"category": benchmark})
            trajectory = Trajectory(task, "", Message.text("user", "q?"), answer="1", model="m")
            trajectory.rewards["accuracy"] = value
            trajectories.append(trajectory)
        summary = summarize_run(trajectories, benchmark)
        summary.manifest = {"scorer": {"mode": scorer}}
        return summary

    first = run("chartqa", {"a": 1.0, "b": 0.0, "c": 1.0}, "official")
    second = run("chartqa-human", {"b": 1.0, "c": 1.0, "d": 0.0, "e": 0.0}, "lenient")
    text = compare_runs(first, second)
    assert text.startswith("# chartqa vs chartqa-human: m [1] vs m [2]")
    assert "Tasks: m [1] 3, m [2] 4, in both 2." in text
    assert "Scorers differ: m [1] official, m [2] lenient." in text
    assert "On the 2 tasks in both: m [1] 50.0%, m [2] 100.0% (delta +50.0)." in text


def test_a_run_where_no_row_loads_reports_then_fails(codedance_cli, ragged, tmp_path):
    data, replay = ragged
    (data / "questions.json").write_text(json.dumps([{"id": "a"}, {"id": "b"}]))
    out = tmp_path / "run"
    args = ["eval", "--benchmark", "ragged", "--data", str(data), "--model", f"replay:{replay}"]
    result = codedance_cli(*args, "--out", str(out))
    assert result.exit_code == 1
    assert "no task of 'ragged' could be loaded: all 2 rows were skipped" in result.output
    assert len(json.loads((out / "report.json").read_text())["data_problems"]) == 2


class Interrupted(Ragged):
    """Scoring the second task is interrupted (as by Ctrl-C)."""

    name = "interrupted"

    def score(self, trajectory: Trajectory) -> float:
        if trajectory.task.id == "unreadable":
            raise KeyboardInterrupt
        return 1.0


def test_an_interrupted_run_still_leaves_a_report(codedance_cli, ragged, register_plugin, tmp_path):
    @hookimpl
    def register_benchmarks(register):  # type: ignore[no-untyped-def]
        register(Interrupted)

    register_plugin(types.SimpleNamespace(register_benchmarks=register_benchmarks), "interrupted")
    data, replay = ragged
    out = tmp_path / "run"
    args = [
        "eval",
        "--benchmark",
        "interrupted",
        "--data",
        str(data),
        "--model",
        f"replay:{replay}",
    ]
    result = codedance_cli(*args, "--out", str(out), "--concurrency", "1")
    assert result.exit_code == 1  # click reports the interrupt as "Aborted!"
    assert "Partial report (1 tasks)" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == {"ok": 1.0}


def test_safe_score_raises_a_missing_dependency_instead_of_blaming_the_row():
    from codedance.core.errors import MissingDependencyError

    class NeedsExtra(Ragged):
        def score(self, trajectory: Trajectory) -> float:
            raise MissingDependencyError.for_extra("math_verify", "rewards", "Scoring 'math'")

    task = Task("t", "q?", answer="1", answer_type="math")
    trajectory = Trajectory(task, "", Message.text("user", "q?"), answer="1")
    with pytest.raises(MissingDependencyError):
        safe_score(NeedsExtra(Path(".")), trajectory)
    assert "data_problem" not in task.metadata


def test_a_bad_scorer_option_fails_before_the_run(codedance_cli, ragged, tmp_path):
    data, replay = ragged
    args = ["eval", "--benchmark", "ragged", "--data", str(data), "--model", f"replay:{replay}"]
    result = codedance_cli(*args, "--out", str(tmp_path / "run"), "--option", "scorer=kind")
    assert result.exit_code != 0
    assert "unknown scorer 'kind'" in result.output
    assert "--option scorer=<one of official>" in result.output
    assert not (tmp_path / "run" / "trajectories.jsonl").exists()
