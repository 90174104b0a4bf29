"""The Docker sandbox backend: one container per session, codedance's worker inside.

Each session is a container with no network, a read-only root filesystem,
``no-new-privileges``, memory (swap off), pids and CPU limits (one CPU unless
``sandbox.options.cpus`` says otherwise). Its PID 1 is the relay
(:mod:`codedance.sandboxes.worker.relay`): root with only the SETUID, SETGID
and KILL capabilities, non-dumpable, holding the only channel to the
host. The session's init is its child (root as well); model code runs in the
holder, which dropped to ``sandbox.options.user`` (65534 by default) and every
capability, so it can neither read the relay's or init's descriptors, trace
them, nor signal them.

Three tmpfs mounts are the only writable places: ``/workspace`` (the working
directory and ``HOME``, owned by the sandbox uid), ``/tmp`` and ``/opt/codedance``
(the worker's code, root-owned). Docker refuses ``put_archive`` on a read-only
root, so the worker and the inputs travel over the container's stdin
(:mod:`codedance.sandboxes.docker_session`).

Containers never outlive this process: they are attached with ``StdinOnce`` and
``AutoRemove`` (the relay ends when its stdin closes), and labelled with their
owner (host, pid, start time), so a backend that starts removes the containers
of owners that are gone. A warm pool (``sandbox.options.pool_size``) keeps
containers booted and preloaded, so opening a session costs a spawn, not a boot.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from codedance.core.errors import MissingDependencyError
from codedance.sandboxes.base import SandboxBackend, SandboxError, SessionSpec
from codedance.sandboxes.docker_session import BOOT, DockerSession, WarmContainer
from codedance.sandboxes.local import WORKER_DIR

if TYPE_CHECKING:
    from codedance.core.config import SandboxConfig
    from codedance.sandboxes.docker_pool import ContainerPool

__all__ = ["BOOT", "DockerSandbox", "DockerSession", "tmpfs_mounts"]

WORKDIR = "/workspace"
WORKER_ROOT = "/opt/codedance"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OWNER_LABEL, SESSION_LABEL = "codedance.owner", "codedance.session"
#: The relay's and init's only privileges: start the holder as the sandbox uid and kill
#: what the code leaves; the holder drops them all. Not SYS_RESOURCE: engines whose host
#: lacks it refuse to start the container, and init then falls back to a soft CPU limit
#: (the CPU quota and the wall-clock kill still hold).
RELAY_CAPS = ["SETUID", "SETGID", "KILL"]
#: Seen by the relay only (it preloads), not by model code.
_BOOT_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/codedance-relay",
}


def tmpfs_mounts(uid: int, gid: int) -> dict[str, str]:
    """The writable mounts; Docker adds noexec to each. The workdir belongs to the code's uid.

    Owning the tmpfs through its ``uid``/``gid`` options (not a mode on a mount point
    Docker may have created root-owned, moby/moby#39466) is what makes it writable.
    """
    return {
        WORKDIR: f"rw,nosuid,nodev,size=512m,uid={uid},gid={gid},mode=0711",
        "/tmp": "rw,nosuid,nodev,size=512m,mode=1777",
        WORKER_ROOT: "rw,nosuid,nodev,size=16m,mode=0755",
    }


def _import_docker() -> ModuleType:
    """The docker SDK, imported on first use (never at codedance's import time)."""
    try:
        return importlib.import_module("docker")
    except ImportError:
        raise MissingDependencyError.for_extra(
            "docker", "docker", "the docker sandbox backend"
        ) from None


class DockerSandbox(SandboxBackend):
    """One container per session, created through the docker SDK."""

    name = "docker"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        from codedance.sandboxes.docker_options import parse_options  # pydantic: load lazily

        self.options = parse_options(self.config.options)
        self.uid, self.gid = self.options.ids()
        self._docker = _import_docker()
        self._lock = threading.Lock()
        self._client: Any = None
        self._image_env: dict[str, str] | None = None
        self._sessions: set[DockerSession] = set()
        self._pool: ContainerPool | None = None
        self._removals: list[threading.Thread] = []
        self._boots = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
        self._worker_files = [
            (f"{WORKER_ROOT}/worker/{path.name}", path.read_bytes())
            for path in sorted(WORKER_DIR.glob("*.py"))
        ]

    @classmethod
    def doctor(cls, config: SandboxConfig | None = None) -> str | None:
        """Whether an engine answers and the configured image has what the tools need."""
        from codedance.sandboxes.docker_image import doctor_problem

        try:
            docker = _import_docker()
        except MissingDependencyError as exc:
            return str(exc)
        return doctor_problem(docker, config)

    @classmethod
    def describe(cls, config: SandboxConfig | None = None) -> str:
        """The isolation a session gets, for ``codedance doctor``."""
        from codedance.sandboxes.docker_image import describe_image

        text = (
            "one container per session: no network, read-only root, tmpfs workdir, "
            "code as uid 65534 apart from a root relay and init with 3 capabilities, "
            "memory/pids/CPU limits"
        )
        return text + describe_image(config)

    def open_session(self, spec: SessionSpec | None = None) -> DockerSession:
        session = DockerSession(self, spec or SessionSpec())
        with self._lock:
            self._sessions.add(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
            pool, self._pool = self._pool, None
        for session in sessions:
            session.close()
        if pool is not None:
            pool.close()
        with self._lock:
            removals, self._removals = self._removals, []
        for thread in removals:
            thread.join(timeout=30)
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- the engine ---------------------------------------------------------------

    @contextlib.contextmanager
    def engine_call(self, what: str) -> Iterator[None]:
        """Turn the SDK's and the transport's errors into a SandboxError saying ``what``."""
        import requests

        errors = (self._docker.errors.DockerException, requests.RequestException, OSError)
        try:
            yield
        except errors as exc:
            raise SandboxError(f"Docker could not {what}: {exc}") from None

    def client(self) -> Any:
        """The SDK client, connected on first use; its first use reaps orphans."""
        from codedance.sandboxes.docker_image import reap_orphans

        with self._lock:
            if self._client is None:
                with self.engine_call("connect to the engine (is it running?)"):
                    if self.options.base_url:
                        client = self._docker.DockerClient(base_url=self.options.base_url)
                    else:
                        client = self._docker.from_env()
                with contextlib.suppress(Exception):  # a failed sweep must not stop sessions
                    reap_orphans(client, OWNER_LABEL)
                self._client = client
            return self._client

    def image_env(self) -> dict[str, str]:
        """The image's ENV, after making sure the engine has the image (pulling if allowed)."""
        if self._image_env is None:
            from codedance.sandboxes.docker_image import find_image

            image = find_image(self, self.options.image)
            pairs = (item.partition("=") for item in image.attrs["Config"].get("Env") or [])
            self._image_env = {name: value for name, _, value in pairs}
        return self._image_env

    def session_env(self, spec: SessionSpec) -> dict[str, str]:
        """The whole environment model code sees: the image's ENV, ours, and named ones."""
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}
        env["MPLCONFIGDIR"] = "/tmp/matplotlib"
        env.update(self.image_env())
        env["HOME"] = WORKDIR
        env.update({name: os.environ[name] for name in self.config.env if name in os.environ})
        env.update(spec.env)
        return env

    def worker_spec(self, spec: SessionSpec) -> dict[str, Any]:
        """The spawn request's spec, as the local backend builds it, plus the code's uid."""
        cfg, mb = self.config, 1024 * 1024
        return {
            "workdir": WORKDIR,
            "env": self.session_env(spec),
            "images": [image.name for image in spec.images],
            "tools": spec.tools.to_wire() if spec.tools else None,
            "on_error": spec.on_error,
            "max_output_chars": cfg.max_output_chars,
            # No nproc: it counts a uid's processes host-wide, across containers; the
            # pids cgroup limit bounds this container instead.
            "session_limits": {"nofile": 1024, "core": 0},
            "holder_limits": {"as": cfg.memory_mb * mb, "fsize": cfg.max_file_mb * mb},
            "cpu_time_s": cfg.cpu_time_s,
            "base_isolation": [self.isolation_label()],
            "uid": self.uid,
            "gid": self.gid,
        }

    def isolation_label(self) -> str:
        """What the container's settings enforce, for every record."""
        cfg, cpus = self.config, self.options.cpus
        limits = f"{cfg.memory_mb} MB memory, {cfg.max_processes} pids"
        limits += f", {cpus:g} CPUs" if cpus else ", no CPU quota"
        return f"docker {self.options.image} (no network, read-only root, {limits})"

    def create_args(self) -> dict[str, Any]:
        """Keyword arguments of the SDK's low-level ``create_container``."""
        cfg, opts, api = self.config, self.options, self.client().api
        host = api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs=tmpfs_mounts(self.uid, self.gid),
            mem_limit=f"{cfg.memory_mb}m",
            memswap_limit=f"{cfg.memory_mb}m",
            pids_limit=cfg.max_processes,
            cap_drop=["ALL"],
            cap_add=RELAY_CAPS,
            security_opt=["no-new-privileges"],
            auto_remove=True,
            nano_cpus=int(opts.cpus * 1e9) if opts.cpus else None,
        )
        from codedance.sandboxes.docker_image import owner_label

        return {
            "image": opts.image,
            "command": [opts.python, "-I", "-c", BOOT],
            # detach=False with stdin_open: StdinOnce, so stdin closes with our attach.
            "stdin_open": True,
            "detach": False,
            "tty": False,
            "user": "0:0",
            "environment": dict(_BOOT_ENV),
            "labels": {OWNER_LABEL: owner_label(), SESSION_LABEL: socket.gethostname()},
            "network_disabled": True,
            "host_config": host,
        }

    def boot_bundle(self) -> tuple[dict[str, Any], list[bytes]]:
        """What BOOT reads first: the worker's files, where to put them, what to preload."""
        header = {
            "files": [path for path, _ in self._worker_files],
            "root": WORKER_ROOT,
            "preload": self.options.preload,
        }
        return header, [data for _, data in self._worker_files]

    # -- containers ---------------------------------------------------------------

    def take_container(self) -> WarmContainer:
        """A warm container: from the pool when it has one, else booted now."""
        self.image_env()  # a missing image is reported here, once, with its fix
        pool = self.pool()
        return self.boot() if pool is None else pool.take()

    def pool(self) -> ContainerPool | None:
        """The warm pool (None with ``pool_size: 0``); it fills from the second session on.

        ``backend.pool().fill()`` starts filling at once, for a caller about to open many.
        """
        if self.options.pool_size == 0:
            return None
        with self._lock:
            if self._pool is None:
                from codedance.sandboxes.docker_pool import ContainerPool

                self._pool = ContainerPool(self.boot, self.options.pool_size)
            return self._pool

    def boot(self) -> WarmContainer:
        """A freshly booted container; boots take turns, a few at a time (one per core).

        Each boot imports the vision stack; sixty-four at once on two cores would each
        take a minute and time out, where taking turns gets every one up in seconds.
        """
        with self._boots:
            return WarmContainer(self)

    def remove_later(self, container_id: str) -> None:
        """Remove a container in the background (``close`` need not wait for the engine)."""

        def remove() -> None:
            with contextlib.suppress(Exception):  # already gone (AutoRemove) is fine
                self.client().api.remove_container(container_id, force=True)

        thread = threading.Thread(target=remove, name="codedance-docker-remove", daemon=True)
        with self._lock:
            self._removals = [t for t in self._removals if t.is_alive()]
            self._removals.append(thread)
        thread.start()

    def forget(self, session: DockerSession) -> None:
        with self._lock:
            self._sessions.discard(session)
