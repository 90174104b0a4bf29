"""A stand-in Docker Engine: the API subset the docker SDK uses, over a real unix socket.

It is a real HTTP/1.1 server (``http.server`` on a unix socket); the docker SDK
connects to it exactly as it would to ``dockerd``. It answers ``/_ping``,
``/version``, image inspect and pull, container create, inspect, attach (a
hijacked connection answered ``101 UPGRADED``, output multiplexed in 8-byte
headed frames as Docker does without a TTY), start, wait, kill, delete, and the
archive upload, which it refuses for a read-only root as Docker does
("container rootfs is marked read-only"). Every request is recorded.

A container is the requested command run under bubblewrap, which provides what
the backend relies on: the image's filesystem (the host's, read-only), a
read-only root, the requested tmpfs mounts (size and mode honoured; ``noexec``
is not), no network when asked, its own PID (the command is PID 1), IPC and
UTS namespaces, no capabilities and ``no-new-privileges``. The command is found
on the container's PATH (the image's ENV merged with the container's); an
image's ENV can put the test interpreter first, the way an image ships its own
Python. What is not stood in: cgroups (memory, pids and CPU limits are recorded,
not enforced), ``User`` (the command runs as the test's user), registries
(``pull`` copies an image the stand-in was told about), logs, and TTY mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DockerEngineStandIn", "Recorded", "python_image", "runtime_problem"]

API_VERSION = "1.45"
_FRAME = struct.Struct(">BxxxI")
_VERSIONED = re.compile(r"^/v\d+\.\d+(?=/)")


def python_image() -> dict[str, Any]:
    """An image whose PATH starts with this interpreter's bin directory (a venv's, here)."""
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    return {"Config": {"Env": [f"PATH={path}", "LANG=C.UTF-8"], "Cmd": ["python3"]}}


def runtime_problem() -> str | None:
    """None when containers can run here (bubblewrap works), else why not."""
    if shutil.which("bwrap") is None:
        return "the Docker stand-in runs containers with bubblewrap: apt-get install bubblewrap"
    probe = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.decode().strip()}"
    return None


@dataclass(frozen=True)
class Recorded:
    """One API request as the engine received it (path without the /vX.Y prefix)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # the decoded JSON body, or None


class _Reply(NamedTuple):
    status: int
    payload: Any = None


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, {"message": message})


# -- containers -------------------------------------------------------------------------


class _Attachment:
    """One hijacked attach connection: which streams it wants, and when it is over."""

    def __init__(self, sock: Any, streams: set[int]) -> None:
        self.sock, self.streams = sock, streams
        self.done = threading.Event()
        self._lock = threading.Lock()

    def send(self, kind: int, data: bytes) -> None:
        if kind not in self.streams or self.done.is_set():
            return
        with self._lock:
            try:
                self.sock.sendall(_FRAME.pack(kind, len(data)) + data)
            except OSError:
                self.finish()

    def finish(self) -> None:
        """End the stream as Docker does when the container stops: close the connection."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(2)
        self.done.set()


@dataclass
class _Container:
    id: str
    name: str
    body: dict[str, Any]
    env: dict[str, str]
    status: str = "created"
    exit_code: int = 0
    pid: int = 0
    process: subprocess.Popen[bytes] | None = None
    attachments: list[_Attachment] = field(default_factory=list)
    settled: threading.Event = field(default_factory=threading.Event)  # running, or gone
    exited: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_exit: Callable[[_Container], None] | None = None

    @property
    def host_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body.get("HostConfig") or {}
        return config

    def attach(self, attachment: _Attachment) -> None:
        with self.lock:
            if self.exited.is_set():
                attachment.finish()
            else:
                self.attachments.append(attachment)

    def feed_stdin(self, source: BinaryIO) -> None:
        """Copy the client's bytes to the command's stdin until either side ends."""
        self.settled.wait()
        while self.process is not None and self.process.stdin is not None:
            try:
                chunk = source.read1(1 << 16)  # type: ignore[attr-defined]
            except OSError:
                break
            if not chunk:
                break
            try:
                self.process.stdin.write(chunk)
                self.process.stdin.flush()
            except (OSError, ValueError):
                break
        if self.body.get("StdinOnce") and self.process is not None and self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def start(self) -> None:
        read_info, write_info = os.pipe()
        self.process = subprocess.Popen(
            bwrap_argv(self, write_info),
            env=self.env,  # bubblewrap finds the command on the container's PATH
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_info,),
            start_new_session=True,
        )
        os.close(write_info)
        self.pid = _child_pid(read_info) or self.process.pid
        self.status = "running"
        threading.Thread(target=self._supervise, daemon=True).start()
        self.settled.set()

    def _supervise(self) -> None:
        assert self.process is not None
        pumps = [
            threading.Thread(target=self._pump, args=(stream, kind), daemon=True)
            for stream, kind in ((self.process.stdout, 1), (self.process.stderr, 2))
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        status = self.process.wait()
        self.exit_code = status if status >= 0 else 128 - status  # 137 for SIGKILL, as Docker
        with self.lock:
            self.status = "exited"
            self.exited.set()
            for attachment in self.attachments:
                attachment.finish()
        if self.on_exit is not None and self.host_config.get("AutoRemove"):
            self.on_exit(self)

    def _pump(self, stream: Any, kind: int) -> None:
        while chunk := os.read(stream.fileno(), 1 << 16):
            for attachment in list(self.attachments):
                attachment.send(kind, chunk)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the container's PID 1; SIGKILL takes its whole PID namespace down."""
        if self.status == "running":
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop_everything(self) -> None:
        self.kill()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.exited.wait(10)
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.settled.set()
        for attachment in list(self.attachments):
            attachment.finish()

    def inspect(self) -> dict[str, Any]:
        config = {k: v for k, v in self.body.items() if k not in ("HostConfig", "NetworkingConfig")}
        config["Env"] = [f"{k}={v}" for k, v in self.env.items()]
        return {
            "Id": self.id,
            "Name": f"/{self.name}",
            "Image": self.body.get("Image"),
            "State": {
                "Status": self.status,
                "Running": self.status == "running",
                "Pid": self.pid if self.status == "running" else 0,
                "ExitCode": self.exit_code,
            },
            "Config": config,
            "HostConfig": self.host_config,
        }


def bwrap_argv(container: _Container, info_fd: int) -> list[str]:
    """The bubblewrap command that gives ``container`` its filesystem and namespaces."""
    host = container.host_config
    tmpfs: dict[str, str] = host.get("Tmpfs") or {}
    argv = ["bwrap", "--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts"]
    argv += ["--hostname", container.id[:12], "--info-fd", str(info_fd)]
    if container.body.get("NetworkDisabled") or host.get("NetworkMode") == "none":
        argv.append("--unshare-net")
    argv += _image_binds("/", {*tmpfs, "/proc", "/dev", "/sys"})
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for path, options in tmpfs.items():
        argv += _tmpfs_args(path, options)
    # The "image" is the host, whose interpreter may live under /tmp (a CI clone's
    # venv); a real image never keeps it on a path the container mounts a tmpfs on.
    for prefix in sorted({sys.prefix, sys.base_prefix}):
        if any(prefix.startswith(path.rstrip("/") + "/") for path in tmpfs):
            argv += ["--ro-bind", prefix, prefix]
    argv += ["--remount-ro", "/", "--chdir", container.body.get("WorkingDir") or "/"]
    return [*argv, *container.body["Cmd"]]


def _image_binds(directory: str, reserved: set[str]) -> list[str]:
    """Read-only binds of the host's files, leaving room for the reserved mount points."""
    argv: list[str] = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if path in reserved:
            continue
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) and any(r.startswith(path + "/") for r in reserved):
            argv += ["--dir", path, *_image_binds(path, reserved)]
        else:
            argv += ["--ro-bind", path, path]
    return argv


def _tmpfs_args(path: str, options: str) -> list[str]:
    """bubblewrap's flags for one Docker tmpfs (kernel default mode 1777)."""
    values = dict(item.partition("=")[::2] for item in options.split(",") if "=" in item)
    # bubblewrap cannot chown a tmpfs: one Docker would give to a uid is world-writable here.
    argv = ["--perms", "1777" if "uid" in values else values.get("mode", "1777")]
    if "size" in values:
        argv += ["--size", str(_bytes(values["size"]))]
    return [*argv, "--tmpfs", path]


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = size[-1].lower()
    return int(size[:-1]) * units[unit] if unit in units else int(size)


def _child_pid(fd: int) -> int | None:
    """The host pid of the container's PID 1, from bubblewrap's --info-fd JSON."""
    data = b""
    try:
        while b"}" not in data and select.select([fd], [], [], 10)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    match = re.search(rb'"child-pid"\s*:\s*(\d+)', data)
    return int(match.group(1)) if match else None


# -- the API ----------------------------------------------------------------------------


class DockerEngineStandIn:
    """The engine: start it (a context manager), point the SDK at ``base_url``."""

    def __init__(
        self,
        images: Mapping[str, dict[str, Any]] | None = None,
        pullable: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.images = dict(images if images is not None else {"python:3.11-slim": python_image()})
        self.pullable = dict(pullable or {})
        self.requests: list[Recorded] = []
        self.containers: dict[str, _Container] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="cd-dockerd-"))  # unix paths are short
        self.socket_path = self._dir / "docker.sock"
        self.base_url = f"unix://{self.socket_path}"
        self._server = _Server(str(self.socket_path), _Handler)
        self._server.engine = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DockerEngineStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every container, stop serving, remove the socket."""
        with self._lock:
            containers, self.containers = list(self.containers.values()), {}
        for container in containers:
            container.stop_everything()
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """The recorded requests whose method matches and whose path matches ``pattern``."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def container(self, ident: str) -> _Container | None:
        with self._lock:
            if ident in self.containers:
                return self.containers[ident]
            found = [
                c for c in self.containers.values() if c.id.startswith(ident) or c.name == ident
            ]
            return found[0] if len(found) == 1 else None

    def _forget(self, container: _Container) -> None:
        with self._lock:
            self.containers.pop(container.id, None)

    def _image(self, name: str) -> dict[str, Any] | None:
        return self.images.get(name) or self.images.get(f"{name}:latest")

    def handle(self, request: Recorded, conn: _Handler) -> _Reply | None:
        """Route one request; None when the connection was hijacked (attach)."""
        for method, pattern, handler in _ENGINE_ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                return handler(self, request, match)
        match = re.fullmatch(r"/containers/(?P<id>[^/]+)(?:/(?P<action>\w+))?", request.path)
        action = _CONTAINER_ROUTES.get((request.method, match["action"] or "")) if match else None
        if match is None or action is None:
            return _error(404, f"page not found: no stand-in for {request.method} {request.path}")
        container = self.container(match["id"])
        if container is None:
            return _error(404, f"No such container: {match['id']}")
        return action(self, container, request, conn)

    # -- engine-wide endpoints: (request, path match) -> reply --------------------------

    def _ping(self, request: Recorded, match: re.Match[str]) -> _Reply:
        return _Reply(200, b"OK")

    def _version(self, request: Recorded, match: re.Match[str]) -> _Reply:
        return _Reply(200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux"})

    def _inspect_image(self, request: Recorded, match: re.Match[str]) -> _Reply:
        name = unquote(match["name"])
        image = self._image(name)
        if image is None:
            return _error(404, f"No such image: {name}")
        return _Reply(200, {"Id": f"sha256:{name.encode().hex():0>64.64}", **image})

    def _pull(self, request: Recorded, match: re.Match[str]) -> _Reply:
        repo, tag = request.query.get("fromImage", ""), request.query.get("tag") or "latest"
        name = f"{repo}:{tag}"
        if name not in self.pullable:
            return _error(404, f"pull access denied for {repo}, repository does not exist")
        self.images[name] = self.pullable[name]
        return _Reply(200, {"status": f"Downloaded newer image for {name}"})

    def _create(self, request: Recorded, match: re.Match[str]) -> _Reply:
        body: dict[str, Any] = request.body or {}
        image = self._image(str(body.get("Image")))
        if image is None:
            return _error(404, f"No such image: {body.get('Image')}")
        ident = secrets.token_hex(32)
        env = {"HOSTNAME": ident[:12], "HOME": "/root"}  # what the runtime adds
        env.update(item.partition("=")[::2] for item in image["Config"].get("Env", []))
        env.update(item.partition("=")[::2] for item in body.get("Env") or [])
        body["Cmd"] = body.get("Cmd") or image["Config"].get("Cmd")
        name = request.query.get("name") or f"standin_{ident[:8]}"
        with self._lock:
            self.containers[ident] = _Container(ident, name, body, env, on_exit=self._forget)
        return _Reply(201, {"Id": ident, "Warnings": []})

    # -- container endpoints: (container, request, connection) -> reply -----------------

    def _inspect(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        return _Reply(200, container.inspect())

    def _archive(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        if container.host_config.get("ReadonlyRootfs"):  # whatever the path: dockerd's rule
            return _error(400, "container rootfs is marked read-only")
        return _error(501, "the stand-in only runs read-only-root containers")

    def _attach(self, container: _Container, request: Recorded, conn: _Handler) -> None:
        wanted = {kind for kind, key in ((1, "stdout"), (2, "stderr")) if _flag(request, key)}
        conn.hijack()
        attachment = _Attachment(conn.connection, wanted)
        container.attach(attachment)
        if _flag(request, "stdin"):
            container.feed_stdin(conn.rfile)
        attachment.done.wait()

    def _start(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        if container.status != "created":
            return _Reply(304)
        if not container.host_config.get("ReadonlyRootfs"):
            return _error(501, "the stand-in only runs read-only-root containers")
        command = container.body["Cmd"][0]
        if shutil.which(command, path=container.env.get("PATH", "")) is None:
            return _error(
                400,
                f'failed to create task for container: exec: "{command}": '
                "executable file not found in $PATH: unknown",
            )
        container.start()
        return _Reply(204)

    def _wait(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        container.exited.wait()
        return _Reply(200, {"StatusCode": container.exit_code, "Error": None})

    def _kill(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        if container.status != "running":
            return _error(409, f"Container {container.id} is not running")
        name = request.query.get("signal", "SIGKILL")
        container.kill(int(name) if name.isdigit() else signal.Signals[name].value)
        return _Reply(204)

    def _remove(self, container: _Container, request: Recorded, conn: _Handler) -> _Reply:
        if container.status == "running" and not _flag(request, "force"):
            return _error(409, "You cannot remove a running container; stop it or use force")
        container.stop_everything()
        self._forget(container)
        return _Reply(204)


def _flag(request: Recorded, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true")


_ENGINE_ROUTES: list[tuple[str, str, Callable[..., _Reply]]] = [
    ("GET", r"/_ping", DockerEngineStandIn._ping),
    ("HEAD", r"/_ping", DockerEngineStandIn._ping),
    ("GET", r"/version", DockerEngineStandIn._version),
    ("GET", r"/images/(?P<name>.+)/json", DockerEngineStandIn._inspect_image),
    ("POST", r"/images/create", DockerEngineStandIn._pull),
    ("POST", r"/containers/create", DockerEngineStandIn._create),
]
_CONTAINER_ROUTES: dict[tuple[str, str], Callable[..., _Reply | None]] = {
    ("GET", "json"): DockerEngineStandIn._inspect,
    ("PUT", "archive"): DockerEngineStandIn._archive,
    ("POST", "attach"): DockerEngineStandIn._attach,
    ("POST", "start"): DockerEngineStandIn._start,
    ("POST", "wait"): DockerEngineStandIn._wait,
    ("POST", "kill"): DockerEngineStandIn._kill,
    ("DELETE", ""): DockerEngineStandIn._remove,
}


# -- HTTP -------------------------------------------------------------------------------


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False
    engine: DockerEngineStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the engine records requests itself."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def hijack(self) -> None:
        """Answer an attach as dockerd does; afterwards the connection is a raw stream."""
        if (self.headers.get("Upgrade") or "").lower() == "tcp":
            head = (
                "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream"
            )
            head += "\r\nConnection: Upgrade\r\nUpgrade: tcp"
        else:
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream"
        self.wfile.write(f"{head}\r\nApi-Version: {API_VERSION}\r\n\r\n".encode())
        self.close_connection = True

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = _VERSIONED.sub("", url.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_json = "json" in (self.headers.get("Content-Type") or "")
        body = json.loads(raw) if raw and is_json else None
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        request = Recorded(self.command, path, query, body)
        self.server.engine.record(request)
        reply = self.server.engine.handle(request, self)
        if reply is not None:
            self._reply(reply)

    def _reply(self, reply: _Reply) -> None:
        payload = reply.payload
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(reply.status)
        self.send_header("Api-Version", API_VERSION)
        if reply.status not in (204, 304):
            kind = "text/plain" if isinstance(payload, bytes) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if reply.status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(data)
