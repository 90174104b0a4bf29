"""The framework's failures told apart from the model's, with the real local backend.

A session that cannot start and a worker killed from outside are infrastructure:
retried, then left unscored, never a failed call in BAT. The model's own
``os._exit`` or segfault is the model's failure and counts as one.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codedance import hookimpl
from codedance.core.config import LocalSandboxConfig, SandboxConfig
from codedance.evaluation.report import markdown, summarize_run
from codedance.plugins.protocols.codedance import CodeDanceProtocol
from codedance.rewards.bat import BATReward
from codedance.rewards.components import AccuracyReward
from codedance.runtime.failures import fatal_message, summarize_failures
from codedance.runtime.loop import Runner
from codedance.runtime.scripted import ScriptedModel
from codedance.runtime.types import Message, Task, Trajectory, Turn
from codedance.sandboxes.base import SandboxSession
from codedance.sandboxes.local import LocalSandbox


def code(source: str) -> str:
    return f"<think>run it</think>\n<code>\n```python\n{source}\n```\n</code>"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(SandboxConfig(timeout_s=10)) as backend:
        yield backend


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _session_init(backend: LocalSandbox) -> int:
    """The host pid of the (only) live session's init: the parent of the deepest process."""
    assert backend._zygote is not None
    tree, depth, best = _children(), {backend._zygote.process.pid: 0}, None
    queue = [backend._zygote.process.pid]
    while queue:
        pid = queue.pop()
        for child in tree.get(pid, []):
            depth[child] = depth[pid] + 1
            queue.append(child)
            if best is None or depth[child] > depth[best[1]]:
                best = (pid, child)
    assert best is not None, "no session process found under the zygote"
    return best[0]


class KillOnce:
    """Model turns that, on the first attempt only, kill the session's init from the host."""

    def __init__(self, backend: LocalSandbox) -> None:
        self.backend, self.killed = backend, False

    def __call__(self, messages: list[Message]) -> str:
        assistant_turns = sum(m.role == "assistant" for m in messages)
        if assistant_turns == 0:
            return code("x = 41")
        if assistant_turns == 1 and not self.killed:
            self.killed = True
            os.kill(_session_init(self.backend), signal.SIGKILL)
            time.sleep(0.2)
            return code("print(x + 1)")
        if assistant_turns == 1:
            return code("print(x + 1)")
        return "<answer>42</answer>"


def solve(backend, task: Task, turns, retries: int = 0) -> Trajectory:
    runner = Runner(
        model=ScriptedModel(turns),
        protocol=CodeDanceProtocol(),
        sandbox=backend,
        infra_retries=retries,
    )
    return asyncio.run(runner.solve(task))


TASK = Task("t1", "What is 6 x 7?", answer="42", answer_type="number")


@pytest.fixture
def lone() -> Iterator[LocalSandbox]:
    """A backend of its own, so that its only session is the one the test kills.

    No warm pool: a pre-forked session would not need the folder the start test removes.
    """
    with LocalSandbox(
        SandboxConfig(timeout_s=10, local=LocalSandboxConfig(pool_size=0))
    ) as backend:
        yield backend


def _needs_pid_namespace(trajectory: Trajectory) -> None:
    """Without its own PID namespace a session's holder outlives a killed init."""
    if "pid" not in trajectory.turns[0].execution["isolation"]:
        pytest.skip("sessions get no PID namespace here: killing init leaves the holder")


def test_a_worker_killed_from_outside_is_infrastructure_and_retried(lone):
    trajectory = solve(lone, TASK, KillOnce(lone), retries=1)
    _needs_pid_namespace(trajectory)
    assert (trajectory.failure, trajectory.attempts, trajectory.answer) == (None, 2, "42")
    assert trajectory.failed_calls == 0


def test_without_retries_a_lost_worker_is_unscored_not_a_failed_call(lone):
    trajectory = solve(lone, TASK, KillOnce(lone), retries=0)
    _needs_pid_namespace(trajectory)
    assert (trajectory.stop, trajectory.failure) == ("error", "sandbox_lost")
    lost = trajectory.turns[-1]
    assert lost.execution["infrastructure"]
    assert lost.execution["session_died"]
    assert (trajectory.tool_calls, trajectory.failed_calls) == (1, 0)
    assert AccuracyReward().score(trajectory).parts == {"unscored": 1.0, "infrastructure": 1.0}


@pytest.mark.parametrize(
    "crash",
    ["import os\nos._exit(3)", "import ctypes\nctypes.string_at(0)"],
    ids=["os._exit", "segfault"],
)
def test_the_models_own_crash_is_the_models_failed_call(sandbox, crash):
    trajectory = solve(sandbox, TASK, [code(crash), "<answer>1</answer>"], retries=2)
    (turn, _) = trajectory.turns
    assert turn.execution["session_died"]
    assert not turn.execution["infrastructure"]
    assert (trajectory.failure, trajectory.attempts) == (None, 1)
    assert (trajectory.tool_calls, trajectory.failed_calls) == (1, 1)


def test_a_session_that_cannot_start_is_infrastructure(lone, monkeypatch):
    """The host cannot fork another session (at its process limit): no session can start.

    The fault is injected at the host edge (the backend's ``spawn``); everything the
    runtime does with it (retry, classify, leave unscored) is the real thing.
    """
    solve(lone, TASK, [code("print(1)"), "<answer>42</answer>"])  # the zygote is up
    monkeypatch.setattr(lone, "spawn", _fork_fails)
    trajectory = solve(lone, TASK, [code("print(1)"), "<answer>42</answer>"], retries=1)
    assert (trajectory.stop, trajectory.failure, trajectory.attempts) == (
        "error",
        "sandbox_start",
        2,
    )
    assert "did not start: BlockingIOError" in (trajectory.error or "")
    assert AccuracyReward().score(trajectory).parts["infrastructure"] == 1.0
    assert trajectory.tool_calls == 0


def _trajectory(answer: str, executions: list[dict], failure: str | None = None) -> Trajectory:
    turns = [
        Turn(i, "x", CodeDanceProtocol().parse(code("1")), execution=e)
        for i, e in enumerate(executions)
    ]
    return Trajectory(TASK, "", Message.text("user", "q"), turns, answer=answer, failure=failure)


LOST = {"error": {"type": "SessionDied", "message": "lost"}, "infrastructure": True}
RAISED = {"error": {"type": "ValueError", "message": "bad"}}


def test_bat_counts_neither_lost_runs_nor_failed_rollouts():
    clean = _trajectory("42", [{"error": None}, LOST])
    model_failure = _trajectory("42", [{"error": None}, RAISED])
    infra = _trajectory("", [LOST], failure="sandbox_lost")
    results = BATReward().score_group([clean, model_failure, infra])
    assert results[0].parts["calls"] == 1.0
    assert results[0].parts["successful_calls"] == 1.0
    assert results[1].parts["calls"] == 2.0
    assert results[1].parts["successful_calls"] == 1.0
    assert results[0].parts["group_accuracy"] == 1.0  # the failed rollout is not a 0
    assert results[2].parts == {"infrastructure": 1.0}
    assert results[2].value == 0.0


def test_eval_report_leaves_framework_failures_out_of_accuracy_and_lists_them():
    good = _trajectory("42", [{"error": None}])
    good.rewards["accuracy"] = 1.0
    failed = _trajectory("", [], failure="sandbox_start")
    failed.error = "the sandbox session did not start: timed out"
    summary = summarize_run([good, failed], "synthetic")
    assert (summary.overall.n, summary.overall.accuracy) == (1, 100.0)
    report = markdown(summary)
    assert "| sandbox_start | 1 | yes | the sandbox session did not start: timed out |" in report
    assert "(view.html#task-t1)" in report
    assert summary.to_json()["failures"][0]["kind"] == "sandbox_start"


def test_errors_by_kind_keep_the_first_message_and_say_when_one_reason_failed_all():
    first = _trajectory("", [], failure="sandbox_start")
    first.error, first.stop = "did not start: A", "error"
    second = _trajectory("", [], failure="sandbox_start")
    second.error, second.stop = "did not start: B", "error"
    (row,) = summarize_failures([first, second])
    assert (row.kind, row.count, row.message, row.infrastructure) == (
        "sandbox_start",
        2,
        "did not start: A",
        True,
    )
    message = fatal_message([first, second])
    assert message is not None
    assert "did not start: A" in message
    assert "Fix: run `codedance doctor`" in message
    assert fatal_message([first, _trajectory("42", [])]) is None


def test_async_sessions_get_thread_caps_and_the_specs_own_env_wins(sandbox):
    from codedance.sandboxes.base import SessionSpec

    async def run() -> str:
        spec = SessionSpec(env={"MKL_NUM_THREADS": "3"})
        session: SandboxSession = await sandbox.aopen_session(spec)
        async with session:
            names = "OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS OPENCV_FOR_THREADS_NUM"
            program = f"import os\nprint([os.environ.get(n) for n in {names.split()!r}])"
            record = await session.arun(program)
        return record.stdout

    assert asyncio.run(run()) == "['1', '1', '3', '1']\n"


def test_admission_runs_one_at_a_time_and_the_wait_is_not_on_the_clock():
    """Five 0.8 s runs through one run slot: the last waits 3.2 s, past its 3 s limit."""
    config = SandboxConfig(timeout_s=3, admission={"starting": 2, "running": 1})
    program = "import time\nt = time.time()\ntime.sleep(0.8)\nprint(t, time.time())"

    async def run_all(backend: LocalSandbox) -> list[tuple[float, float]]:
        sessions = await asyncio.gather(*(backend.aopen_session() for _ in range(5)))
        records = await asyncio.gather(*(s.arun(program) for s in sessions))
        for session in sessions:
            await session.aclose()
        assert all(r.ok for r in records), [r.error for r in records]
        return sorted(tuple(map(float, r.stdout.split())) for r in records)  # type: ignore[misc]

    with LocalSandbox(config) as backend:
        spans = asyncio.run(run_all(backend))
        assert backend.admission.waited >= 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.01, spans
    assert spans[-1][0] - spans[0][0] > 3.0  # the last one was admitted after its limit


def _fork_fails() -> None:
    raise OSError(errno.EAGAIN, "fork: Resource temporarily unavailable")


class WipedLocalSandbox(LocalSandbox):
    """The real local backend on a host that cannot fork another session."""

    name = "local-wiped"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self.spawn = _fork_fails  # type: ignore[method-assign]


class WipedPlugin:
    @staticmethod
    @hookimpl
    def register_sandboxes(register):  # type: ignore[no-untyped-def]
        register(WipedLocalSandbox)


def _eval(codedance_cli, tmp_path: Path, config=(), extra=()):  # type: ignore[no-untyped-def]
    pytest.importorskip("rapidocr_onnxruntime")
    args = ["-o", "runtime.infra_retries=0", *config, "eval", "--benchmark", "synthetic"]
    args += ["--data", str(tmp_path / "gen"), "--option", "per_kind=1", *extra, "--out"]
    return codedance_cli(*args, str(tmp_path / "run"))


def test_eval_whose_sessions_cannot_start_exits_1_with_the_reason(
    codedance_cli, register_plugin, tmp_path
):
    register_plugin(WipedPlugin, name="wiped")
    result = _eval(codedance_cli, tmp_path, config=("-o", "sandbox.backend=local-wiped"))
    assert result.exit_code == 1, result.output
    assert "sandbox_start: 4 (the framework's failure, not scored)" in result.output
    assert "every task failed: the sandbox session did not start" in result.output
    assert "Fix: run `codedance doctor`" in result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["categories"]["all"]["n"] == 0  # no wrong answers were invented
    assert report["stops"] == {"infrastructure": 4}
    assert "Errors by kind" in (tmp_path / "run" / "report.html").read_text()


def test_eval_reports_the_models_code_errors_by_kind_with_a_link(codedance_cli, tmp_path):
    broken = "<code>\n```python\nraise RuntimeError('boom \\x1b[2J')\n```\n</code>"
    ids = ["count_shapes-0-0", "bar_chart-0-0", "small_tag-0-0", "triangle-0-0"]
    replay = "".join(
        json.dumps({"id": i, "turns": [broken, "<answer>0</answer>"]}) + "\n" for i in ids
    )
    (tmp_path / "replay.jsonl").write_text(replay)
    result = _eval(
        codedance_cli, tmp_path, extra=("--model", f"replay:{tmp_path / 'replay.jsonl'}")
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    markdown = (tmp_path / "run" / "report.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| code:RuntimeError"))
    assert "| 4 | no | boom \\x1b[2J |" in row
    assert "(view.html#task-" in row


def test_the_ocr_tool_sizes_onnxruntime_by_the_sessions_thread_cap():
    """onnxruntime ignores OMP_NUM_THREADS itself: the OCR tool passes it on."""
    pytest.importorskip("rapidocr_onnxruntime")
    from codedance.sandboxes.base import SessionSpec
    from codedance.sandboxes.tools import bundle_tools
    from codedance.tools.ocr import text_in

    program = (
        "import os\nfrom PIL import Image, ImageDraw\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "im = Image.new('RGB', (300, 80), 'white')\n"
        "ImageDraw.Draw(im).text((10, 30), 'HELLO 42', fill='black')\n"
        "print(text_in(im), len(os.listdir('/proc/self/task')) - before)"
    )
    added = {}
    for threads in (1, 3):
        with LocalSandbox(SandboxConfig(threads=threads, timeout_s=60)) as backend:
            spec = backend.session_spec(SessionSpec(tools=bundle_tools({"text_in": text_in})))
            with backend.open_session(spec) as session:
                record = session.run(program)
        assert record.ok, record.error
        text, count = record.stdout.rsplit(" ", 1)
        assert text == "HELLO 42"
        added[threads] = int(count)
    # At 1, onnxruntime starts no per-model pool (one process-wide thread at most);
    # at 3, each of the three models (detect, classify, recognise) gets 2 workers.
    assert added[1] <= 1, added
    assert added[3] >= added[1] + 3, added


def test_resume_runs_framework_failures_again_and_the_new_line_supersedes(tmp_path):
    from codedance.runtime.store import RunWriter, read_trajectories

    failed = _trajectory("", [], failure="sandbox_start")
    other = Trajectory(Task("t2", "?"), "", Message.text("user", "?"), answer="x")
    writer = RunWriter(tmp_path)
    writer.write(failed)
    writer.write(other)
    writer.close()
    resumed = RunWriter(tmp_path, resume=True)
    assert resumed.done == {"t2"}
    resumed.write(_trajectory("42", []))
    resumed.close()
    runs = read_trajectories(tmp_path)
    assert [(t.task.id, t.failure) for t in runs] == [("t2", None), ("t1", None)]


def test_viewer_marks_framework_failures_as_errors_with_an_anchor(tmp_path):
    from codedance.runtime.store import RunWriter
    from codedance.runtime.viewer import verdict, write_view

    failed = _trajectory("", [], failure="sandbox_lost")
    failed.rewards, failed.attempts = {"accuracy": 0.0, "accuracy.unscored": 1.0}, 3
    assert verdict(failed) == "error"
    writer = RunWriter(tmp_path)
    writer.write(failed)
    writer.close()
    page = write_view(tmp_path).read_text()
    assert 'id="task-t1"' in page
    assert "sandbox_lost: not the model&#x27;s, not scored" in page
    assert "3 (the framework failed the earlier ones)" in page
