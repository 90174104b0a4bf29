"""One session served over stdin/stdout, for backends that attach to a process (Docker).

The container's command writes the worker's files and calls :func:`main` with
the modules to preload. The stream then carries, from the host:

1. ``{"op": "spawn", "spec": {...}, "inputs": [names]}`` with the input files as
   blobs (after this process has said ``{"op": "warm", "preloaded": [...]}`` when
   started with ``warm``: a warm pool keeps containers waiting at that point);
2. then exactly the local backend's protocol (``ready``; ``run``/``restart``/
   ``close`` requests and ``result`` replies), each reply stamped with its
   request's ``seq`` by the relay (:mod:`worker.relay`).

This process stays the container's PID 1 and never runs model code: the
session's init is a child that closes every descriptor but its own channel to
the relay; init keeps root and the holder it forks drops to ``spec["uid"]``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any

from . import isolation
from .protocol import ProtocolError, send_message
from .relay import FrameReader, Relay
from .session import init_main
from .zygote import PRELOAD, preload

#: Signals model code might aim at PID 1; the relay ignores them (root, so it can't anyway).
_SHIELDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def main(modules: list[str] | None = None, warm: bool = False) -> None:
    """Serve one session on stdin/stdout.

    ``warm`` (the Docker backend's boot): preload ``modules`` (default: the vision
    stack) and say ``warm`` before the spawn request, so a pooled container waits
    preloaded. Otherwise (any transport, ``sandboxes.engine.worker_argv``) the first
    message is the spawn request and its spec's ``preload`` is imported after it.
    """
    host_in, host_out = os.dup(0), os.dup(1)
    _silence_standard_streams()
    _shield()
    _seed_matplotlib_cache()
    reader = FrameReader()
    loaded: list[str] = []
    if warm:
        loaded = preload(list(PRELOAD if modules is None else modules))
        send_message(_Out(host_out), {"op": "warm", "preloaded": loaded})  # type: ignore[arg-type]
    header, blobs = _first_frame(host_in, reader)
    if header.get("op") != "spawn":
        raise ProtocolError(f"expected a spawn request, got {header.get('op')!r}")
    spec: dict[str, Any] = header["spec"]
    if not warm:
        loaded = preload(list(spec.get("preload", PRELOAD if modules is None else modules)))
    inputs = list(zip([str(n) for n in header.get("inputs", [])], blobs, strict=True))

    def start() -> tuple[int, socket.socket]:
        return _fork_session(spec, loaded)

    relay = Relay(host_in, host_out, spec, start, inputs)
    relay.host_reader = reader
    relay.launch(announce=True)
    relay.serve()


class _Out:
    """send_message's ``sendall`` over a file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


def _silence_standard_streams() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)


def _seed_matplotlib_cache(image_cache: str = "/opt/codedance-image/matplotlib") -> None:
    """Copy the font cache the sandbox image built into our (empty, tmpfs) MPLCONFIGDIR."""
    target = os.environ.get("MPLCONFIGDIR")
    if not target or not os.path.isdir(image_cache):
        return
    import shutil

    with contextlib.suppress(OSError):
        shutil.copytree(image_cache, target, dirs_exist_ok=True)


def _shield() -> None:
    """Non-dumpable (no /proc/1/fd, no ptrace), and deaf to the usual signals."""
    isolation.prctl(isolation.PR_SET_DUMPABLE, 0)
    for sig in _SHIELDED:
        signal.signal(sig, signal.SIG_IGN)


def _first_frame(fd: int, reader: FrameReader) -> tuple[dict[str, Any], list[bytes]]:
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise ProtocolError("the host closed the stream before the spawn request")
        frames = reader.feed(chunk)
        if frames:
            return frames[0]


def _fork_session(spec: dict[str, Any], loaded: list[str]) -> tuple[int, socket.socket]:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            _close_all_but(theirs.fileno())
            _serve_session(theirs, spec, loaded)
        finally:
            os._exit(0)
    theirs.close()
    return pid, ours


def _close_all_but(keep: int) -> None:
    """Drop every inherited descriptor (the host's stream above all); 0-2 go to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 2)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, gone by now
                os.close(fd)


def _serve_session(channel: socket.socket, spec: dict[str, Any], loaded: list[str]) -> None:
    """The session's init: root like the relay and, like it, out of the code's reach.

    init (``worker/session.py``) keeps root and forks the holder, which drops to
    ``spec["uid"]`` with no capabilities; the inputs reach init in its ``configure``
    message (``await_configure``), so every holder it starts gets them afresh.
    """
    try:
        for sig in _SHIELDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.makedirs(spec["workdir"], exist_ok=True)  # in a container: the tmpfs, already there
        os.chdir(spec["workdir"])  # the code's uid owns it, mode 0711: root may enter
        label = [*spec.get("base_isolation", []), f"preloaded {len(loaded)} modules"]
        if spec.get("uid") is not None:
            label.append(f"code as uid {spec['uid']} apart from a root relay and init")
        init_main(channel, {**spec, "await_configure": True}, ", ".join(label))
    except BaseException as exc:
        send_message(channel, {"op": "failed", "message": f"{type(exc).__name__}: {exc}"})
