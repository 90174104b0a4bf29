"""``codedance view``: a run folder rendered as one self-contained, escaped HTML page."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from codedance.commands.view import view_command
from codedance.runtime.types import Message, Parsed, Part, Task, Trajectory, Turn
from codedance.runtime.viewer import load_run, render_html, run_stats, write_view
from codedance.sandboxes.base import CapturedImage, ErrorInfo, ExecutionRecord

MAGENTA = (255, 0, 255)
HOSTILE_THOUGHT = "Look closer <script>document.title='pwned'</script>"
INJECT = "document.body.insertAdjacentHTML('beforeend','<p id=pwned>')"
HOSTILE_QUESTION = f'Which colour? <img src=x onerror="{INJECT}">'
CODE = "for row in range(2):\n    if row:\n        print('<b>row</b>', row)\nshow(image)"
OUTPUT = "images/magenta/turn0_0.png"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"


def _solved(tmp_path: Path) -> Trajectory:
    """A code turn that displayed a magenta image, a malformed turn, then an answer."""
    (tmp_path / "images/magenta").mkdir(parents=True)
    Image.new("RGB", (64, 40), (0, 128, 255)).save(tmp_path / "images/magenta/input_0.png")
    shot = CapturedImage("RGB", 200, 120, Image.new("RGB", (200, 120), MAGENTA).tobytes())
    shot.save(tmp_path / OUTPUT)
    record = ExecutionRecord(stdout="<b>row</b> 1\n", images=(shot,), duration_s=0.25)
    observation = Message(
        "user", [Part.of_text("stdout: <b>row</b> 1"), Part("image", path=OUTPUT)]
    )
    turns = [
        Turn(0, f"{HOSTILE_THOUGHT}<code>{CODE}</code>", Parsed(HOSTILE_THOUGHT, code=CODE),
             record.to_json([OUTPUT]), observation, 100, 40, model_s=1.5, sandbox_s=0.3),
        Turn(1, "I think", Parsed("I think", problem="no <code> or <answer> block: write one")),
        Turn(2, "<answer>magenta</answer>", Parsed(answer="magenta"), prompt_tokens=150),
    ]  # fmt: skip
    return _trajectory("magenta", HOSTILE_QUESTION, "magenta", turns, {"accuracy": 1.0})


def _failed() -> Trajectory:
    """A code turn that raised and whose output image and input image are both missing."""
    error = ErrorInfo("ValueError", "bad <crop>", "Traceback:\n  line 1\nValueError: bad <crop>")
    record = ExecutionRecord(stderr="warn", error=error, duration_s=0.1)
    turn = Turn(
        0, "<code>crop()</code>", Parsed(code="crop()"), record.to_json(["images/gone/0.png"])
    )
    trajectory = _trajectory("broken-crop", "How many?", None, [turn], {"accuracy": 0.0})
    trajectory.stop, trajectory.input_images = "max_turns", ["images/gone/input.png"]
    return trajectory


def _trajectory(
    id_: str, question: str, answer: str | None, turns: list[Turn], rewards: dict[str, float]
) -> Trajectory:
    inputs = [f"images/{id_}/input_0.png"] if id_ == "magenta" else []
    return Trajectory(
        task=Task(id_, question, answer="magenta"), system="You write code.",
        prompt=Message.text("user", question), turns=turns, answer=answer, model="scripted",
        duration_s=2.5, input_images=inputs, rewards=rewards,
    )  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder with two trajectories, one unreadable line and a summary."""
    lines = [json.dumps(t.to_json()) for t in (_solved(tmp_path), _failed())]
    (tmp_path / "trajectories.jsonl").write_text("\n".join([*lines, "{not json"]) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps({"accuracy": 0.5, "note": "<i>x</i>"}))
    return tmp_path


def _embedded_images(html: str) -> list[Image.Image]:
    uris = re.findall(r'src="data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB") for uri in uris]


def test_model_text_is_escaped_everywhere(run_dir: Path) -> None:
    html = render_html(load_run(run_dir))
    assert html.count("<script>") == 1  # the page's own, nothing the model wrote
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=" in html
    assert "<b>row</b>" not in html
    assert "&lt;b&gt;row&lt;/b&gt;" in html
    assert "bad &lt;crop&gt;" in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html


def test_code_keeps_its_whitespace_in_a_pre_block(run_dir: Path) -> None:
    html = render_html(load_run(run_dir))
    assert "<pre class='code'>for row in range(2):\n    if row:\n        print(" in html


def test_output_image_is_embedded_as_a_data_uri(run_dir: Path) -> None:
    images = _embedded_images(render_html(load_run(run_dir)))
    magenta = [im for im in images if im.size == (200, 120)]
    assert len(magenta) == 1  # shown with the execution, not repeated with the observation
    assert (np.asarray(magenta[0]) == MAGENTA).all()
    assert {im.size for im in images} == {(200, 120), (64, 40)}


def test_missing_images_become_placeholders_naming_the_path(run_dir: Path) -> None:
    html = render_html(load_run(run_dir))
    assert "image not shown: images/gone/0.png" in html
    assert "image not shown: images/gone/input.png" in html


def test_turns_show_thought_malformed_answer_and_error(run_dir: Path) -> None:
    html = render_html(load_run(run_dir))
    assert "malformed: no &lt;code&gt; or &lt;answer&gt; block: write one" in html
    assert "answer: magenta" in html
    assert "raised ValueError in 0.10 s" in html
    assert "ran cleanly in 0.25 s" in html
    assert "Traceback:\n  line 1" in html
    assert "observation sent back" in html
    assert "stdout: &lt;b&gt;row" in html


def test_header_summarises_the_run(run_dir: Path) -> None:
    run = load_run(run_dir)
    stats = run_stats(run.trajectories)
    assert (stats.count, stats.scored, stats.passed, stats.answered) == (2, 2, 1, 1)
    assert stats.calls_per_trajectory == 1.0
    assert stats.call_success_rate == 0.5
    assert stats.mean_rewards == {"accuracy": 0.5}
    html = render_html(run)
    assert "<b>50%</b><span>accuracy (1/2 scored pass)</span>" in html
    assert "<b>1.00</b><span>tool calls per trajectory</span>" in html


def test_unreadable_line_is_listed_not_fatal(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert len(run.trajectories) == 2
    assert [n for n, _ in run.broken] == [3]
    assert "line 3: JSONDecodeError" in render_html(run)


def test_limit_renders_only_the_first_trajectories(run_dir: Path) -> None:
    html = render_html(load_run(run_dir), limit=1)
    assert "broken-crop" not in html
    assert "the first 1 of 2 are shown below" in html


def test_large_images_are_downscaled_in_the_page(tmp_path: Path) -> None:
    Image.new("RGB", (2400, 300), MAGENTA).save(tmp_path / "wide.png")
    prompt = Message.text("user", "?")
    trajectory = Trajectory(Task("wide", "?"), "", prompt, input_images=["wide.png"])
    (tmp_path / "trajectories.jsonl").write_text(json.dumps(trajectory.to_json()))
    html = render_html(load_run(tmp_path))
    assert [im.size for im in _embedded_images(html)] == [(1600, 200)]
    assert "2400x300 shown at 1600px" in html


def test_cli_writes_view_html_into_the_run_folder(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    result = CliRunner().invoke(view_command, [str(run_dir), "--open"])
    assert result.exit_code == 0, result.output
    assert "(2 of 2 trajectories)" in result.output
    assert (run_dir / "view.html").is_file()
    assert opened == [(run_dir / "view.html").resolve().as_uri()]


def test_cli_accepts_a_jsonl_file_and_an_output_path(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "page.html"
    args = [str(run_dir / "trajectories.jsonl"), "--output", str(target), "--limit", "1"]
    result = CliRunner().invoke(view_command, args)
    assert result.exit_code == 0, result.output
    assert "(1 of 2 trajectories)" in result.output
    assert target.is_file()
    assert write_view(run_dir / "trajectories.jsonl") == run_dir / "trajectories.html"


def test_cli_names_the_missing_file_and_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(view_command, [str(tmp_path)])
    assert result.exit_code == 1
    assert "no trajectories.jsonl in" in result.output
    assert "Fix:" in result.output


# ---------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no chromium binary for the browser check; install it with: {INSTALL}")


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command = [binary, *flags, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_browser_displays_the_embedded_image(run_dir: Path, chromium: str, tmp_path: Path) -> None:
    """Chromium renders the page; the screenshot holds the magenta 200x120 output image."""
    page = write_view(run_dir, tmp_path / "moved" / "page.html")  # away from the images
    screenshot = tmp_path / "shot.png"
    args = [f"--screenshot={screenshot}", "--window-size=1200,2000", page.as_uri()]
    done = _chromium(chromium, tmp_path / "profile-shot", *args)
    assert screenshot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    ys, xs = np.nonzero(np.all(pixels == MAGENTA, axis=-1))
    assert len(xs) > 0, "no magenta pixel on the screenshot: the output image is not displayed"
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert (width, height) == (200, 120)
    assert len(xs) == 200 * 120


def test_browser_runs_only_the_page_script(run_dir: Path, chromium: str, tmp_path: Path) -> None:
    """The page's script runs (CSP hash is right); the model's injected markup does not."""
    page = write_view(run_dir)
    done = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    dom = done.stdout
    assert 'class="js-ready"' in dom, done.stderr[-2000:]
    assert "2 of 2 shown" in dom
    assert "<title>codedance view:" in dom
    assert 'id="pwned"' not in dom
    assert "<title>pwned" not in dom


def test_header_shows_reward_components_not_their_sub_scores(tmp_path: Path) -> None:
    task = Task("t", "q", answer="1")
    rewards = {"total": 1.2, "accuracy": 1.0, "bat": 0.2, "bat.difficulty": 0.3}
    trajectory = Trajectory(task, "", Message.text("user", "q"), answer="1", rewards=rewards)
    (tmp_path / "trajectories.jsonl").write_text(json.dumps(trajectory.to_json()) + "\n")
    page = render_html(load_run(tmp_path))
    assert "mean reward: bat<" in page
    assert "mean reward: bat.difficulty" not in page
    assert "bat.difficulty" in page  # still shown on the trajectory itself
