"""The in-sandbox engine, for backends that write only their transport.

codedance's worker (``codedance/sandboxes/worker``, standard library only) is
the whole execution side of the sandbox contract: the persistent namespace,
fd-level capture and truncation, images, trimmed tracebacks, soft and hard
timeouts, crash recovery, ``on_error`` and tool installation. It serves one
session over a byte stream (``worker.stdio``). A backend built on it supplies
the transport only: start :func:`worker_argv` where the code should run (a
child process, a container, a VM) and return a socket joined to its stdin and
stdout from :meth:`WorkerSession.connect`. ``examples/subprocess_backend.py``
is a complete backend in under 100 lines; docs/sandboxes.md ("Writing a
backend") walks through it.

A transport that cannot run a process with a byte stream (a Jupyter kernel, say)
uses the worker's pieces directly: ``worker.engine.Engine`` runs one cell and
returns ``(header, blobs)``, :func:`record_from_engine` turns those into an
:class:`ExecutionRecord`, and ``worker.toolbox.install_tools`` binds a bundle
(``SessionSpec.tools.to_wire()``) into a namespace.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance.sandboxes.base import (
    ExecutionRecord,
    SandboxError,
    SandboxSession,
    SessionClosedError,
    SessionSpec,
)
from codedance.sandboxes.records import (
    died_record,
    record_from_message,
    request_restart,
    request_run,
)
from codedance.sandboxes.worker.protocol import ProtocolError, recv_message, send_message

if TYPE_CHECKING:
    import socket

    from codedance.core.config import SandboxConfig

__all__ = [
    "READY_TIMEOUT_S",
    "WORKER_DIR",
    "WorkerSession",
    "record_from_engine",
    "worker_argv",
    "write_inputs",
]

#: The worker package: copy this folder into a container or VM to run it there.
WORKER_DIR = Path(__file__).resolve().parent / "worker"
#: How long a worker may take to import its preloads and answer ``ready``.
READY_TIMEOUT_S = 120.0

_BOOT = (
    "import sys; sys.path.insert(0, {parent!r}); import worker.stdio as w; "
    "sys.path.remove({parent!r}); w.main()"
)


def worker_argv(python: str = sys.executable, worker_parent: str | None = None) -> list[str]:
    """The command that serves one session on its stdin and stdout.

    ``worker_parent`` is the folder holding the ``worker`` package where the
    command runs (default: this installation's); only ``worker`` is importable
    from it, the rest of codedance is not.
    """
    parent = worker_parent or str(WORKER_DIR.parent)
    return [python, "-I", "-c", _BOOT.format(parent=parent)]


def write_inputs(workdir: str | os.PathLike[str], spec: SessionSpec) -> None:
    """Write ``spec``'s images and files into ``workdir`` (a transport that shares the disk)."""
    for item in (*spec.images, *spec.files):
        (Path(workdir) / item.name).write_bytes(item.data)


def record_from_engine(
    header: dict[str, Any], blobs: list[bytes], isolation: str
) -> ExecutionRecord:
    """The record for ``worker.engine.Engine.run``'s result; ValueError if malformed."""
    try:
        return record_from_message({"op": "result", **header}, blobs, isolation)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed engine result ({exc})") from None


class WorkerSession(SandboxSession):
    """A session served by codedance's worker; a subclass supplies :meth:`connect`.

    Everything else of the contract is done here or in the worker: the spawn
    request built from ``config`` and ``spec``, ``run`` with the configured
    default timeout, records, ``restart`` in place, a fresh worker after one died,
    :class:`SessionClosedError` after ``close``.
    """

    isolation: str = "none"

    def __init__(self, config: SandboxConfig, spec: SessionSpec, workdir: str) -> None:
        self.config, self.spec, self.workdir = config, spec, workdir
        self.closed = False
        self.channel: socket.socket | None = None
        self.env = self.session_env()
        self._start()

    @abstractmethod
    def connect(self) -> socket.socket:
        """Start :func:`worker_argv` where code should run; return a socket joined to its stdio."""

    def disconnect(self) -> None:
        """Free what :meth:`connect` started (the channel is already closed)."""

    def session_env(self) -> dict[str, str]:
        """The whole environment model code sees: a minimal base, named host variables, spec.env."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}
        env["HOME"], env["MPLCONFIGDIR"] = self.workdir, f"{self.workdir}/.matplotlib"
        env.update({name: os.environ[name] for name in self.config.env if name in os.environ})
        env.update(self.spec.env)
        return env

    def worker_spec(self) -> dict[str, Any]:
        """The spawn request's spec (the same fields the local and Docker backends send)."""
        cfg, spec, mb = self.config, self.spec, 1024 * 1024
        worker: dict[str, Any] = {
            "workdir": self.workdir,
            "env": self.env,
            "images": [image.name for image in spec.images],
            "tools": spec.tools.to_wire() if spec.tools else None,
            "on_error": spec.on_error,
            "max_output_chars": cfg.max_output_chars,
            # No nproc: it counts the uid's processes machine-wide, not the session's.
            "session_limits": {"nofile": 1024, "core": 0},
            "holder_limits": {"as": cfg.memory_mb * mb, "fsize": cfg.max_file_mb * mb},
            "cpu_time_s": cfg.cpu_time_s,
            "base_isolation": [type(self).isolation],
        }
        if cfg.options.get("preload") is not None:
            worker["preload"] = [str(name) for name in cfg.options["preload"]]
        return worker

    # -- the session ---------------------------------------------------------------

    def _start(self) -> None:
        channel = self.connect()
        try:
            send_message(channel, {"op": "spawn", "spec": self.worker_spec()})
            channel.settimeout(READY_TIMEOUT_S)
            header, _ = recv_message(channel)
        except (ProtocolError, OSError) as exc:
            self._drop(channel)
            raise SandboxError(f"the sandbox worker did not start ({exc})") from None
        if header.get("op") != "ready":
            self._drop(channel)
            raise SandboxError(f"the sandbox worker failed to start: {header.get('message')}")
        self.channel = channel
        self.isolation = str(header.get("isolation", type(self).isolation))

    def _drop(self, channel: socket.socket | None) -> None:
        self.channel = None
        if channel is not None:
            channel.close()
        self.disconnect()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.channel is not None
        send_message(self.channel, message)

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        if self.closed:
            raise SessionClosedError("run() on a closed session; open a new one")
        if self.channel is None:
            self._start()
        assert self.channel is not None
        limit = float(timeout if timeout is not None else self.config.timeout_s)
        start = time.perf_counter()
        outcome = request_run(self._send, self.channel, code, limit, self.isolation)
        if isinstance(outcome, ExecutionRecord):
            return outcome
        self._drop(self.channel)
        why = (
            f"the sandbox worker stopped answering ({outcome}); a fresh one starts on the next run"
        )
        return died_record(why, time.perf_counter() - start, self.isolation)

    def restart(self) -> None:
        if self.closed:
            raise SessionClosedError("restart() on a closed session; open a new one")
        if self.channel is not None and request_restart(self._send, self.channel):
            return
        self._drop(self.channel)
        self._start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.channel is not None:
            with contextlib.suppress(OSError):
                self._send({"op": "close"})
        self._drop(self.channel)
