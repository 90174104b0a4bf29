"""What `codedance run` (and `eval`, `synth`) say at the end: the reward's make-up, missing
packages, and a next-step command that works from a new shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from codedance.core import cli

CODE_TURN = "<think>read it</think>\n<code>\n```python\n{code}\n```\n</code>"


def test_invocation_is_the_script_path_when_a_new_shell_would_not_find_codedance(
    tmp_path, monkeypatch
):
    script = tmp_path / ".venv" / "bin" / "codedance"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli.invocation() == "./.venv/bin/codedance"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert cli.invocation() == "codedance"
    monkeypatch.setattr(sys, "argv", ["/somewhere/codedance/__main__.py"])
    assert cli.invocation() == f"{sys.executable} -m codedance"


@pytest.mark.slow
def test_run_explains_the_reward_and_names_tools_whose_package_is_missing(tmp_path):
    """OCR without rapidocr (hidden in the session): the run says which tools and the fix."""
    Image.new("RGB", (60, 40), "white").save(tmp_path / "w.png")
    task = {"id": "t1", "image": "w.png", "question": "What text?", "answer": "none"}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    hide = "import sys\nsys.modules['rapidocr_onnxruntime'] = None\nprint(read_text(input_image))"
    turns = [CODE_TURN.format(code=hide), "<think>done</think>\n<answer>none</answer>"]
    (tmp_path / "replay.jsonl").write_text(json.dumps({"id": "t1", "turns": turns}) + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    args = ["run", "tasks.jsonl", "--model", "replay:replay.jsonl", "--out", "runs/x"]
    result = subprocess.run(
        [sys.executable, "-m", "codedance", *args],
        cwd=tmp_path,
        env={**clean, "CODEDANCE_LOAD_PLUGINS": "", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "mean_reward 1.000 = 1 x accuracy (1.000) + 0.2 x format (0.000) + 1 x bat" in "\n".join(
        lines
    )
    assert any(line.startswith("  format: 0 for a well-formed trajectory") for line in lines)
    (warning,) = [line for line in lines if line.startswith("warning: tools unavailable")]
    assert warning.startswith("warning: tools unavailable in this run (read_text): OCR needs")
    assert "pip install 'codedance[ocr]'" in warning
    assert f"view them: {sys.executable} -m codedance view runs/x" in result.stdout
    assert Path(tmp_path / "runs/x/summary.json").is_file()


def test_eval_names_tools_whose_package_is_missing_and_a_working_view_command(
    codedance_cli, register_plugin, tmp_path
):
    """Like `run`: OCR without rapidocr is named with its fix; the view hint runs anywhere."""
    from tests.test_eval import plugin

    register_plugin(plugin())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "questions.json").write_text(
        json.dumps([{"id": "q1", "n": 1, "kind": "odd"}])
    )
    hide = (
        "import sys\nfrom PIL import Image\nsys.modules['rapidocr_onnxruntime'] = None\n"
        "print(read_text(Image.new('RGB', (60, 40), 'white')))"
    )
    turns = [CODE_TURN.format(code=hide), "<answer>2</answer>"]
    (tmp_path / "replay.jsonl").write_text(json.dumps({"id": "q1", "turns": turns}) + "\n")
    out = tmp_path / "run"
    result = codedance_cli(
        *("eval", "--benchmark", "doubling", "--data", str(tmp_path / "data")),
        *("--model", f"replay:{tmp_path / 'replay.jsonl'}", "--out", str(out)),
    )
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.output.splitlines() if "tools unavailable" in line]
    assert warning.startswith("warning: tools unavailable in this run (read_text): OCR needs")
    assert "pip install 'codedance[ocr]'" in warning
    assert f"trajectories: {cli.invocation()} view {out}" in result.output
