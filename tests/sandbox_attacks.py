"""Host-side evidence for the local sandbox's security suite (tests/test_sandbox_security_*).

Each attack runs real hostile code in a real session; what is asserted is seen
from the host, never taken from the sandbox's word: canaries (a file, an
environment variable, a loopback server) never reached, a bystander process
alive, no process left running as the session's uid, the host's free disk
unchanged, record sizes within their caps, the session's cgroup peak within
``memory_mb``. Every attack is capped (small memory, short timeouts, an alarm
around each test) so a containment failure cannot harm the machine it runs on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.base import ExecutionRecord
from codedance.sandboxes.local import LocalSandbox, LocalSession

CANARY = "codedance-canary-" + os.urandom(6).hex()
CANARY_ENV = "CODEDANCE_SECURITY_CANARY"
MEMORY_MB = 256
MAX_CHARS = 2000
DISK_SLACK = 100 * 1024 * 1024

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-session uids need a root host")


def attack_config(**overrides: object) -> SandboxConfig:
    """Small caps: a containment failure must not be able to hurt the host."""
    values: dict[str, object] = {
        "timeout_s": 5,
        "memory_mb": MEMORY_MB,
        "cpu_time_s": 3,
        "max_processes": 32,
        "max_output_chars": MAX_CHARS,
        "local": {"workdir_mb": 64, "max_files": 2000, "pool_size": 1},
    }
    values.update(overrides)
    return SandboxConfig.model_validate(values)


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalSandbox]:
    os.environ[CANARY_ENV] = CANARY
    try:
        with LocalSandbox(attack_config()) as sandbox:
            yield sandbox
    finally:
        os.environ.pop(CANARY_ENV, None)


@pytest.fixture(autouse=True)
def alarm_guard() -> Iterator[None]:
    """No attack may hang the suite: SIGALRM fails the test after 120 s."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("the attack test ran past its 120 s guard")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class HostWatch:
    """Canaries and bystanders on the host, checked after every attack."""

    def __init__(self, folder: Path) -> None:
        self.canary_file = folder / "canary.txt"
        self.canary_file.write_text(CANARY)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reached = threading.Event()
        threading.Thread(target=self._listen, daemon=True).start()
        self.bystander = subprocess.Popen(["sleep", "600"])
        self.free_before = _free_bytes()

    def _listen(self) -> None:
        try:
            self.server.accept()
            self.reached.set()
        except OSError:
            pass

    def check(self, *records: ExecutionRecord) -> None:
        for record in records:
            text = json.dumps(record.to_json())
            assert CANARY not in text, "a host canary reached a record"
            assert_capped(record)
        assert not self.reached.is_set(), "the host's loopback canary server was reached"
        assert self.bystander.poll() is None, "the bystander process on the host was killed"
        drop = self.free_before - _free_bytes()
        assert drop < DISK_SLACK, f"the host's free disk fell by {drop >> 20} MB"

    def close(self) -> None:
        self.bystander.kill()
        self.bystander.wait()
        self.server.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostWatch]:
    watch = HostWatch(tmp_path)
    try:
        yield watch
    finally:
        watch.close()


def _free_bytes() -> int:
    stats = [os.statvfs(p) for p in ("/", "/tmp")]
    return min(s.f_bavail * s.f_frsize for s in stats)


def assert_capped(record: ExecutionRecord, max_chars: int = MAX_CHARS) -> None:
    """Every text field within its cap (stdout/stderr: the worker's 4x byte cap + note)."""
    assert len(record.stdout) <= 4 * max_chars + 300
    assert len(record.stderr) <= 4 * max_chars + 300
    if record.error is not None:
        assert len(record.error.message) <= max_chars + 100
        assert len(record.error.traceback) <= max_chars + 100
        assert len(record.error.type) <= 200
    assert len(record.files) <= 2000


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def wait_no_process_of(uid: int, timeout: float = 5.0) -> list[int]:
    """The processes still running as ``uid`` once ``timeout`` passed (empty: all gone)."""
    deadline = time.monotonic() + timeout
    while (left := processes_of_uid(uid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def session_uid(session: LocalSession) -> int:
    assert session.handle is not None
    assert session.handle.uid is not None
    return session.handle.uid


def peak_memory_mb(session: LocalSession) -> int:
    """The session's cgroup peak; skips where the host gives no cgroup (the records say
    ``NO CGROUP`` there, and memory is limited per process only)."""
    assert session.handle is not None
    if session.handle.cgroup is None:
        pytest.skip(f"no per-session cgroup on this host: {session.isolation}")
    return session.handle.cgroup.peak_memory_bytes() >> 20


def run_exec(tmp_path: Path, code: str, *args: str) -> tuple[dict[str, object], float]:
    """Run ``code`` through ``codedance exec --json`` with small caps; (record, seconds)."""
    attack = tmp_path / "attack.py"
    attack.write_text(code)
    config = tmp_path / "attack.yaml"
    config.write_text(
        f"sandbox:\n  timeout_s: 5\n  memory_mb: {MEMORY_MB}\n  cpu_time_s: 3\n"
        f"  max_output_chars: {MAX_CHARS}\n  local:\n    workdir_mb: 64\n"
        "    max_files: 2000\n    pool_size: 0\n"
    )
    env = {**os.environ, CANARY_ENV: CANARY, "CODEDANCE_LOAD_PLUGINS": ""}
    start = time.monotonic()
    argv = [sys.executable, "-m", "codedance", "--config", str(config), "exec", "--json"]
    result = subprocess.run(
        [*argv, *args, str(attack)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=90,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    assert CANARY not in result.stdout
    record: dict[str, object] = json.loads(result.stdout)
    return record, elapsed
