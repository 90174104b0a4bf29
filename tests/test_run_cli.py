"""`codedance run`: the main job, end to end through the real protocol and local sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

CODE = "<think>measure</think>\n<code>\n```python\nprint(input_image.size[0])\n```\n</code>"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def tasks(tmp_path: Path) -> tuple[Path, Path]:
    """Three tasks with images, and the recorded turns that solve them."""
    Image.new("RGB", (112, 56), (200, 0, 0)).save(tmp_path / "wide.png")
    rows = [
        {
            "id": f"t{i}",
            "question": "How wide is the image?",
            "image": "wide.png",
            "answer": "112",
            "answer_type": "number",
        }
        for i in range(3)
    ]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    replay = [
        {"id": f"t{i}", "turns": [CODE, "<answer>{{last_stdout}}</answer>"]} for i in range(3)
    ]
    (tmp_path / "replay.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay))
    return tmp_path / "tasks.jsonl", tmp_path / "replay.jsonl"


def test_tasks_file_with_a_model_writes_scored_trajectories(codedance_cli, tasks, tmp_path):
    tasks_file, replay = tasks
    out = tmp_path / "run"
    result = codedance_cli("run", str(tasks_file), "--model", f"replay:{replay}", "--out", str(out))
    assert result.exit_code == 0, result.output
    saved = lines(out / "trajectories.jsonl")
    assert sorted(t["task"]["id"] for t in saved) == ["t0", "t1", "t2"]
    for trajectory in saved:
        assert trajectory["answer"] == "112"
        assert trajectory["rewards"]["accuracy"] == 1.0
        assert trajectory["turns"][0]["execution"]["stdout"] == "112\n"
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["accuracy"], summary["tool_calls_per_trajectory"]) == (1.0, 1.0)
    assert "No model was used" not in result.output


def test_resume_finishes_only_what_a_killed_run_left(codedance_cli, tasks, tmp_path):
    tasks_file, replay = tasks
    out = tmp_path / "run"
    args = ("run", str(tasks_file), "--model", f"replay:{replay}", "--out", str(out))
    assert codedance_cli(*args).exit_code == 0
    path = out / "trajectories.jsonl"
    kept = path.read_text().splitlines()[:1]
    path.write_text(kept[0] + "\n" + '{"task": {"id": "t1"')  # killed while writing t1
    refused = codedance_cli(*args)
    assert refused.exit_code == 1
    assert "--resume" in refused.output
    assert codedance_cli(*args, "--resume").exit_code == 0
    ids = [t["task"]["id"] for t in lines(path)]
    assert sorted(ids) == ["t0", "t1", "t2"]
    assert json.loads((out / "summary.json").read_text())["trajectories"] == 3


def test_one_image_and_question(codedance_cli, tasks, tmp_path):
    _, _ = tasks
    replay = tmp_path / "one.jsonl"
    replay.write_text(
        json.dumps({"id": "task-1", "turns": [CODE, "<answer>{{last_stdout}}</answer>"]})
    )
    out = tmp_path / "single"
    result = codedance_cli(
        "run",
        "--image",
        str(tmp_path / "wide.png"),
        "--question",
        "How wide?",
        "--answer",
        "112",
        "--answer-type",
        "count",
        "--model",
        f"replay:{replay}",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (trajectory,) = lines(out / "trajectories.jsonl")
    assert (trajectory["answer"], trajectory["rewards"]["accuracy"]) == ("112", 1.0)


def test_no_model_solves_the_built_in_examples_and_says_so(codedance_cli, tmp_path):
    """README's first command: real work on a fresh machine, with no model."""
    pytest.importorskip("rapidocr_onnxruntime")
    out = tmp_path / "examples-run"
    result = codedance_cli("run", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "No model was used" in result.output
    assert "--model openai:" in result.output
    saved = lines(out / "trajectories.jsonl")
    assert len(saved) == 4
    assert all(t["rewards"]["accuracy"] == 1.0 for t in saved)
    assert all(t["tool_calls"] >= 1 for t in saved)
    images = list((out / "images").rglob("*.png"))
    assert images, "the reference programs display images"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--model", "gpt4"), "is not NAME:TARGET"),
        (("--model", "nosuch:x"), "no model named 'nosuch'"),
        (("--image", "x.png"), "--image needs --question"),
    ],
)
def test_bad_invocations_explain_the_fix(codedance_cli, tasks, tmp_path, args, says):
    tasks_file, _ = tasks
    extra = () if args[0] == "--image" else (str(tasks_file),)
    result = codedance_cli("run", *extra, *args, "--out", str(tmp_path / "bad"))
    assert result.exit_code != 0
    assert says in result.output


def test_a_missing_image_names_the_line(codedance_cli, tmp_path):
    (tmp_path / "tasks.jsonl").write_text('{"question": "q", "image": "gone.png"}\n')
    result = codedance_cli("run", str(tmp_path / "tasks.jsonl"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "tasks.jsonl:1: image 'gone.png' not found" in result.output


def test_a_missing_model_server_fails_the_run_with_the_reason_and_fix(
    codedance_cli, tasks, tmp_path
):
    """Nothing listens on port 9: every task fails alike, so the run exits 1 and says why."""
    tasks_file, _ = tasks
    out = tmp_path / "run"
    result = codedance_cli(
        "-o",
        "model.max_retries=0",
        "-o",
        "model.name=m",
        "run",
        str(tasks_file),
        "--model",
        "openai:http://127.0.0.1:9/v1",
        "--out",
        str(out),
    )
    assert result.exit_code == 1, result.output
    assert "Errors by kind:" in result.output
    assert "model: 3 (the run failed); first, in task t" in result.output
    assert "every task failed: the model backend failed:" in result.output
    assert "Fix:" in result.output.split("every task failed", 1)[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == {"model": 3}
    assert len(lines(out / "trajectories.jsonl")) == 3


def test_failed_code_is_counted_by_error_type_without_failing_the_run(codedance_cli, tmp_path):
    broken = "<code>\n```python\n1 / 0\n```\n</code>"
    (tmp_path / "tasks.jsonl").write_text(json.dumps({"id": "z", "question": "?"}) + "\n")
    replay = {"id": "z", "turns": [broken, "<answer>0</answer>"]}
    (tmp_path / "replay.jsonl").write_text(json.dumps(replay) + "\n")
    args = ("run", str(tmp_path / "tasks.jsonl"), "--model", f"replay:{tmp_path / 'replay.jsonl'}")
    result = codedance_cli(*args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert (
        "code:ZeroDivisionError: 1 (the model's code); first, in task z: division" in result.output
    )
