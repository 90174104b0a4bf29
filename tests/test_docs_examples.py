"""The plugin examples in docs/plugins.md work with the real runtime, not only register."""

from __future__ import annotations

import asyncio
import json
import re
import types
from pathlib import Path

import pytest
from PIL import Image

from codedance.core.config import ModelConfig, RewardConfig
from codedance.evaluation.benchmark import BenchmarkDataError
from codedance.rewards.composition import RewardComposition
from codedance.runtime.loop import Runner
from codedance.runtime.types import Task
from codedance.sandboxes.handler import HandlerSandbox

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def example(hook: str) -> types.ModuleType:
    section = DOC.read_text(encoding="utf-8").split(f"## {hook}(register)", 1)[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    module = types.ModuleType(f"docs_{hook}")
    exec(compile(code, f"docs/plugins.md:{hook}", "exec"), module.__dict__)
    return module


def test_the_model_and_protocol_examples_solve_a_task_together(tmp_path):
    model = example("register_models").EchoModel(ModelConfig(backend="echo"))
    protocol = example("register_protocols").CodeTags()
    runner = Runner(model=model, protocol=protocol, sandbox=HandlerSandbox())
    trajectory = asyncio.run(runner.solve(Task("t", "seven")))
    assert (trajectory.stop, trajectory.answer) == ("answer", "seven")
    assert protocol.parse("<code>print(1)</code>").code == "print(1)"
    assert protocol.parse("nothing").problem is not None


def test_the_benchmark_example_reads_its_layout_and_explains_a_wrong_path(tmp_path):
    benchmark_class = example("register_benchmarks").CountShapes
    Image.new("RGB", (28, 28)).save(tmp_path / "a.png")
    rows = [{"id": 1, "image": "a.png", "question": "How many?", "count": 3, "category": "easy"}]
    (tmp_path / "questions.json").write_text(json.dumps(rows))
    (task,) = benchmark_class(tmp_path).tasks(tmp_path / "cache")
    assert (task.answer, task.answer_type, task.metadata["category"]) == ("3", "count", "easy")
    with pytest.raises(BenchmarkDataError, match=r"questions\.json"):
        list(benchmark_class(tmp_path / "missing").tasks(tmp_path / "cache"))


def test_the_reward_example_composes_with_its_params(register_plugin):
    registry = register_plugin(example("register_rewards"), name="docs-rewards")
    composition = RewardComposition.from_config(
        [RewardConfig(name="answer_length", params={"limit": 3})], registry
    )
    model = example("register_models").EchoModel(ModelConfig(backend="echo"))
    runner = Runner(
        model=model, protocol=example("register_protocols").CodeTags(), sandbox=HandlerSandbox()
    )
    short, long = (asyncio.run(runner.solve(Task(q, q))) for q in ("abc", "abcdef"))
    cards = composition.score_group([short, long])
    assert [c.components["answer_length"] for c in cards] == [1.0, 0.0]
    assert cards[0].parts["answer_length.group_mean"] == 4.5


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_the_readme_plugin_runs_its_tool_in_a_real_sandbox(tmp_path):
    """README's plugin folder, listed in a config, gives the model a working tool."""
    import os
    import subprocess
    import sys

    section = README.read_text(encoding="utf-8").split("## Plugins", 1)[1].split("\n## ")[0]
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL):
        path = tmp_path / re.match(r"# (\S+\.py):", block)[1]
        path.parent.mkdir(exist_ok=True)
        path.write_text(block)
    (tmp_path / "c.yaml").write_text("plugins: [my_tools]\n")
    Image.new("RGB", (4, 2), "red").save(tmp_path / "red.png")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    command = ["exec", "--image", "red.png", "--json", "-"]
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "--config", "c.yaml", *command],
        input="print(count_red_pixels(input_image))",
        cwd=tmp_path,
        env={**clean, "CODEDANCE_LOAD_PLUGINS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr
    assert json.loads(result.stdout)["stdout"] == "8\n"


TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "writing-a-plugin.md"


@pytest.mark.slow
def test_the_loose_file_plugin_of_the_tutorial_works_as_shown(tmp_path):
    """Each `name`: block of 'Alternative: loose .py files', written out, then its commands."""
    import os
    import subprocess
    import sys

    section = TUTORIAL.read_text(encoding="utf-8").split("## Alternative: loose", 1)[1]
    for name, body in re.findall(r"`([\w.]+)`:\n\n```\w+\n(.*?)```", section, flags=re.DOTALL):
        (tmp_path / name).write_text(body)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "_shout_tools.py",
        "codedance.yaml",
        "my_plugin.py",
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "--config", "codedance.yaml", "exec", "-"],
        input='print(shout("hi"))',
        cwd=tmp_path,
        env={**clean, "CODEDANCE_LOAD_PLUGINS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "HI!\n"), result.stderr
    assert "warning:" not in result.stderr


CONFIGURATION = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@pytest.mark.slow
def test_the_documented_replay_file_answers_by_running_its_code(tmp_path):
    import os
    import subprocess
    import sys

    (block,) = re.findall(r"~~~jsonl\n(.*?)~~~", CONFIGURATION.read_text(encoding="utf-8"), re.S)
    (tmp_path / "replay.jsonl").write_text(block)
    task = {"id": "sum", "question": "What is 2 + 3?", "answer": "5", "answer_type": "number"}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    args = ["run", "tasks.jsonl", "--model", "replay:replay.jsonl", "--out", "out"]
    result = subprocess.run(
        [sys.executable, "-m", "codedance", *args],
        cwd=tmp_path,
        env={**clean, "CODEDANCE_LOAD_PLUGINS": ""},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    (trajectory,) = [json.loads(line) for line in (tmp_path / "out/trajectories.jsonl").open()]
    assert (trajectory["stop"], trajectory["answer"]) == ("answer", "5")
    assert trajectory["rewards"]["accuracy"] == 1.0
