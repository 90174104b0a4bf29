"""The local sandbox backend: a warm zygote inside bubblewrap, one forked session each.

The zygote (local_zygote.py) imports numpy, PIL, cv2, matplotlib, sympy and
shapely once; a session is a fork of it (milliseconds, not the ~600 ms of a fresh
interpreter) that joins a cgroup of its own (local_limits.py), enters its own PID,
network, IPC and mount namespaces, works in a sized tmpfs with no other session's
folder in its mount tree, and runs model code as a uid no other live session has,
without capabilities. A pool of pre-forked sessions (local_pool.py) takes the
fork off the critical path. Without bubblewrap the backend still works but says
loudly, in every record and in ``codedance doctor``, that the host filesystem is
visible.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance.sandboxes.base import (
    ExecutionRecord,
    SandboxBackend,
    SandboxError,
    SandboxSession,
    SessionClosedError,
    SessionSpec,
)
from codedance.sandboxes.local_limits import (
    CgroupTree,
    Reaper,
    SessionCgroup,
    UidPool,
    detect_cgroups,
    kill_uid,
    safe_rmtree,
)
from codedance.sandboxes.local_pool import SessionPool
from codedance.sandboxes.local_zygote import (
    INSIDE_SESSIONS,
    NO_BWRAP,
    WORKER_DIR,
    UnisolatedWarning,
    Zygote,
)
from codedance.sandboxes.records import died_record, request_restart, request_run
from codedance.sandboxes.worker.protocol import ProtocolError, recv_message, send_message

if TYPE_CHECKING:
    from codedance.core.config import SandboxConfig

__all__ = ["WORKER_DIR", "LocalSandbox", "LocalSession", "UnaccountedWarning", "UnisolatedWarning"]

INSIDE_WORKDIR = "/workspace"
BASE_UID = 200_000


class UnaccountedWarning(UserWarning):
    """No per-session cgroup here: memory, processes and CPU are limited per process only."""


@dataclass
class Handle:
    """One spawned session on the host side: its socket and what it holds on the machine."""

    sock: socket.socket
    uid: int | None
    cgroup: SessionCgroup | None
    workdir: Path | None  # a host folder only without bubblewrap
    generation: int  # the zygote's tool generation when it forked
    spawned: bool = False  # its init said "spawned" (waiting for its inputs)


class LocalSandbox(SandboxBackend):
    """Sessions forked from a warm zygote; isolated with bubblewrap, namespaces, cgroups."""

    name = "local"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self._zygote: Zygote | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count()
        opts = self.config.options
        self.use_bwrap = bool(opts.get("bubblewrap", True)) and shutil.which("bwrap") is not None
        preload = opts.get("preload")
        self.preload = None if preload is None else [str(name) for name in preload]
        self.settings = self.config.local
        self._uids = UidPool(BASE_UID) if os.geteuid() == 0 else None
        self._cgroups: CgroupTree | None = None
        self.accounting = ""  # what the records say about per-session accounting
        self.pool = SessionPool(self, self.settings.pool_size if self.use_bwrap else 0)
        self._reaper = Reaper()

    @classmethod
    def doctor(cls) -> str | None:
        if shutil.which("bwrap") is None:
            return NO_BWRAP
        return None

    @classmethod
    def describe(cls) -> str:
        """The isolation a session gets here, for ``codedance doctor``."""
        if shutil.which("bwrap") is None:
            return NO_BWRAP
        uid = "its own uid (unique among live sessions)" if os.geteuid() == 0 else "your uid"
        tree, why = detect_cgroups(f"codedance-doctor-{os.getpid()}")
        if tree is not None:
            tree.close()
        accounting = tree.label if tree is not None else f"NO CGROUP ({why}): per-process limits"
        return (
            "bubblewrap (read-only system, no home) + per-session pid/net/ipc/mount "
            f"namespaces (no network), {uid} without capabilities, {accounting}, "
            "a sized tmpfs workdir, hard CPU limit, soft and hard timeouts"
        )

    def open_session(self, spec: SessionSpec | None = None) -> LocalSession:
        return LocalSession(self, spec or SessionSpec())

    # -- sessions' machinery (used by LocalSession and the pool) -----------------------

    def ensure_zygote(self) -> Zygote:
        with self._lock:
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._setup_accounting()  # first: "required" must fail before any fork
                self._zygote = Zygote(self.use_bwrap, self.preload)
            return self._zygote

    def _setup_accounting(self) -> None:
        if self._cgroups is not None or self.accounting:
            return
        mode = self.settings.cgroups
        if mode == "off":
            self.accounting = ", no cgroup (sandbox.local.cgroups: off): per-process limits"
            return
        tree, why = detect_cgroups(f"codedance-{os.getpid()}-{id(self):x}")
        if tree is None:
            message = (
                f"NO CGROUP ({why}): memory, processes and CPU are limited per process, "
                "not per session (run as root, or delegate a cgroup v2 subtree)"
            )
            if mode == "required":
                raise SandboxError(f"sandbox.local.cgroups is 'required' but {message}")
            warnings.warn(message, UnaccountedWarning, stacklevel=4)
            self.accounting = f", {message}"
            return
        self._cgroups = tree
        self.accounting = f", {tree.label}"

    def spawn(self) -> Handle:
        """Fork a session that waits for its inputs (pool or cold path)."""
        zygote = self.ensure_zygote()
        index = next(self._counter)
        uid = self._uids.acquire() if self._uids is not None else None
        cgroup = workdir = None
        try:
            if self._cgroups is not None:
                cfg = self.config
                cgroup = self._cgroups.create(
                    f"s{index}", cfg.memory_mb << 20, cfg.max_processes, self.settings.cpus
                )
            if not zygote.bwrap:
                workdir = zygote.sessions_root / f"s{index}"
                workdir.mkdir(mode=0o700)
                if uid is not None:
                    os.chown(workdir, uid, uid)
            spec = self._worker_spec(zygote, workdir, uid, cgroup is not None)
            fds = cgroup.open_join_fds() if cgroup is not None else []
            sock = zygote.spawn(spec, fds)
        except BaseException:
            self._free(uid, cgroup, workdir)
            raise
        return Handle(sock, uid, cgroup, workdir, zygote.generation)

    def _worker_spec(
        self, zygote: Zygote, workdir: Path | None, uid: int | None, accounted: bool
    ) -> dict[str, Any]:
        cfg, local = self.config, self.settings
        mb = 1024 * 1024
        owner = f",uid={uid},gid={uid}" if uid is not None else ""
        size = f"size={local.workdir_mb}m,nr_inodes={local.max_files}"
        label = (
            f"workdir {local.workdir_mb} MB tmpfs (max {local.max_files} files), "
            "other sessions not mounted"
        )
        return {
            "await_configure": True,
            "workdir": INSIDE_WORKDIR if workdir is None else str(workdir),
            "mount_workdir_at": INSIDE_WORKDIR if zygote.bwrap else None,
            "workdir_tmpfs": f"{size},mode=0711{owner}",  # init (root, no DAC caps) enters it
            "workdir_label": label.split(",")[0],
            "sessions_root": INSIDE_SESSIONS if zygote.bwrap else None,
            "tmpfs": {"/tmp": f"{size},mode=1777"} if zygote.private_tmp else {},
            "base_isolation": [zygote.label],
            "uid": uid,
            "session_limits": {"nproc": cfg.max_processes, "nofile": 1024, "core": 0},
            "holder_limits": {"as": cfg.memory_mb * mb, "fsize": cfg.max_file_mb * mb},
            "cpu_time_s": cfg.cpu_time_s,
            "max_output_chars": cfg.max_output_chars,
        }

    def configure(self, handle: Handle, spec: SessionSpec, zygote: Zygote) -> str:
        """Send a spawned session its inputs; return its isolation line once ready."""
        files = [*spec.images, *spec.files]
        message = {
            "op": "configure",
            "env": self._env(zygote, handle, spec),
            "images": [image.name for image in spec.images],
            "files": [item.name for item in files],
            "tools": spec.tools.wire_json if spec.tools else None,
            "on_error": spec.on_error,
            "max_output_chars": self.config.max_output_chars,
            "label": self.accounting,
        }
        handle.sock.settimeout(60)
        try:
            send_message(handle.sock, message, [item.data for item in files])
            header, _ = recv_message(handle.sock)
            if header.get("op") == "spawned":
                header, _ = recv_message(handle.sock)
        except (ProtocolError, OSError) as exc:
            raise SandboxError(f"the sandbox session did not start: {exc}") from None
        if header.get("op") != "ready":
            raise SandboxError(f"the sandbox session failed to start: {header.get('message')}")
        return str(header.get("isolation", "unknown"))

    def _env(self, zygote: Zygote, handle: Handle, spec: SessionSpec) -> dict[str, str]:
        cfg = self.config
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}
        env.update({name: os.environ[name] for name in cfg.env if name in os.environ})
        env.update(spec.env)  # the session's own variables (thread caps among them)
        home = INSIDE_WORKDIR if handle.workdir is None else str(handle.workdir)
        env.setdefault("HOME", home)
        if not zygote.private_tmp:  # /tmp is shared (or the host's): use the workdir
            env.setdefault("TMPDIR", home)
        return env

    def release(self, handle: Handle) -> None:
        """Kill whatever is left of a session and free its uid, cgroup and folder."""
        with contextlib.suppress(OSError):
            handle.sock.close()
        self._free(handle.uid, handle.cgroup, handle.workdir)

    def _free(self, uid: int | None, cgroup: SessionCgroup | None, workdir: Path | None) -> None:
        """SIGKILL the session's processes now; wait for them (and free the rest) behind us.

        A killed process takes tens of milliseconds to tear down its memory; close()
        does not wait for that. The uid is reused only once nothing runs as it.
        """
        if cgroup is not None:
            cgroup.kill()
        self._reaper.submit(functools.partial(self._finish_free, uid, cgroup, workdir))

    def _finish_free(
        self, uid: int | None, cgroup: SessionCgroup | None, workdir: Path | None
    ) -> None:
        gone = cgroup.kill_and_remove(timeout=10) if cgroup is not None else False
        if uid is not None and not gone:
            gone = kill_uid(uid)  # no cgroup: the uid is the session's, so are its processes
        if uid is not None and self._uids is not None and gone:
            self._uids.release(uid)  # never reuse a uid something still runs as
        if workdir is not None:
            safe_rmtree(workdir)

    def close(self) -> None:
        self.pool.close()
        self._reaper.drain()
        with self._lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None
            if self._cgroups is not None:
                self._cgroups.close()
                self._cgroups = None
                self.accounting = ""


class LocalSession(SandboxSession):
    """One trajectory's session: a process tree under the zygote, one socket to its init."""

    def __init__(self, backend: LocalSandbox, spec: SessionSpec) -> None:
        self.backend, self.spec = backend, spec
        self.closed = False
        self.handle: Handle | None = None
        self._start()

    @property
    def sock(self) -> socket.socket:
        assert self.handle is not None
        return self.handle.sock

    def _start(self) -> None:
        backend = self.backend
        zygote = backend.ensure_zygote()
        if self.spec.tools:
            zygote.warm(self.spec.tools.digest, self.spec.tools.wire_json)
        handle = backend.pool.take(zygote) or backend.spawn()
        try:
            self.isolation = backend.configure(handle, self.spec, zygote)
        except BaseException:
            backend.release(handle)
            raise
        self.handle, self.alive = handle, True

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        if self.closed:
            raise SessionClosedError("run() on a closed session; open a new one")
        if not self.alive:
            self.restart()
        limit = float(timeout if timeout is not None else self.backend.config.timeout_s)
        start = time.perf_counter()
        cap = self.backend.config.max_output_chars
        outcome = request_run(
            lambda message: send_message(self.sock, message),
            self.sock,
            code,
            limit,
            self.isolation,
            max_chars=cap,
        )
        if isinstance(outcome, ExecutionRecord):
            return outcome
        self._drop()
        why = f"the sandbox session stopped answering ({outcome}); it restarts on the next run"
        return died_record(why, time.perf_counter() - start, self.isolation)

    def restart(self) -> None:
        if self.closed:
            raise SessionClosedError("restart() on a closed session; open a new one")
        if self.alive:
            if request_restart(lambda message: send_message(self.sock, message), self.sock):
                return
            self._drop()
        self._start()

    def _drop(self) -> None:
        self.alive = False
        if self.handle is not None:
            self.backend.release(self.handle)
            self.handle = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.alive and self.handle is not None:
            with contextlib.suppress(OSError):
                send_message(self.sock, {"op": "close"})
        self._drop()
