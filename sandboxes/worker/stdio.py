"""One session served over stdin/stdout, for backends that attach to a process (Docker).

Run as ``python -I -c "import sys; sys.path.insert(0, DIR); from worker.stdio import
main; main()"`` inside the container. The first message on stdin is
``{"op": "spawn", "spec": {...}}`` (the same spec the local zygote receives);
after that the stream carries exactly the local backend's protocol: a ``ready``
message, then ``run``/``restart``/``close`` requests and ``result`` replies.

This process stays the container's PID 1 and only relays bytes; the session's
init runs as its child (a subreaper, so orphans are still reaped) and its hard
timeout kill spares PID 1, so the channel to the host survives.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

from . import isolation
from .protocol import ProtocolError, send_message
from .session import init_main
from .zygote import PRELOAD, preload


def main() -> None:
    inbound, outbound = os.dup(0), os.dup(1)
    _silence_standard_streams()
    spec = _read_spawn(inbound)
    loaded = preload(list(spec.get("preload", PRELOAD)))
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        os.close(inbound)
        os.close(outbound)
        _serve_session(theirs, spec, loaded)
    theirs.close()
    _relay(inbound, outbound, ours)
    os.waitpid(pid, 0)


def _silence_standard_streams() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)


def _read_spawn(fd: int) -> dict[str, Any]:
    """The first message: a length-prefixed JSON ``spawn`` request."""
    header = _read_exact(fd, 4)
    request = json.loads(_read_exact(fd, int.from_bytes(header, "big")))
    if request.get("op") != "spawn":
        raise ProtocolError(f"expected a spawn request, got {request.get('op')!r}")
    spec: dict[str, Any] = request["spec"]
    return spec


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise ProtocolError("the host closed the stream before the spawn request")
        data += chunk
    return data


def _serve_session(channel: socket.socket, spec: dict[str, Any], loaded: list[str]) -> None:
    try:
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        os.makedirs(spec["workdir"], exist_ok=True)
        os.chdir(spec["workdir"])
        os.environ.clear()
        os.environ.update(spec.get("env", {}))
        isolation.set_limits(spec.get("session_limits", {}))
        label = ", ".join([*spec.get("base_isolation", []), f"preloaded {len(loaded)} modules"])
        init_main(channel, spec, label)
    except BaseException as exc:
        send_message(channel, {"op": "failed", "message": f"{type(exc).__name__}: {exc}"})
    finally:
        os._exit(0)


def _relay(inbound: int, outbound: int, channel: socket.socket) -> None:
    """Copy host->session and session->host until either side closes."""

    def pump_in() -> None:
        while chunk := _safe_read(inbound):
            channel.sendall(chunk)
        channel.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump_in, daemon=True).start()
    while chunk := channel.recv(1 << 16):
        _write_all(outbound, chunk)
    sys.stderr.flush()


def _safe_read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
