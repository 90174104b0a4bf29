"""worker.stdio serves one session over a process's stdin/stdout (the Docker route).

The worker runs as a real subprocess with pipes, exactly as a container's main
process would behind ``docker attach``; no container engine is involved.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codedance.sandboxes.local import WORKER_DIR
from codedance.sandboxes.worker.protocol import recv_message, send_message


class _Pipe:
    """send_message's writer over the worker's stdin."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def sendall(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()


@pytest.fixture
def stdio_session(tmp_path: Path) -> Iterator[tuple[_Pipe, socket.socket]]:
    boot = f"import sys; sys.path.insert(0, {str(WORKER_DIR.parent)!r}); "
    boot += "from worker.stdio import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", boot], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    spec = {
        "workdir": str(tmp_path / "work"),
        "env": {"PATH": os.environ["PATH"]},
        "base_isolation": ["stdio test"],
        "preload": [],
    }
    request = json.dumps({"op": "spawn", "spec": spec}).encode()
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(struct.pack(">I", len(request)) + request)
    process.stdin.flush()
    reader, writer = socket.socketpair()
    stdout = process.stdout

    def pump() -> None:
        while chunk := os.read(stdout.fileno(), 65536):
            writer.sendall(chunk)
        writer.close()

    threading.Thread(target=pump, daemon=True).start()
    reader.settimeout(30)
    ready, _ = recv_message(reader)
    assert ready["op"] == "ready"
    assert "stdio test" in ready["isolation"]
    yield _Pipe(process.stdin), reader
    process.stdin.close()
    assert process.wait(timeout=10) == 0


def _run(session: tuple[_Pipe, socket.socket], code: str, timeout: float = 5) -> dict[str, Any]:
    pipe, reader = session
    send_message(pipe, {"op": "run", "code": code, "timeout": timeout})
    header, _ = recv_message(reader)
    return header


def test_state_persists_over_stdio(stdio_session):
    assert _run(stdio_session, "x = 20")["error"] is None
    assert _run(stdio_session, "x * 2 + 2")["stdout"] == "42\n"


def test_hard_timeout_kills_only_the_session(stdio_session):
    """Not PID 1 here: the kill must reach the session's processes and nothing else."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass"
        record = _run(stdio_session, code, timeout=1)
        assert record["timed_out"]
        assert record["session_died"]
        assert bystander.poll() is None
        assert _run(stdio_session, "print('alive')")["stdout"] == "alive\n"
    finally:
        bystander.kill()
        bystander.wait()
