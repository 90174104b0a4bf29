"""The multi-turn loop against a real local sandbox, with scripted model turns."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from codedance.core.config import SandboxConfig
from codedance.plugins.protocols.codedance import CodeDanceProtocol
from codedance.runtime.images import ImagePolicy, smart_resize
from codedance.runtime.loop import REMOVED_IMAGE, Limits, Runner, current_trajectory
from codedance.runtime.scripted import ScriptedModel
from codedance.runtime.store import RunWriter, read_trajectories
from codedance.runtime.types import Message, Task, Trajectory
from codedance.sandboxes.base import SandboxBackend, SandboxSession, SessionSpec
from codedance.sandboxes.local import LocalSandbox
from codedance.sandboxes.tools import bundle_tools
from codedance.tools.image import crop


def code(source: str) -> str:
    return f"<think>run it</think>\n<code>\n```python\n{source}\n```\n</code>"


@pytest.fixture(scope="module")
def sandbox():
    with LocalSandbox(SandboxConfig()) as backend:
        yield backend


@pytest.fixture
def image_task(tmp_path: Path) -> Task:
    path = tmp_path / "photo.png"
    picture = Image.new("RGB", (1000, 700), (255, 255, 255))
    picture.paste((255, 0, 0), (100, 100, 200, 150))
    picture.save(path)
    return Task(
        "img-1", "Where is the red box?", images=[str(path)], answer="2", answer_type="count"
    )


def solve(
    sandbox: SandboxBackend, task: Task, turns, infra_retries: int = 0, **limits
) -> Trajectory:
    runner = Runner(
        model=ScriptedModel(turns),
        protocol=CodeDanceProtocol(),
        sandbox=sandbox,
        limits=Limits(**limits),
        infra_retries=infra_retries,
    )
    return asyncio.run(runner.solve(task))


def test_code_then_answer_records_every_step(sandbox, image_task):
    trajectory = solve(sandbox, image_task, [code("print(6 * 7)"), "<answer>42</answer>"])
    assert (trajectory.stop, trajectory.answer, trajectory.tool_calls) == ("answer", "42", 1)
    first, second = trajectory.turns
    assert first.execution["stdout"] == "42\n"
    assert "Output:\n42" in first.observation.content_text
    assert first.sandbox_s > 0
    assert second.observation is None
    assert trajectory.messages()[-1].role == "assistant"


def test_the_sandbox_sees_the_image_exactly_as_the_model_does(sandbox, image_task):
    height, width = smart_resize(700, 1000)
    program = "from PIL import Image\nprint(input_image.size, Image.open('input_image.jpg').size)"
    trajectory = solve(sandbox, image_task, [code(program), "<answer>x</answer>"])
    assert trajectory.prompt.images[0].size == (width, height)
    assert trajectory.turns[0].execution["stdout"] == f"{(width, height)} {(width, height)}\n"


def test_state_persists_between_turns_of_one_trajectory(sandbox, image_task):
    turns = [code("x = 20"), code("print(x + 1)"), "<answer>21</answer>"]
    trajectory = solve(sandbox, image_task, turns)
    assert trajectory.turns[1].execution["stdout"] == "21\n"


def test_turn_limit_stops_and_the_last_observation_says_answer_now(sandbox, image_task):
    trajectory = solve(sandbox, image_task, [code("print(1)")] * 3, max_turns=3)
    assert (trajectory.stop, len(trajectory.turns), trajectory.tool_calls) == ("max_turns", 3, 2)
    assert "Give your final answer now" in trajectory.turns[1].observation.content_text
    assert trajectory.turns[2].execution is None  # the model cannot read it any more


def test_malformed_turn_is_an_observation_and_the_loop_goes_on(sandbox, image_task):
    trajectory = solve(sandbox, image_task, ["hmm", "<answer>3</answer>"])
    assert trajectory.turns[0].parsed.problem is not None
    assert "no code to run" in trajectory.turns[0].observation.content_text
    assert (trajectory.stop, trajectory.answer, trajectory.tool_calls) == ("answer", "3", 0)


def test_failed_executions_are_counted(sandbox, image_task):
    turns = [code("1 / 0"), code("print('ok')"), "<answer>1</answer>"]
    trajectory = solve(sandbox, image_task, turns)
    assert (trajectory.tool_calls, trajectory.failed_calls) == (2, 1)
    assert "ZeroDivisionError" in trajectory.turns[0].observation.content_text


def test_token_budget_stops_the_trajectory(sandbox, image_task):
    trajectory = solve(sandbox, image_task, [code("print(1)")] * 5, max_tokens=10)
    assert (trajectory.stop, len(trajectory.turns)) == ("max_tokens", 1)


def test_model_error_ends_with_its_reason(sandbox, image_task):
    trajectory = solve(sandbox, image_task, [code("print(1)")])  # the script runs out
    assert trajectory.stop == "model_error"
    assert "the script has 1 turns" in trajectory.error


class RefusingSandbox(SandboxBackend):
    """A backend that cannot start sessions: answering without code must not need one."""

    name = "refusing"

    def open_session(self, spec: SessionSpec | None = None) -> SandboxSession:
        raise OSError("no sandbox here")


def test_no_session_is_opened_for_a_direct_answer(image_task):
    backend = RefusingSandbox(SandboxConfig())
    assert solve(backend, image_task, ["<answer>2</answer>"]).stop == "answer"
    failed = solve(backend, image_task, [code("print(1)")])
    assert (failed.stop, failed.failure) == ("error", "sandbox_start")
    assert failed.error == "the sandbox session did not start: OSError: no sandbox here"


def test_unreadable_image_ends_the_trajectory_with_the_reason(sandbox, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    trajectory = solve(sandbox, Task("b", "q", images=[str(broken)]), ["<answer>1</answer>"])
    assert trajectory.stop == "error"
    assert "could not read the task's images" in trajectory.error


def test_oldest_observation_images_leave_the_context_first(sandbox, image_task):
    seen: list[list[Message]] = []

    def handler(messages):
        seen.append(list(messages))
        return (
            code("crop(input_image, (0, 0, 100, 100))") if len(seen) < 4 else "<answer>1</answer>"
        )

    runner = Runner(
        model=ScriptedModel(handler),
        protocol=CodeDanceProtocol(),
        sandbox=sandbox,
        tools=bundle_tools({"crop": crop}),
        limits=Limits(max_images=2),
    )
    trajectory = asyncio.run(runner.solve(image_task))
    assert trajectory.stop == "answer"
    last_context = seen[-1]
    assert sum(len(m.images) for m in last_context) == 2
    assert REMOVED_IMAGE in "".join(m.content_text for m in last_context)
    assert last_context[1].images  # the task's own image stays
    assert sum(len(t.observation.images) for t in trajectory.turns[:3]) == 3  # all kept on record


def test_tools_are_listed_in_the_system_prompt_and_callable(sandbox, image_task):
    runner = Runner(
        model=ScriptedModel(
            [code("print(crop(input_image, (0, 0, 56, 28)).size)"), "<answer>1</answer>"]
        ),
        protocol=CodeDanceProtocol(),
        sandbox=sandbox,
        tools=bundle_tools({"crop": crop}),
        tools_section="crop(image, box) -> Image",
    )
    trajectory = asyncio.run(runner.solve(image_task))
    assert trajectory.system.endswith("crop(image, box) -> Image")
    assert trajectory.turns[0].execution["stdout"] == "(56, 28)\n"


def test_many_trajectories_respect_the_concurrency_bound(sandbox):
    in_flight, peak = 0, 0

    async def main() -> list[Trajectory]:
        class Counting(ScriptedModel):
            async def generate(self, messages, *, stop=()):
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return await super().generate(messages, stop=stop)
                finally:
                    in_flight -= 1

        runner = Runner(
            model=Counting(["<answer>1</answer>"], delay_s=0.01),
            protocol=CodeDanceProtocol(),
            sandbox=sandbox,
        )
        tasks = [Task(f"t{i}", "q") for i in range(20)]
        return await runner.solve_all(tasks, concurrency=4)

    finished = asyncio.run(main())
    assert sorted(t.task.id for t in finished) == sorted(f"t{i}" for i in range(20))
    assert 1 < peak <= 4


def test_the_current_trajectory_is_visible_to_the_model(sandbox):
    seen = []

    def handler(messages):
        seen.append(current_trajectory.get().task.id)
        return "<answer>1</answer>"

    runner = Runner(model=ScriptedModel(handler), protocol=CodeDanceProtocol(), sandbox=sandbox)
    asyncio.run(runner.solve(Task("visible", "q")))
    assert seen == ["visible"]
    assert current_trajectory.get() is None


def test_trajectories_round_trip_through_the_run_folder(sandbox, image_task, tmp_path):
    program = "from PIL import Image\nImage.new('RGB', (60, 40), (0, 0, 255))"
    trajectory = solve(sandbox, image_task, [code(program), "<answer>1</answer>"])
    writer = RunWriter(tmp_path / "run")
    writer.write(trajectory)
    writer.close()
    line = json.loads((tmp_path / "run" / "trajectories.jsonl").read_text())
    saved = line["turns"][0]["execution"]["images"]
    assert saved == ["images/img-1/t0_0.png"]
    assert Image.open(tmp_path / "run" / saved[0]).size == (60, 40)
    parts = line["turns"][0]["observation"]["parts"]
    assert [p["path"] for p in parts if p["type"] == "image"] == saved
    (loaded,) = read_trajectories(tmp_path / "run")
    assert (loaded.answer, loaded.tool_calls, loaded.turns[0].parsed.code) == (
        "1",
        1,
        trajectory.turns[0].parsed.code,
    )


def test_resume_drops_a_torn_line_and_skips_finished_tasks(tmp_path):
    out = tmp_path / "run"
    writer = RunWriter(out)
    writer.write(Trajectory(Task("done", "q"), "", Message.text("user", "q"), answer="1"))
    writer.close()
    with (out / "trajectories.jsonl").open("a") as handle:
        handle.write('{"task": {"id": "torn"')  # killed mid-line
    with pytest.raises(Exception, match="--resume"):
        RunWriter(out)
    resumed = RunWriter(out, resume=True)
    assert resumed.done == {"done"}
    resumed.close()
    assert (out / "trajectories.jsonl").read_text().count("\n") == 1
    assert [t.task.id for t in read_trajectories(out)] == ["done"]


def test_image_policy_drops_slivers_and_enlarges_tiny_images():
    policy = ImagePolicy()
    assert policy.observation(Image.new("RGB", (1000, 4))) is None
    assert policy.observation(Image.new("RGB", (40, 30))).size[1] >= 112
    assert policy.fit(Image.new("RGBA", (100, 100), (0, 0, 0, 0))).getpixel((0, 0)) == (
        255,
        255,
        255,
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [((700, 1000), (700, 1008)), ((28, 28), (56, 56)), ((20000, 20000), (3556, 3556))],
)
def test_smart_resize_rounds_to_28_within_the_pixel_budget(size, expected):
    height, width = smart_resize(*size)
    assert (height, width) == expected
    assert height % 28 == 0
    assert width % 28 == 0
    assert height * width <= 16384 * 28 * 28


def test_a_sliver_left_out_of_the_observation_does_not_shift_the_saved_paths(
    sandbox, image_task, tmp_path
):
    program = (
        "from PIL import Image\n"
        "display(Image.new('RGB', (2000, 4), (255, 0, 0)))\n"  # a sliver: not shown
        "display(Image.new('RGB', (64, 64), (0, 0, 255)))"
    )
    trajectory = solve(sandbox, image_task, [code(program), "<answer>1</answer>"])
    assert trajectory.turns[0].execution["shown_images"] == [1]
    writer = RunWriter(tmp_path / "run")
    writer.write(trajectory)
    writer.close()
    (part,) = [p for p in trajectory.turns[0].observation.parts if p.type == "image"]
    assert part.path == "images/img-1/t0_1.png"
    assert Image.open(tmp_path / "run" / part.path).getpixel((0, 0)) == (0, 0, 255)


def test_the_writer_keeps_any_text_the_sandbox_returns_and_reads_it_back(sandbox, tmp_path):
    """Lone surrogates in an exception and a non-UTF-8 file name: saved, viewed, read back."""
    from codedance.runtime.viewer import write_view

    program = (
        "import os\n"
        'open(os.fsdecode(b"bad\\xff\\xfe.txt"), "w").write("x")\n'
        'raise ValueError("lone \\udcff and \\ud800 and \\x1b[2J")'
    )
    task = Task("bytes", "?", answer="1", answer_type="number")
    trajectory = solve(sandbox, task, [code(program), "<answer>1</answer>"])
    execution = trajectory.turns[0].execution
    assert execution["error"]["message"] == "lone \udcff and \ud800 and \x1b[2J"
    writer = RunWriter(tmp_path / "run")
    writer.write(trajectory)
    writer.close()
    (back,) = read_trajectories(tmp_path / "run")
    assert back.turns[0].execution == json.loads(json.dumps(execution))
    assert [os.fsencode(f) for f in back.turns[0].execution["files"]] == [b"bad\xff\xfe.txt"]
    assert (tmp_path / "run" / "trajectories.jsonl").read_bytes().decode("utf-8")
    assert write_view(tmp_path / "run").stat().st_size > 0
