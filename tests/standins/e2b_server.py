"""A local stand-in for the HTTP APIs the E2B SDK calls, backed by real IPython kernels.

One ``127.0.0.1`` port serves the subset of E2B that ``e2b-code-interpreter`` uses
for ``Sandbox.create``, ``files.write``, ``run_code``, ``list_code_contexts``,
``restart_code_context``, ``is_running`` and ``kill``:

- control plane (the SDK's ``E2B_API_URL``): ``POST /v2/sandboxes`` (checks
  ``X-API-KEY``), ``DELETE /sandboxes/{id}``;
- envd (``E2B_SANDBOX_URL``): ``GET /health``, ``POST /files`` (multipart upload);
- code interpreter (the same URL): ``POST /execute`` (streamed JSON lines),
  ``GET /contexts``, ``POST /contexts/{id}/restart``.

With ``E2B_SANDBOX_URL`` set the SDK sends every sandbox request there, whatever
the port, naming the sandbox in the ``E2b-Sandbox-Id`` header; that is how one
server stands in for many sandboxes. A sandbox is a temporary directory standing
for ``/home/user`` plus one ipykernel started in it through jupyter_client with a
bare environment (E2B's template runs Jupyter too); one is kept warm for the next
create, and the sandbox's ``envVars`` are set by code prepended to the kernel's
first cell, as E2B's server does. Kernel messages become
stream lines the way E2B's server does (e2b-dev/code-interpreter,
``template/server/messaging.py`` and ``api/models/result.py``): ``stdout`` and
``stderr``; ``result`` for display data and the cell's value, the MIME bundle split
into ``text``, ``png``, ``jpeg``... with the rest under ``extra``; the first
``error`` (traceback lines joined with ""); ``number_of_executions``; ``keepalive``
while waiting; ``end_of_execution``. A client that goes away (the SDK's timeout)
gets its kernel interrupted, and a kernel that dies is restarted and reported as
``ContextRestarting``, as Jupyter and E2B do. A killed sandbox answers 502 "was not
found", as E2B's proxy does.

Like E2B, an execution the kernel aborts (a request that reaches it while it handles
an interrupt, with ``stop_on_error``) is never ended: E2B's server waits for an
``execute_input`` that does not come, until the client gives up.

Not like E2B, on purpose or by necessity: keepalives every 0.25 s instead of 5 s (so
a timeout's interrupt lands quickly); kernels run on this machine as this user, not
in a microVM, so nothing here tests isolation (and test code must stay in its
working directory); E2B's IPython startup scripts
(``e2b/data`` and ``e2b/chart`` formatters, ``Image.save`` displaying) are not
loaded; paths outside ``/home/user`` are refused; sandbox lifetimes
(``timeout``), templates, metadata and the network options are accepted and ignored.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import posixpath
import queue
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jupyter_client.manager import KernelManager
from jupyter_core.utils import ensure_event_loop

__all__ = ["E2BStandIn"]

HOME = "/home/user"
ENVD_VERSION = "0.5.7"
KEEPALIVE_S = 0.25
#: E2B's Result model: MIME type -> field; anything else lands in ``extra``.
_MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


@dataclass
class _Job:
    """One request for a kernel's thread: run ``code`` (or restart when None).

    Iterate it for the stream items; :meth:`leave` is what E2B's server does when
    the client goes away: the kernel is interrupted and the job dropped.
    """

    code: str | None
    items: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    left: threading.Event = field(default_factory=threading.Event)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self.items.get()) is not None:
            yield item

    def leave(self) -> None:
        self.left.set()


class _Kernel:
    """One IPython kernel, the sandbox's default Python context.

    jupyter_client's blocking client must be used from the thread that made it, so
    one thread per kernel owns the client and the manager and runs jobs in order,
    one execution at a time as E2B's server does; request handlers only read items.
    """

    def __init__(self, root: Path, env: dict[str, str], runtime: Path) -> None:
        self.id = uuid.uuid4().hex
        self.env_vars: dict[str, str] = {}  # the sandbox's, set in the kernel as E2B does
        self._env_pending = True
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self.manager = KernelManager(
            kernel_name="python3", connection_file=str(runtime / f"kernel-{self.id}.json")
        )
        started: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, args=(root, env, started), daemon=True)
        self._thread.start()
        error = started.get()
        if error is not None:
            raise error

    def execute(self, code: str) -> _Job:
        """Queue ``code``; the job yields E2B stream items."""
        job = _Job(code)
        self._jobs.put(job)
        return job

    def restart(self) -> None:
        """Restart the kernel process: every variable is gone, files stay."""
        job = _Job(None)
        self._jobs.put(job)
        job.items.get()

    def shutdown(self) -> None:
        """Stop the kernel process, its channels and its thread."""
        self._jobs.put(None)
        self._thread.join(timeout=30)

    # -- the kernel's own thread ---------------------------------------------------

    def _serve(self, root: Path, env: dict[str, str], started: queue.Queue[Any]) -> None:
        try:
            self.manager.start_kernel(
                cwd=str(root),
                env=env,
                extra_arguments=["--InteractiveShell.colors=nocolor"],  # as E2B's template
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.client = self.manager.blocking_client()
            self.client.start_channels()
            self.client.wait_for_ready(timeout=60)
        except BaseException as exc:
            self._stop()
            started.put(exc)
            return
        started.put(None)
        while (job := self._jobs.get()) is not None:
            if job.code is None:
                self._restart()
            else:
                try:
                    for item in self._run(job):
                        job.items.put(item)
                except Exception as exc:  # a stand-in failure reaches the test as an error
                    job.items.put(_error("StandInError", repr(exc)))
            job.items.put(None)
        self._stop()
        ensure_event_loop().close()  # the one jupyter_client made for this thread

    def _run(self, job: _Job) -> Iterator[dict[str, Any]]:
        code = str(job.code)
        if self._env_pending and self.env_vars:  # E2B prepends them to the first cell
            code = f"import os; os.environ.update({self.env_vars!r})\n{code}"
        self._env_pending = False
        msg_id = self.client.execute(code, allow_stdin=False, stop_on_error=True)
        accepted = errored = False
        while not job.left.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=KEEPALIVE_S)
            except queue.Empty:
                if not self.manager.is_alive():  # Jupyter's restarter brings it back
                    self._restart()
                    yield _error("ContextRestarting", "Context was restarted")
                    return
                yield {"type": "keepalive"}
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            # As in E2B's server, only an accepted request ends at idle: one the kernel
            # aborts (stop_on_error, right after an interrupt) goes on until the client
            # gives up.
            if kind == "status" and content["execution_state"] == "idle" and accepted:
                return
            accepted = accepted or kind == "execute_input"
            if kind == "error" and errored:
                continue
            errored = errored or kind == "error"
            item = _translate(msg)
            if item is not None:
                yield item
        with contextlib.suppress(Exception):  # the client left: interrupt, then let go
            self.manager.interrupt_kernel()

    def _restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=60)
        self._env_pending = True

    def _stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            self.manager.shutdown_kernel(now=True)


def _translate(msg: dict[str, Any]) -> dict[str, Any] | None:
    """One Jupyter iopub message as E2B's server streams it (None: not forwarded)."""
    kind, content = msg["msg_type"], msg["content"]
    if kind == "stream":
        stamp = msg["header"]["date"]
        return {"type": content["name"], "text": content["text"], "timestamp": stamp.isoformat()}
    if kind in ("display_data", "execute_result"):
        return _result(dict(content["data"]), is_main_result=kind == "execute_result")
    if kind == "error":
        return _error(content["ename"], content["evalue"], "".join(content["traceback"]))
    if kind == "execute_input":
        return {"type": "number_of_executions", "execution_count": content["execution_count"]}
    return None


def _result(data: dict[str, Any], is_main_result: bool) -> dict[str, Any]:
    """E2B's ``Result``: known MIME types as fields, string quotes stripped, rest in extra."""
    item: dict[str, Any] = {"type": "result", "is_main_result": is_main_result}
    text = data.get("text/plain")
    if isinstance(text, str) and text[:1] == text[-1:] and text[:1] in ("'", '"'):
        data["text/plain"] = text[1:-1]
    for mime, name in _MIME_FIELDS.items():
        value = data.pop(mime, None)
        if value is not None:
            item[name] = value
    item["extra"] = data
    return item


def _error(name: str, value: str, traceback: str = "") -> dict[str, Any]:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


class _Sandbox:
    """A directory standing for /home/user and the kernel running in it."""

    def __init__(self, root: Path, runtime: Path) -> None:
        self.id = "sbx" + uuid.uuid4().hex[:12]
        self.root = root
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root),
            "LANG": "C.UTF-8",
            "IPYTHONDIR": str(runtime / "ipython"),
            "MPLCONFIGDIR": str(runtime / "matplotlib"),  # shared: the font cache is built once
        }
        self.kernel = _Kernel(root, env, runtime)

    def local_path(self, path: str) -> Path:
        """Where a sandbox path lives here; PermissionError outside /home/user."""
        full = posixpath.normpath(path if path.startswith("/") else f"{HOME}/{path}")
        if full != HOME and not full.startswith(HOME + "/"):
            raise PermissionError(f"the stand-in only serves {HOME}, not {path!r}")
        return self.root / posixpath.relpath(full, HOME)

    def close(self) -> None:
        self.kernel.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)


class E2BStandIn:
    """The stand-in server; a context manager that stops every kernel it started.

    Point the SDK at it with the variables in :attr:`environ`. ``api_keys`` lists
    the ``X-API-KEY`` values the control plane received; :meth:`kill` ends a sandbox
    behind the client's back, as E2B does when a sandbox reaches its timeout.
    """

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.api_keys: list[str] = []
        self.sandboxes: dict[str, _Sandbox] = {}
        self.killed: list[str] = []
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="e2b-standin-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._warmer = ThreadPoolExecutor(max_workers=1)
        self._spare: Future[_Sandbox] | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def environ(self) -> dict[str, str]:
        """The SDK's variables that send the control plane and every sandbox here."""
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url}

    def __enter__(self) -> E2BStandIn:
        self._thread.start()
        self._spare = self._warmer.submit(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sandboxes, self.sandboxes = list(self.sandboxes.values()), {}
            spare, self._spare = self._spare, None
        self._warmer.shutdown(wait=True)
        if spare is not None and spare.exception() is None:
            sandboxes.append(spare.result())
        for sandbox in sandboxes:
            sandbox.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def create(self, env_vars: dict[str, str]) -> _Sandbox:
        """Hand out the warm spare sandbox (E2B too starts VMs from warm snapshots)."""
        with self._lock:
            spare, self._spare = self._spare, self._warmer.submit(self._start)
        sandbox = spare.result() if spare is not None else self._start()
        sandbox.kernel.env_vars = dict(env_vars)
        with self._lock:
            self.sandboxes[sandbox.id] = sandbox
        return sandbox

    def _start(self) -> _Sandbox:
        return _Sandbox(Path(tempfile.mkdtemp(prefix="home-", dir=self._dir)), self._dir)

    def kill(self, sandbox_id: str) -> bool:
        """End a sandbox; False if there was none by that id."""
        with self._lock:
            sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        self.killed.append(sandbox_id)
        sandbox.close()
        return True

    def get(self, sandbox_id: str | None) -> _Sandbox | None:
        with self._lock:
            return self.sandboxes.get(sandbox_id or "")


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the control plane, envd or the code interpreter."""

    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what they need from the stand-in's attributes."""

    @property
    def standin(self) -> E2BStandIn:
        return self.server.standin  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/v2/sandboxes" or path.startswith("/sandboxes/"):
            self._control_plane(method, path, body)
            return
        sandbox = self.standin.get(self.headers.get("E2b-Sandbox-Id"))
        if sandbox is None:
            sandbox_id = self.headers.get("E2b-Sandbox-Id")
            self._json(502, {"code": 502, "message": f"The sandbox {sandbox_id} was not found"})
        elif (method, path) == ("GET", "/health"):
            self._send(204, b"")
        elif (method, path) == ("POST", "/files"):
            self._upload(sandbox, body)
        elif (method, path) == ("POST", "/execute"):
            self._execute(sandbox, json.loads(body))
        elif (method, path) == ("GET", "/contexts"):
            self._json(200, [{"id": sandbox.kernel.id, "language": "python", "cwd": HOME}])
        elif (method, path) == ("POST", f"/contexts/{sandbox.kernel.id}/restart"):
            sandbox.kernel.restart()
            self._json(200, None)
        else:
            self._json(404, {"code": 404, "message": f"{method} {path} is not stood in"})

    def _control_plane(self, method: str, path: str, body: bytes) -> None:
        key = self.headers.get("X-API-KEY") or ""
        self.standin.api_keys.append(key)
        if key != self.standin.api_key:
            self._json(401, {"code": 401, "message": "Invalid API key"})
        elif (method, path) == ("POST", "/v2/sandboxes"):
            request = json.loads(body)
            sandbox = self.standin.create(dict(request.get("envVars") or {}))
            created = {
                "templateID": request["templateID"],
                "sandboxID": sandbox.id,
                "clientID": "stand-in",
                "envdVersion": ENVD_VERSION,
            }
            self._json(201, created)
        elif method == "DELETE":
            found = self.standin.kill(path.rsplit("/", 1)[-1])
            self._send(204, b"") if found else self._json(404, {"code": 404, "message": "no"})
        else:
            self._json(404, {"code": 404, "message": f"{method} {path} is not stood in"})

    def _upload(self, sandbox: _Sandbox, body: bytes) -> None:
        """envd's multipart upload: the ``path`` query names the file when there is one."""
        query = parse_qs(urlsplit(self.path).query)
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        parts = list(message.iter_parts())  # type: ignore[attr-defined]
        written = []
        for part in parts:
            target = (
                query["path"][0] if len(parts) == 1 and "path" in query else part.get_filename()
            )
            try:
                local = sandbox.local_path(str(target))
            except PermissionError as exc:
                self._json(403, {"code": 403, "message": str(exc)})
                return
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(part.get_payload(decode=True))
            written.append({"name": local.name, "type": "file", "path": str(target)})
        self._json(200, written)

    def _execute(self, sandbox: _Sandbox, request: dict[str, Any]) -> None:
        """Stream the execution as JSON lines; interrupt the kernel if the client leaves."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        job = sandbox.kernel.execute(request["code"])
        try:
            for item in job:
                self._chunk(json.dumps(item).encode() + b"\n")
            self._chunk(b'{"type": "end_of_execution"}\n')
            self._chunk(b"")
        except OSError:  # the client went away (its timeout)
            job.leave()
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
