"""The subprocess backend example: under 100 lines, registered as any plugin, conformant.

``examples/subprocess_backend.py`` writes only a transport on top of
``codedance.sandboxes.engine``; the whole conformance suite runs against it, with
the class taken from the registry after loading the file through the same
``register_sandboxes`` hook a third party uses. The same file is the sandbox
example of docs/plugins.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from codedance.core.config import SandboxConfig
from codedance.core.discovery import load_registry
from codedance.core.registry import PluginInfo
from codedance.sandboxes.base import SandboxBackend
from codedance.testing import SandboxConformance

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "subprocess_backend.py"
#: Each session is a fresh interpreter: preload only what the viewers need (~0.4 s, not ~1.5 s).
OPTIONS = {"preload": ["PIL.Image", "matplotlib.pyplot"]}


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("codedance_example_subprocess", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _registered_class() -> type[SandboxBackend]:
    """The backend class as the registry hands it out after loading the example file."""
    registry = load_registry(env={"CODEDANCE_LOAD_PLUGINS": ""})
    added = registry.add_plugin(_load_example(), PluginInfo("subprocess-example", "test"))
    assert added, registry.problems
    backend_class: type[SandboxBackend] = registry.get("sandbox", "subprocess")
    return backend_class


class TestSubprocessExample(SandboxConformance):
    """The whole suite; no item is declared unsupported."""

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls) -> Iterator[SandboxBackend]:
        config = SandboxConfig(backend="subprocess", timeout_s=10, options=OPTIONS)
        with _registered_class()(config) as backend:
            yield backend


def test_the_example_is_under_100_lines():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 100, f"{EXAMPLE.name} has {len(lines)} lines"


def test_the_plugins_doc_shows_the_example_verbatim():
    """docs/plugins.md's register_sandboxes example is this file, so it passes the suite too."""
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = doc.split("## register_sandboxes(register)", 1)[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    body = EXAMPLE.read_text(encoding="utf-8").split('"""\n', 1)[1].lstrip("\n")
    assert code == body, "copy examples/subprocess_backend.py (after its docstring) into the doc"


def test_exec_runs_on_the_example_named_in_a_config_file(tmp_path):
    """The real CLI loads the file from ``plugins:`` and runs code on ``sandbox.backend``."""
    config = tmp_path / "registry.yaml"
    config.write_text(
        f"plugins: [{json.dumps(str(EXAMPLE))}]\n"
        f"sandbox: {{backend: subprocess, options: {json.dumps(OPTIONS)}}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "--config", str(config), "exec", "--json", "-"],
        input="import os\nprint(sorted(os.environ))\n6 * 7",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CODEDANCE_LOAD_PLUGINS": "", "CODEDANCE_TEST_SECRET": "s3cret"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["stdout"].endswith("\n42\n")
    assert "CODEDANCE_TEST_SECRET" not in record["stdout"]  # only the session's environment
    assert record["isolation"].startswith("none (subprocess example")


@pytest.fixture(scope="module")
def example_backend() -> Iterator[SandboxBackend]:
    config = SandboxConfig(backend="subprocess", timeout_s=10, options=OPTIONS)
    with _registered_class()(config) as backend:
        yield backend


def test_a_worker_killed_between_runs_is_reported_then_replaced(example_backend):
    """The transport failing (the child process gone) is a record, then a fresh worker."""
    with example_backend.open_session() as session:
        session.run("x = 1")
        session.process.kill()
        lost = session.run("print(x)")
        fresh = session.run("print('fresh', 'x' in dir())")
    assert lost.error is not None
    assert (lost.error.type, lost.session_died) == ("SessionDied", True)
    assert "a fresh one starts on the next run" in lost.error.message
    assert fresh.stdout == "fresh False\n"


def test_a_worker_that_never_answers_ready_is_a_sandbox_error(tmp_path):
    from codedance.sandboxes.base import SandboxError, SessionSpec

    session_class = _load_example().SubprocessSession

    class Broken(session_class):  # type: ignore[misc, valid-type]
        def connect(self):
            ours, theirs = socket.socketpair()
            self.process = subprocess.Popen([sys.executable, "-c", "pass"], stdin=theirs)
            theirs.close()
            return ours

    with pytest.raises(SandboxError, match=r"the sandbox worker did not start"):
        Broken(SandboxConfig(), SessionSpec(), str(tmp_path))


def test_the_engine_runs_in_any_python_and_its_result_becomes_a_record(tmp_path):
    """``worker.engine.Engine`` + ``record_from_engine``: the path for non-stream transports."""
    pytest.importorskip("PIL")
    from codedance.sandboxes.engine import WORKER_DIR, record_from_engine

    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(WORKER_DIR.parent)!r})\n"
        "from worker.engine import Engine\n"
        "engine = Engine('.', [], 8000)\n"
        "header, blobs = engine.run(\"print('hi')\\nfrom PIL import Image\\n"
        "Image.new('RGB', (2, 1), 'red')\")\n"
        "open('result.json', 'w').write(json.dumps([header, [b.hex() for b in blobs]]))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    header, blobs = json.loads((tmp_path / "result.json").read_text())
    record = record_from_engine(header, [bytes.fromhex(b) for b in blobs], "test")
    assert (record.stdout, record.isolation, record.ok) == ("hi\n", "test", True)
    assert record.images[0].to_pil().getpixel((1, 0)) == (255, 0, 0)
    with pytest.raises(ValueError, match="malformed"):
        record_from_engine({"stdout": "x"}, [], "test")
