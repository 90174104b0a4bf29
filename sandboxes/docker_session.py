"""A Docker session's container and stream: boot, spawn, run, and what the host checks.

A :class:`WarmContainer` is created, attached (before ``start``, so no output is
missed) and started; its command (:data:`BOOT`) unpacks the worker sent over
stdin, and the relay preloads the vision stack and says ``warm``. That is where a
pooled container waits. :meth:`WarmContainer.spawn` then sends the session's spec
and input files and waits for ``ready``.

With ``tty=False`` Docker multiplexes stdout and stderr into frames with 8-byte
headers; a thread feeds the stdout payloads to a socket pair the protocol reader
reads, and keeps the tail of stderr for error messages. The container is created
with ``StdinOnce``: when the attach connection closes (this process exits or is
killed) Docker closes the container's stdin, the relay ends every process, and
``AutoRemove`` deletes the container.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codedance.sandboxes.base import (
    ExecutionRecord,
    SandboxError,
    SandboxSession,
    SessionClosedError,
    SessionSpec,
)
from codedance.sandboxes.records import died_record, record_from_message
from codedance.sandboxes.worker.protocol import ProtocolError, recv_message, send_message
from codedance.sandboxes.worker.relay import result_problem

if TYPE_CHECKING:
    from codedance.sandboxes.docker import DockerSandbox

__all__ = ["BOOT", "DockerSession", "WarmContainer"]

READY_TIMEOUT_S = 60.0
_FRAME = struct.Struct(">BxxxI")  # stream (1 stdout, 2 stderr), 3 zero bytes, length
_STDERR_TAIL = 4000

#: The container's command: write the worker sent on stdin, then relay the session.
BOOT = """\
import json, os, sys
def take(size):
    data = bytearray()
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            sys.exit("codedance: stdin closed before the worker bundle arrived")
        data += chunk
    return bytes(data)
head = json.loads(take(int.from_bytes(take(4), "big")))
for path, size in zip(head["files"], head["blobs"]):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(take(size))
sys.dont_write_bytecode = True
sys.path.insert(0, head["root"])
from worker.stdio import main
main(head["preload"], warm=True)
"""


class _Attachment:
    """The container's stdin and its demultiplexed stdout, over one hijacked connection."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle  # docker-py's socket wrapper; holds the HTTP response
        raw = getattr(handle, "_sock", handle)
        if not isinstance(raw, socket.socket):
            raise SandboxError(f"unsupported attach transport {type(handle).__name__}")
        self.sock = raw
        self.sock.settimeout(None)  # an idle session is not an error
        self.stdout, feed = socket.socketpair()
        self.stderr = bytearray()
        self._thread = threading.Thread(
            target=self._demultiplex, args=(feed,), name="codedance-docker-attach", daemon=True
        )
        self._thread.start()

    def send(self, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
        send_message(self.sock, header, blobs)

    def stderr_note(self) -> str:
        text = self.stderr.decode(errors="replace").strip()
        return f"; the container's stderr: {text}" if text else ""

    def _demultiplex(self, feed: socket.socket) -> None:
        try:
            while (head := _read_exact(self.sock, _FRAME.size)) is not None:
                kind, size = _FRAME.unpack(head)
                payload = _read_exact(self.sock, size)
                if payload is None:
                    break
                if kind == 1:
                    feed.sendall(payload)
                elif kind == 2:
                    self.stderr = (self.stderr + payload)[-_STDERR_TAIL:]
        except OSError:
            pass  # the session closed its end, or the connection broke
        finally:
            feed.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the demultiplexer; stdin closes
        self.sock.close()
        self.stdout.close()
        for closable in (self._handle, getattr(self._handle, "_response", None)):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
        self._thread.join(timeout=5)


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    """``size`` bytes from ``sock``, or None when it ends first."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class WarmContainer:
    """A started container whose relay has preloaded and waits for a session's spec."""

    def __init__(self, backend: DockerSandbox) -> None:
        self.backend = backend
        self.id = ""
        self.stream: _Attachment | None = None
        self.booted_at = 0.0
        client = backend.client()
        with backend.engine_call(f"create a container from {backend.options.image!r}"):
            self.id = client.api.create_container(**backend.create_args())["Id"]
        try:
            self._boot(client)
        except BaseException:
            self.discard()
            raise

    def _boot(self, client: Any) -> None:
        backend = self.backend
        with backend.engine_call("attach to the container"):
            params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            self.stream = _Attachment(client.api.attach_socket(self.id, params=params))
        hint = f" (is {backend.options.python!r} the image's Python? sandbox.options.python)"
        with backend.engine_call("start the container" + hint):
            client.api.start(self.id)
        header, blobs = backend.boot_bundle()
        self._send(header, blobs)
        reply = self._receive("preload the worker")
        if reply.get("op") != "warm":
            raise SandboxError(f"the container's relay did not start: {reply}")
        self.booted_at = time.monotonic()

    def _send(self, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
        assert self.stream is not None
        try:
            self.stream.send(header, blobs)
        except OSError as exc:
            raise SandboxError(
                f"the container stopped reading its input ({exc}){self.stream.stderr_note()}"
            ) from None

    def _receive(self, what: str) -> dict[str, Any]:
        assert self.stream is not None
        self.stream.stdout.settimeout(READY_TIMEOUT_S)
        try:
            header, _ = recv_message(self.stream.stdout)
        except (ProtocolError, OSError) as exc:
            raise SandboxError(
                f"the container did not {what} ({exc}){self.stream.stderr_note()}"
            ) from None
        return header

    def alive(self) -> bool:
        """Still waiting: its stream has not ended (the relay would have closed it)."""
        if self.stream is None:
            return False
        with contextlib.suppress(OSError):
            self.stream.stdout.setblocking(False)
            try:
                return self.stream.stdout.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                return True
            finally:
                self.stream.stdout.setblocking(True)
        return False

    def spawn(self, spec: SessionSpec, worker_spec: dict[str, Any]) -> str:
        """Start the session in this container; its isolation label."""
        inputs = [*spec.images, *spec.files]
        header = {"op": "spawn", "spec": worker_spec, "inputs": [item.name for item in inputs]}
        self._send(header, [item.data for item in inputs])
        reply = self._receive("start the session")
        if reply.get("op") != "ready":
            raise SandboxError(f"the sandbox session failed to start: {reply.get('message')}")
        return str(reply.get("isolation", "docker"))

    def discard(self) -> None:
        """Close the stream and remove the container; errors are moot by now."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.id:
            self.backend.remove_later(self.id)
            self.id = ""


class DockerSession(SandboxSession):
    """One trajectory's session: a container, one attached stream to its relay."""

    def __init__(self, backend: DockerSandbox, spec: SessionSpec) -> None:
        self.backend, self.spec = backend, spec
        self.id = uuid.uuid4().hex
        self.closed = False
        self.container: WarmContainer | None = None
        self.seq = 0
        self._start()

    @property
    def alive(self) -> bool:
        return self.container is not None

    def _start(self) -> None:
        container = self.backend.take_container()
        try:
            self.isolation = container.spawn(self.spec, self.backend.worker_spec(self.spec))
        except BaseException:
            container.discard()
            raise
        self.container = container

    def _request(
        self, header: dict[str, Any], timeout: float
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Send one request; its reply, which the relay stamped with the same ``seq``."""
        assert self.container is not None
        assert self.container.stream is not None
        stream = self.container.stream
        self.seq += 1
        stream.send({**header, "seq": self.seq})
        stream.stdout.settimeout(timeout)
        reply, blobs = recv_message(stream.stdout)
        if reply.get("seq") != self.seq:
            raise ProtocolError(f"a reply for request {reply.get('seq')!r}, not {self.seq}")
        return reply, blobs

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        if self.closed:
            raise SessionClosedError("run() on a closed session; open a new one")
        if self.container is None:
            self._start()
        limit = float(timeout if timeout is not None else self.backend.config.timeout_s)
        start = time.perf_counter()
        try:
            reply, blobs = self._request({"op": "run", "code": code, "timeout": limit}, limit + 30)
            problem = result_problem(reply, blobs, self.backend.config.max_output_chars)
            if problem is not None:
                raise ProtocolError(f"a result that breaks its limits ({problem})")
            return record_from_message(reply, blobs, self.isolation)
        except (ProtocolError, OSError, KeyError, TypeError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        assert self.container is not None
        assert self.container.stream is not None
        note = self.container.stream.stderr_note()
        self._discard()
        message = (
            f"the sandbox container stopped answering ({why}{note}); "
            "a fresh container starts on the next run"
        )
        return died_record(message, time.perf_counter() - start, self.isolation)

    def restart(self) -> None:
        if self.closed:
            raise SessionClosedError("restart() on a closed session; open a new one")
        if self.container is not None:
            with contextlib.suppress(ProtocolError, OSError):
                if self._request({"op": "restart"}, READY_TIMEOUT_S)[0].get("op") == "ready":
                    return
        self._discard()
        self._start()

    def _discard(self) -> None:
        if self.container is not None:
            self.container.discard()
            self.container = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.container is not None and self.container.stream is not None:
            with contextlib.suppress(OSError):
                self.container.stream.send({"op": "close"})
        self._discard()
        self.backend.forget(self)
