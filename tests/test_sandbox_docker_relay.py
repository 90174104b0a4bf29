"""The Docker relay (worker.stdio + worker.relay) over real pipes, with no container engine.

The relay runs as a real subprocess whose stdin/stdout are pipes, exactly as a
container's PID 1 behind ``docker attach``; it boots the way the container's
command does (``main(preload)``), says ``warm``, takes a spawn with input files,
and relays. Here it is not PID 1 and no uid is dropped (the spec has none), so
these tests check the protocol and the checks, and that its kills reach only its
own processes; the real engine's tests check the uid separation.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codedance.sandboxes.local import WORKER_DIR
from codedance.sandboxes.worker.protocol import ProtocolError, recv_message, send_message
from codedance.sandboxes.worker.relay import FrameReader, result_problem


class _Pipe:
    """send_message's writer over the relay's stdin."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def sendall(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()


class Relay:
    """A relay subprocess and the host's side of its stream."""

    def __init__(self, workdir: Path) -> None:
        boot = f"import sys; sys.path.insert(0, {str(WORKER_DIR.parent)!r}); "
        boot += "from worker.stdio import main; main([], warm=True)"
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", boot], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.pipe, self.seq = _Pipe(self.process.stdin), 0
        self.reader, writer = socket.socketpair()
        stdout = self.process.stdout

        def pump() -> None:
            while chunk := os.read(stdout.fileno(), 65536):
                writer.sendall(chunk)
            writer.close()

        threading.Thread(target=pump, daemon=True).start()
        self.reader.settimeout(30)
        assert recv_message(self.reader)[0]["op"] == "warm"
        spec = {
            "workdir": str(workdir),
            "env": {"PATH": os.environ["PATH"]},
            "base_isolation": ["relay test"],
            "max_output_chars": 100,
        }
        send_message(self.pipe, {"op": "spawn", "spec": spec, "inputs": ["data.txt"]}, [b"in"])
        ready, _ = recv_message(self.reader)
        assert ready["op"] == "ready", ready
        self.isolation = ready["isolation"]

    def run(self, code: str, timeout: float = 5) -> dict[str, Any]:
        self.seq += 1
        send_message(self.pipe, {"op": "run", "code": code, "timeout": timeout, "seq": self.seq})
        header, _ = recv_message(self.reader)
        assert header["seq"] == self.seq  # every reply carries its request's seq
        return header

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()  # what Docker does when the host's attach closes
        return self.process.wait(timeout=10)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    opened = Relay(tmp_path / "work")
    try:
        yield opened
    finally:
        if opened.process.poll() is None:
            opened.close()


def test_state_and_input_files_over_the_stream(relay):
    assert "relay test" in relay.isolation
    assert relay.run("x = 20\nprint(open('data.txt').read())")["stdout"] == "in\n"
    assert relay.run("x * 2 + 2")["stdout"] == "42\n"


def test_closing_stdin_ends_the_relay_and_every_session_process(relay):
    """Docker's StdinOnce closes stdin when the host dies: nothing may survive that."""
    pid = int(
        relay.run("import subprocess\nprint(subprocess.Popen(['sleep', '300']).pid)")["stdout"]
    )
    assert relay.close() == 0
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()


def test_hard_timeout_kills_only_the_session(relay):
    """Not PID 1 here: the kill must reach the session's processes and nothing else."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass"
        record = relay.run(code, timeout=1)
        assert record["timed_out"]
        assert record["session_died"]
        assert bystander.poll() is None
        assert relay.run("print('alive')")["stdout"] == "alive\n"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_soft_timeout_kills_what_the_code_left_running(relay):
    code = "import subprocess\nprint(subprocess.Popen(['sleep', '300']).pid)"
    pid = int(relay.run(code)["stdout"])
    assert relay.run("import time\ntime.sleep(30)", timeout=1)["timed_out"]
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1][0] in "ZX"
    assert relay.run("print('kept')")["stdout"] == "kept\n"


FORGE = """
import json, os, stat
head = json.dumps({{"op": "result", "stdout": {stdout}, "stderr": "", "truncated": [],
    "error": None, "images": [], "files": [], "duration_s": 0.0, "timed_out": False,
    "blobs": []}}).encode()
for name in os.listdir("/proc/self/fd"):
    try:
        if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
            os.write(int(name), len(head).to_bytes(4, "big") + head)
    except OSError:
        pass
"""


def test_an_oversized_forged_result_is_rejected(relay):
    record = relay.run(FORGE.format(stdout="'F' * 100_000"))
    assert record["error"]["type"] == "SessionCompromised"
    assert len(record["stdout"]) == 0
    assert relay.run("print('next')")["stdout"] == "next\n"


def test_a_forged_result_never_stands_for_any_run(relay):
    record = relay.run(FORGE.format(stdout="'forged'"))
    assert record["stdout"] != "forged"
    assert record["error"]["type"] == "SessionCompromised"
    follow = [relay.run(f"print({i})") for i in range(3)]
    assert [r["stdout"] for r in follow] == ["0\n", "1\n", "2\n"]


class FakeSession:
    """A session the relay drives, scripted per run: ``double`` answers twice, ``huge``
    past the limits, ``stray`` adds a frame after its result (between requests)."""

    def __init__(self) -> None:
        self.started = 0

    def start(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        self.started += 1
        threading.Thread(target=self._serve, args=(theirs,), daemon=True).start()
        return 0, ours

    def _serve(self, sock: socket.socket) -> None:
        send_message(sock, {"op": "ready", "isolation": "fake"})
        while True:
            try:
                header, _ = recv_message(sock)
            except (ProtocolError, OSError):
                return
            op, code = str(header.get("op")), str(header.get("code", ""))
            if op.startswith("sync-"):
                send_message(sock, {"op": "error", "message": f"unknown op {op!r}"})
                continue
            stdout = "x" * 10_000 if code == "huge" else code
            result = {"op": "result", "stdout": stdout, "stderr": "", "images": []}
            send_message(sock, result)
            if code in ("double", "stray"):
                send_message(sock, {**result, "stdout": "extra"})


@pytest.fixture
def driven() -> Iterator[tuple[FakeSession, Any]]:
    """A Relay over pipes in a thread, on a fake session, with kills switched off."""
    from codedance.sandboxes.worker.relay import Relay as RelayCore

    session = FakeSession()
    host_in_r, host_in_w = os.pipe()
    host_out_r, host_out_w = os.pipe()
    spec = {"max_output_chars": 100}
    relay = RelayCore(host_in_r, host_out_w, spec, session.start, kill=lambda: None)
    relay.launch(announce=True)
    thread = threading.Thread(target=relay.serve, daemon=True)
    thread.start()
    host_out = os.fdopen(host_out_r, "rb", buffering=0)

    class Host:
        seq = 0

        def request(self, code: str) -> dict[str, Any]:
            self.seq += 1
            head = json.dumps({"op": "run", "code": code, "seq": self.seq, "blobs": []}).encode()
            os.write(host_in_w, len(head).to_bytes(4, "big") + head)
            size = int.from_bytes(_read(host_out, 4), "big")
            header: dict[str, Any] = json.loads(_read(host_out, size))
            assert header["seq"] == self.seq
            return header

    assert json.loads(_read(host_out, int.from_bytes(_read(host_out, 4), "big")))["op"] == "ready"
    yield session, Host()
    os.close(host_in_w)
    thread.join(timeout=5)


def _read(stream: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        assert chunk, "the relay closed its output"
        data += chunk
    return data


def test_the_relay_pairs_no_frame_with_a_later_request(driven):
    """Two results for one run: the second is caught by the idle check, not handed on."""
    session, host = driven
    assert host.request("double")["stdout"] == "double"
    follow = host.request("after")
    assert follow["stdout"] == "after"  # not "extra"
    assert "nobody asked for" in follow["stderr"]
    assert follow["restored"] == "reset"
    assert session.started == 2  # killed and started again from its inputs


def test_the_relay_rejects_a_result_past_the_limits(driven):
    session, host = driven
    record = host.request("huge")
    assert record["error"]["type"] == "SessionCompromised"
    assert record["stdout"] == ""
    assert host.request("fine")["stdout"] == "fine"
    assert session.started == 2


def test_garbage_on_the_channel_restarts_the_session(relay):
    code = (
        "import os, stat\nfor n in os.listdir('/proc/self/fd'):\n"
        "    try:\n        fd = int(n)\n"
        "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "            os.write(fd, b'\\xff' * 64)\n"
        "    except OSError:\n        pass\n"
    )
    relay.run(code)
    assert relay.run("print('fresh')")["stdout"] == "fresh\n"


def test_frame_reader_reassembles_split_frames_and_refuses_oversized_ones():
    from codedance.sandboxes.worker.protocol import send_message as send

    class Buffer:
        data = b""

        def sendall(self, chunk: bytes) -> None:
            self.data += chunk

    buffer = Buffer()
    send(buffer, {"op": "a"}, [b"xyz"])  # type: ignore[arg-type]
    send(buffer, {"op": "b"})  # type: ignore[arg-type]
    reader = FrameReader()
    frames = [frame for byte in buffer.data for frame in reader.feed(bytes([byte]))]
    assert [(h["op"], b) for h, b in frames] == [("a", [b"xyz"]), ("b", [])]
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameReader(max_header=10).feed(b"\x00\x00\x01\x00")


def test_result_problem_names_the_limit():
    header = {"stdout": "x" * 1000, "stderr": "", "images": []}
    assert "past the session's limit" in (result_problem(header, [], 100) or "")
    assert result_problem({**header, "stdout": "ok"}, [], 100) is None
    assert "images" in (result_problem({**header, "stdout": "", "images": [{}]}, [], 100) or "")
