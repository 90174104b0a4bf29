"""``codedance eval --judge``: the official grader prompt sent to a real local HTTP server.

Nothing is mocked: a ``ThreadingHTTPServer`` on 127.0.0.1 speaks the OpenAI chat API
(``/v1/models``, ``/v1/chat/completions``), records every prompt and grades as a strict
judge would (score 1 when the response holds the ground truth). The eval runs the real
CharXiv records (tests/data/real/charxiv) through the CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from codedance.plugins.benchmarks.charxiv import CharXivBenchmark
from codedance.plugins.benchmarks.hrbench import official_judge_prompt
from codedance.plugins.benchmarks.mathverse import MathVerse
from codedance.runtime.types import Task

REAL = Path(__file__).parent / "data" / "real" / "charxiv"


class Grader(BaseHTTPRequestHandler):
    """CharXiv's grader reply format: JSON with the extracted answer and the score."""

    def do_GET(self) -> None:
        self._reply({"object": "list", "data": [{"id": "grader-1", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        self.server.prompts.append(prompt)  # type: ignore[attr-defined]
        turn = prompt.rpartition("### Your Turn ###")[2]  # not the rubric's worked examples
        truth = re.search(r"\* Ground Truth: (.*)", turn)
        response = re.search(r"\* Response: (.*)", turn)
        right = bool(truth and response and truth.group(1).strip() in response.group(1))
        content = json.dumps({"extracted_answer": "x", "score": int(right)})
        self._reply({"choices": [{"message": {"role": "assistant", "content": content}}]})

    def _reply(self, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def grader() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Grader)
    server.prompts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def charxiv_data(tmp_path: Path) -> Path:
    root = tmp_path / "charxiv"
    shutil.copytree(REAL, root)
    entries = json.loads((root / "data" / "reasoning_val.json").read_text())
    (root / "images").mkdir()
    for entry in entries.values():
        Image.new("RGB", (8, 8), "white").save(root / "images" / f"{entry['figure_id']}.jpg")
    return root


def test_judge_grades_charxiv_with_its_own_prompt(codedance_cli, grader, tmp_path: Path) -> None:
    data = charxiv_data(tmp_path)
    replies = [  # the first three reasoning questions: right, wrong, right
        {"id": "0", "turns": ["<answer>Joint-CNN</answer>"]},
        {"id": "2", "turns": ["<answer>lambda_L = 0.5</answer>"]},
        {"id": "3", "turns": ["The subplot is <answer>(b) OPT</answer>"]},
    ]
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in replies))
    out = tmp_path / "run"
    endpoint = f"http://127.0.0.1:{grader.server_address[1]}/v1"
    result = codedance_cli(
        "eval", "--benchmark", "charxiv", "--data", str(data), "--model", f"replay:{replay}",
        "--out", str(out), "--limit", "3", "--judge", endpoint,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == {"0": 1.0, "2": 0.0, "3": 1.0}, report["results"]
    assert report["manifest"]["scorer"]["mode"] == "judge"
    assert endpoint in report["manifest"]["scorer"]["grader"]
    assert "grader-1" in report["manifest"]["scorer"]["grader"]
    prompts = grader.prompts  # type: ignore[attr-defined]
    assert len(prompts) == 3  # tasks run concurrently: the prompts come in any order
    for prompt in prompts:
        assert prompt.startswith("\nYou will be given a question, an ground truth answer")
        assert "### Rules ###" in prompt
    (first,) = [p for p in prompts if "Which model shows a greater decline in accuracy" in p]
    assert "* Question: Which model shows a greater decline in accuracy" in first
    assert "* Ground Truth: Joint-CNN" in first


def test_an_unreachable_judge_stops_the_eval_before_any_task(codedance_cli, tmp_path) -> None:
    data = charxiv_data(tmp_path)
    result = codedance_cli(
        "eval", "--benchmark", "charxiv", "--data", str(data), "--model", "replay:none.jsonl",
        "--out", str(tmp_path / "run"), "--judge", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "127.0.0.1:9" in result.output
    assert not (tmp_path / "run" / "trajectories.jsonl").exists()


def test_charxiv_descriptive_prompt_is_a_batch_of_one_under_the_rubric() -> None:
    task = Task("0_0", "q", answer="60", metadata={"qid": 7, "rule": "term"})
    prompt = CharXivBenchmark(Path(".")).judge_prompt(task, "It is 60.")
    assert prompt is not None
    assert "You will be given 1 pairs of ground truth answers" in prompt
    assert "What is the spatially highest labeled tick on the y-axis?" in prompt
    assert "['extract_answer_T1', 'score_T1']" in prompt
    assert prompt.endswith("T1:\nResponse 1: It is 60.\nGround Truth 1: 60\n\n")
    bench = CharXivBenchmark(Path("."))
    assert bench.judge_verdict('{"extract_answer_T1": "60", "score_T1": 1}') == 1.0
    assert bench.judge_verdict('{"extract_answer_T1": "6", "score_T1": 0}') == 0.0
    assert bench.judge_verdict("no json") is None


def test_mathverse_and_hrbench_fill_their_own_judge_prompts() -> None:
    task = Task("1", "q", answer="C", metadata={"raw_question": "Find BC.\nChoices:\nA:1\nC:2"})
    prompt = MathVerse(Path(".")).judge_prompt(task, "so <answer>C</answer>")
    assert prompt is not None
    assert prompt.endswith("[Question]: Find BC.\nChoices:\nA:1\nC:2\n[Standard Answer]: C\n"
                           "[Model_answer] : C\nJudgement: ")  # fmt: skip
    assert MathVerse(Path(".")).judge_verdict("Judgement: 1") == 1.0
    asked = official_judge_prompt("What color?", ["red", "blue"], "B", "B. blue")
    assert asked == (
        "Given the following question: What color?\nOptions:\nA. red\nB. blue\nPlease select "
        "the correct answer from the options above. \n, the correct answer is: B. blue. Does "
        "the following answer correctly answers the question, answer:B. blue?"
    )
