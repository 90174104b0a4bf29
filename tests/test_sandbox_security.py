"""Security suite for the local backend: hostile code is contained and reported.

Every test runs real attacks in a real bubblewrap sandbox; the whole module skips
when bubblewrap is missing (the backend then says it is unisolated, tested below).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.base import ExecutionRecord, SandboxSession, SessionSpec
from codedance.sandboxes.local import LocalSandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

ROOT = Path(__file__).resolve().parent.parent
SECRET = "codedance-test-secret-4f2a"


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalSandbox]:
    os.environ["CODEDANCE_TEST_SECRET"] = SECRET  # present on the host from the start
    os.environ["CODEDANCE_ALLOWED"] = "visible-by-name"
    config = SandboxConfig(timeout_s=5, max_processes=64, env=["CODEDANCE_ALLOWED"])
    with LocalSandbox(config) as sandbox:
        yield sandbox
    del os.environ["CODEDANCE_TEST_SECRET"], os.environ["CODEDANCE_ALLOWED"]


@pytest.fixture
def session(backend: LocalSandbox) -> Iterator[SandboxSession]:
    with backend.open_session(SessionSpec()) as opened:
        yield opened


def _lines(record: ExecutionRecord) -> dict[str, str]:
    """Parse ``key: value`` lines the probe printed."""
    assert record.error is None, record.error
    return dict(line.split(": ", 1) for line in record.stdout.splitlines() if ": " in line)


PROBE = """
import os
def probe(path):
    try:
        if os.path.isdir(path):
            return "dir " + ",".join(sorted(os.listdir(path))[:8])
        with open(path, "rb") as handle:
            handle.read(1)
        return "read"
    except Exception as exc:
        return type(exc).__name__
"""


def test_host_files_and_home_are_invisible(session, tmp_path):
    home_secret = Path.home() / ".codedance-security-probe"
    home_secret.write_text(SECRET)
    try:
        paths = [
            str(home_secret),
            str(ROOT / "pyproject.toml"),
            "/etc/shadow",
            str(tmp_path),
            "/root/.bashrc",
        ]
        code = PROBE + "\n".join(f"print({p!r} + ': ' + probe({p!r}))" for p in paths)
        seen = _lines(session.run(code))
    finally:
        home_secret.unlink()
    assert set(seen.values()) == {"FileNotFoundError"}, seen


def test_writes_outside_the_workdir_fail_and_tmp_is_private(backend, session):
    code = """
import os
for path in ["/usr/evil", "/etc/evil", "/evil", os.__file__ + ".evil"]:
    try:
        open(path, "w").write("x")
        print(path + ": written")
    except OSError as exc:
        print(path + ": " + type(exc).__name__)
try:
    open("/tmp/mine", "w").write("x")
    print("tmp: written")
except OSError as exc:  # a shared /tmp (interpreter under /tmp) is read-only for sessions
    print("tmp: " + type(exc).__name__)
open("here.txt", "w").write("x")
print("cwd: " + os.getcwd())
"""
    seen = _lines(session.run(code))
    assert seen.pop("cwd") == "/workspace"
    seen.pop("tmp")
    assert "written" not in seen.values(), seen
    with backend.open_session() as other:
        record = other.run("import os\nprint(os.path.exists('/tmp/mine'), os.listdir('/sessions'))")
    assert record.stdout == "False []\n"
    assert not Path("/tmp/mine").exists()


def test_host_environment_is_scrubbed_and_passed_only_by_name(session):
    code = """
import os, glob
leaked = []
for path in glob.glob("/proc/*/environ"):
    try:
        leaked.append(open(path, "rb").read())
    except OSError:
        pass
SECRET = "SECRET_VALUE"
found = any(SECRET.encode() in blob for blob in leaked) or SECRET in str(os.environ)
print("secret: " + str(found))
print("allowed: " + os.environ.get("CODEDANCE_ALLOWED", "missing"))
print("keys: " + ",".join(sorted(os.environ)))
""".replace("SECRET_VALUE", SECRET)
    seen = _lines(session.run(code))
    assert seen["secret"] == "False"
    assert seen["allowed"] == "visible-by-name"
    assert "CODEDANCE_TEST_SECRET" not in seen["keys"]


def test_network_is_unreachable_even_on_loopback(session):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"""
import socket
for host, port in [("1.1.1.1", 80), ("127.0.0.1", {port}), ("localhost", {port})]:
    try:
        socket.create_connection((host, port), timeout=2).close()
        print(host + ": connected")
    except OSError as exc:
        print(host + ": " + type(exc).__name__)
"""
    seen = _lines(session.run(code))
    with pytest.raises(TimeoutError):
        server.accept()  # nothing ever reached the host's loopback server
    server.close()
    assert "connected" not in seen.values(), seen


def test_host_processes_are_invisible_and_unkillable(session):
    host_pid = os.getpid()
    code = f"""
import os, signal
names = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        names.append(open(f"/proc/{{pid}}/cmdline", "rb").read())
    except OSError:
        pass
print("pytest: " + str(any(b"pytest" in n for n in names)))
try:
    os.kill({host_pid}, signal.SIGKILL)
    print("kill: sent")
except OSError as exc:
    print("kill: " + type(exc).__name__)
"""
    seen = _lines(session.run(code))
    assert seen == {"pytest": "False", "kill": "ProcessLookupError"}


def test_fork_bomb_is_capped_and_the_host_keeps_serving(backend, session):
    code = """
import os, time
count = 0
for _ in range(5000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    count += 1
print("forked: " + str(count))
"""
    seen = _lines(session.run(code, timeout=10))
    assert int(seen["forked"]) < 64
    bomb = session.run("import os\nwhile True:\n    os.fork()", timeout=2)
    assert bomb.timed_out or bomb.error is not None
    with backend.open_session() as other:
        assert other.run("print('still serving')").stdout == "still serving\n"


def test_memory_bomb_raises_memory_error(session):
    record = session.run("block = bytearray(64 * 2**30)")
    assert record.error is not None
    assert record.error.type == "MemoryError"
    assert session.run("print('alive')").stdout == "alive\n"


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_threads_and_detached_children_die_with_the_session(backend):
    marker = "987.654"
    session = backend.open_session()
    code = f"""
import subprocess, threading, time
threading.Thread(target=time.sleep, args=(600,), daemon=False).start()
subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
print("started: yes")
"""
    assert _lines(session.run(code)) == {"started": "yes"}
    assert _host_processes_with(marker), "the detached child should be running"
    session.close()
    deadline = time.monotonic() + 5
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []


def test_huge_output_is_cut_without_blocking(session):
    record = session.run("import sys\nfor _ in range(50):\n    sys.stdout.write('y' * 1_000_000)")
    assert record.ok
    assert record.truncated == ("stdout",)
    assert "49968000 more bytes were cut" in record.stdout


def test_killing_init_or_closing_stdio_does_not_break_the_session(session):
    code = "import os, signal\nos.kill(1, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)"
    session.run(code)
    session.run("import os\nos.close(0); os.close(1); os.close(2)")
    assert session.run("print('fine')").stdout == "fine\n"


def test_forged_frames_on_stdout_are_just_output(session):
    forged = b'\\x00\\x00\\x00\\x0f{"op": "ready"}\\x00codedance-end-0000\\x00'
    record = session.run(f"import os\nos.write(1, {forged.decode()!r}.encode('latin-1'))\nx = 1")
    assert record.ok
    assert '{"op": "ready"}' in record.stdout
    assert session.run("x").stdout == "1\n"


def test_exec_cli_reports_attacks_as_records(tmp_path):
    attack = tmp_path / "attack.py"
    attack.write_text(
        "import os, socket\nprint(os.environ.get('CODEDANCE_TEST_SECRET'))\n"
        "socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
    )
    env = {**os.environ, "CODEDANCE_TEST_SECRET": SECRET, "CODEDANCE_LOAD_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "exec", "--json", str(attack)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["stdout"] == "None\n"
    assert record["error"]["type"] == "OSError"
    assert "namespaces" in record["isolation"]


def test_concurrent_sessions_stay_separate(backend):
    results: dict[int, str] = {}

    def work(index: int) -> None:
        with backend.open_session() as own:
            own.run(f"value = {index}")
            results[index] = own.run("value").stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"{i}\n" for i in range(8)}


def test_the_host_scripts_folder_and_cwd_stay_invisible(tmp_path):
    """sys.path[0] (the running script's folder) holds secrets such as a project's .env."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(f"API_KEY={SECRET}\n")
    probe = f"print(open({str(project / '.env')!r}).read())"
    (project / "driver.py").write_text(
        "from codedance.sandboxes.local import LocalSandbox\n"
        "with LocalSandbox() as backend, backend.open_session() as session:\n"
        f"    record = session.run({probe!r})\n"
        "    print(record.error.type if record.error else record.stdout)\n"
    )
    result = subprocess.run(
        [sys.executable, str(project / "driver.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FileNotFoundError"
