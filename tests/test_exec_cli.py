"""`codedance exec`: one fresh session, one record, exit 0 whatever the code did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIL = pytest.importorskip("PIL.Image")


def _exec(*args: str, stdin: str | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEDANCE_LOAD_PLUGINS": ""}
    return subprocess.run(
        [sys.executable, "-m", "codedance", "exec", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def test_json_record_has_the_documented_keys_and_saved_images(tmp_path):
    image = tmp_path / "photo.png"
    PIL.new("RGB", (30, 20), "blue").save(image)
    code = "print(input_image.size, open('photo.png', 'rb').read(4))\nimage.crop((0, 0, 10, 10))"
    result = _exec(
        "--json",
        "--image",
        str(image),
        "--out",
        str(tmp_path / "out"),
        "-",
        stdin=code,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    for key in (
        "stdout",
        "stderr",
        "truncated",
        "error",
        "images",
        "files",
        "timed_out",
        "session_died",
        "duration_s",
        "isolation",
        "infrastructure",
    ):
        assert key in record
    assert record["stdout"] == "(30, 20) b'\\x89PNG'\n"  # a model's name, and the file's own
    (saved,) = record["images"]
    assert PIL.open(saved).size == (10, 10)


def test_failing_code_still_exits_zero_with_the_error(tmp_path):
    result = _exec("--json", "-", stdin="raise KeyError('k')", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout)["error"]["type"] == "KeyError"


def test_timeout_option_is_applied(tmp_path):
    result = _exec(
        "--json", "--timeout", "1", "-", stdin="import time\ntime.sleep(20)", cwd=tmp_path
    )
    record = json.loads(result.stdout)
    assert record["timed_out"] is True


def test_human_output_shows_output_traceback_and_status(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print('hello')\n1 / 0\n")
    result = _exec(str(script), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "hello\n"
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "[failed in" in result.stderr


def test_unknown_backend_is_a_clear_framework_error(tmp_path):
    result = _exec("--backend", "dokcer", "-", stdin="1", cwd=tmp_path)
    assert result.returncode == 1
    assert "no sandbox named 'dokcer'" in result.stderr


def test_the_quick_start_demo_returns_its_crop(tmp_path):
    result = _exec(
        "--json", "--out", str(tmp_path), str(ROOT / "examples" / "sandbox_demo.py"), cwd=tmp_path
    )
    record = json.loads(result.stdout)
    assert record["stdout"] == "square found at (120, 96, 184, 160)\n"
    assert PIL.open(record["images"][0]).size == (64, 64)


def test_bench_sandbox_command_is_registered_and_documented(tmp_path):
    env = {**os.environ, "CODEDANCE_LOAD_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "bench", "sandbox", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0
    assert "--quick" in result.stdout


HOSTILE = (
    "import os\n"
    'open(os.fsdecode(b"bad\\xff.txt"), "w").write("x")\n'
    'print("clip \\x1b]52;c;aGVsbG8=\\x07 title \\x1b]0;pwned\\x07 clear \\x1b[2J "\n'
    '      "c1 \\x9b31m cr \\r ok\\tend")\n'
    'raise ValueError("lone \\udcff \\x1b[31mred")\n'
)


def test_human_output_shows_terminal_escapes_instead_of_sending_them(tmp_path):
    result = _exec("--no-tools", "-", stdin=HOSTILE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    both = result.stdout + result.stderr
    allowed = {"\n", "\t"}
    assert not [c for c in both if (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F) and c not in allowed]
    assert "clip \\x1b]52;c;aGVsbG8=\\x07 title \\x1b]0;pwned\\x07 clear \\x1b[2J" in result.stdout
    assert "c1 \\x9b31m cr \\x0d ok\tend" in result.stdout
    assert "ValueError: lone \\udcff \\x1b[31mred" in result.stderr


def test_json_output_keeps_control_characters_and_undecodable_names_exactly(tmp_path):
    result = _exec("--no-tools", "--json", "-", stdin=HOSTILE, cwd=tmp_path)
    record = json.loads(result.stdout)
    assert "\x1b]52;c;aGVsbG8=\x07" in record["stdout"]
    assert "\r ok\tend" in record["stdout"]
    assert record["error"]["message"] == "lone \udcff \x1b[31mred"
    assert [os.fsencode(name) for name in record["files"]] == [b"bad\xff.txt"]


def test_exec_caps_native_threads_as_configured(tmp_path):
    code = "import os\nprint(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'])"
    result = _exec("--no-tools", "-", stdin=code, cwd=tmp_path)
    assert result.stdout == "1 1\n", result.stderr
    env = {**os.environ, "CODEDANCE_LOAD_PLUGINS": ""}
    raised = subprocess.run(
        [sys.executable, "-m", "codedance", "-o", "sandbox.threads=2", "exec", "--no-tools", "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert raised.stdout == "2 2\n", raised.stderr
