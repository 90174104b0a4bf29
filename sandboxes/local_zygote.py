"""The local backend's zygote: a warm Python inside bubblewrap that forks sessions.

The zygote imports numpy, PIL, cv2, matplotlib, sympy and shapely once; a session
is a fork of it. bubblewrap gives it a read-only view of the system and the
interpreter, a private /tmp and nothing of the home directory or the project. As
root, bubblewrap would keep every capability of the host shell: the zygote gets
only the ones it needs to build sessions (ZYGOTE_CAPS), and each session's init
and holder drop more (see worker/session.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from codedance.sandboxes.base import SandboxError
from codedance.sandboxes.local_limits import safe_rmtree

__all__ = ["INSIDE_SESSIONS", "NO_BWRAP", "WORKER_DIR", "UnisolatedWarning", "Zygote"]

WORKER_DIR = Path(__file__).resolve().parent / "worker"
INSIDE_WORKER = "/opt/codedance"
INSIDE_SESSIONS = "/sessions"
NO_BWRAP = (
    "NO ISOLATION: bubblewrap missing, the host filesystem is visible (apt-get install bubblewrap)"
)
#: What the zygote keeps when the host is root: build namespaces and mounts (SYS_ADMIN),
#: start holders as the session's uid (SETUID, SETGID), kill sessions (KILL), give
#: holders CPU limits they cannot raise (SYS_RESOURCE), drop the rest (SETPCAP).
ZYGOTE_CAPS = {
    "CAP_SYS_ADMIN": 21,
    "CAP_SETUID": 7,
    "CAP_SETGID": 6,
    "CAP_KILL": 5,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SETPCAP": 8,
}
_HOST_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: The few files of /etc that the interpreter, the dynamic linker and fonts need.
_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/fonts",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
)


class UnisolatedWarning(UserWarning):
    """The local sandbox runs without bubblewrap: model code can see the host's files."""


class Zygote:
    """The warm parent process and the control socket used to ask it for sessions."""

    def __init__(self, bwrap: bool, preload: list[str] | None) -> None:
        self.bwrap = bwrap
        self.sessions_root = Path(tempfile.mkdtemp(prefix="codedance-sessions-"))
        os.chmod(self.sessions_root, 0o711)
        self.label = "bubblewrap (read-only system, no home)" if bwrap else NO_BWRAP
        # A private /tmp per session would hide an interpreter that lives under /tmp.
        self.python_paths = _python_paths()
        self.private_tmp = bwrap and not any(p.startswith("/tmp/") for p in self.python_paths)
        if not bwrap:
            warnings.warn(NO_BWRAP, UnisolatedWarning, stacklevel=4)
        self.lock = threading.Lock()
        self.warmed: set[str] = set()
        self.generation = 0  # bumped when a new tool bundle is imported (pooled forks lack it)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        env = self._env(theirs.fileno(), preload)
        argv = self._bwrap_argv() if bwrap else []
        argv += [sys.executable, "-I", "-c", _BOOT.format(path=self._worker_parent())]
        self.log_path = self.sessions_root / "zygote.log"  # not visible to sessions
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        theirs.close()
        self._await_ready()

    def _worker_parent(self) -> str:
        return INSIDE_WORKER if self.bwrap else str(WORKER_DIR.parent)

    def _env(self, fd: int, preload: list[str] | None) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "LANG": "C.UTF-8",
            "CODEDANCE_CONTROL_FD": str(fd),
        }
        if not self.bwrap:
            env["MPLCONFIGDIR"] = str(self.sessions_root / ".matplotlib")
        env.update({k: os.environ[k] for k in _HOST_ENV if k in os.environ})
        if preload is not None:  # None: the worker's default list
            env["CODEDANCE_ZYGOTE"] = json.dumps({"preload": preload})
        return env

    def _bwrap_argv(self) -> list[str]:
        argv = [
            "bwrap",
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            "sandbox",
        ]
        if os.geteuid() == 0:  # bubblewrap keeps root's capabilities unless told
            argv += ["--cap-drop", "ALL"]
            permitted = _own_capabilities()
            for cap, bit in ZYGOTE_CAPS.items():
                # Asked for a capability the host lacks, bubblewrap 0.8 keeps them all.
                if permitted >> bit & 1:
                    argv += ["--cap-add", cap]
        else:
            argv += ["--unshare-user"]
        for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
            argv += _bind_or_link(path)
        argv += ["--tmpfs", "/tmp"]  # first: a venv may live under the host's /tmp
        python = self.python_paths
        etc = [path for path in _ETC if os.path.exists(path)]
        worker = f"{INSIDE_WORKER}/worker"
        for parent in _parents([*python, *etc, worker]):  # bwrap would make them 0700
            argv += ["--perms", "0755", "--dir", parent]
        for path in etc:
            argv += ["--ro-bind", path, path]
        for path in python:
            argv += ["--ro-bind", path, path]
        argv += [
            "--ro-bind",
            str(WORKER_DIR),
            worker,
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--dir",
            "/workspace",
            "--ro-bind",  # the zygote reads tool bundles here; sessions unmount it
            str(self.sessions_root),
            INSIDE_SESSIONS,
            "--chdir",
            "/tmp",
            # bubblewrap's root (/, /etc, /opt, ... as folders on a tmpfs) belongs to the
            # uid bubblewrap ran as, which is the session's root on a non-root host.
            "--remount-ro",
            "/",
        ]
        return argv

    def _await_ready(self) -> None:
        self.control.settimeout(120)
        try:
            data = self.control.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self.process.kill()
            err = self.log_path.read_text(errors="replace").strip()[-2000:]
            raise SandboxError(f"the local sandbox's zygote failed to start: {err}")
        self.preloaded = json.loads(data).get("preloaded", [])
        self.control.settimeout(None)

    def spawn(self, spec: dict[str, Any], extra_fds: list[int]) -> socket.socket:
        """Fork a session; ``extra_fds`` (its cgroups' procs files) are closed here."""
        ours, theirs = socket.socketpair()
        try:
            payload = json.dumps({"op": "spawn", "spec": spec}).encode()
            with self.lock:
                socket.send_fds(self.control, [payload], [theirs.fileno(), *extra_fds])
        except OSError as exc:
            ours.close()
            raise SandboxError(f"the local sandbox's zygote is gone: {exc}") from None
        finally:
            theirs.close()
            for fd in extra_fds:
                os.close(fd)
        return ours

    def warm(self, digest: str, wire_json: str) -> bool:
        """Have the zygote import a tool bundle once; True the first time for ``digest``."""
        if digest in self.warmed:
            return False
        path = self.sessions_root / f"tools-{digest}.json"  # outside every session's tree
        path.write_text(wire_json, encoding="utf-8")
        payload = json.dumps({"op": "warm", "digest": digest, "path": self.inside(path)})
        with self.lock:
            self.control.send(payload.encode())
        self.warmed.add(digest)
        self.generation += 1
        return True

    def inside(self, path: Path) -> str:
        return f"{INSIDE_SESSIONS}/{path.name}" if self.bwrap else str(path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.control.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        safe_rmtree(self.sessions_root)


_BOOT = "import sys; sys.path.insert(0, {path!r}); from worker.zygote import main; main()"


def _own_capabilities() -> int:
    """This process's permitted capabilities (a container's root may lack some)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapPrm:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def _bind_or_link(path: str) -> list[str]:
    if os.path.islink(path):
        return ["--symlink", os.readlink(path), path]
    return ["--ro-bind-try", path, path]


def _parents(paths: list[str]) -> list[str]:
    """Every ancestor directory of ``paths`` (outermost first), without "/"."""
    found: set[str] = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            found.add(parent)
            parent = os.path.dirname(parent)
    return sorted(found, key=lambda p: (p.count("/"), p))


def _python_paths() -> list[str]:
    """The interpreter, its standard library and site-packages: nothing else of the host."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    # Only the site directories of sys.path: never the running script's folder or the
    # working directory, which may hold a project's secrets (.env, keys, data).
    candidates |= {p for p in sys.path if p and os.path.isdir(p) and _is_site_dir(p)}
    real = sorted({os.path.realpath(p) for p in candidates} | candidates)
    keep: list[str] = []
    for path in real:
        if os.path.isdir(path) and not any(path.startswith(k + os.sep) for k in keep):
            keep.append(path)
    return [p for p in keep if not p.startswith(("/usr/", "/bin", "/lib"))]


def _is_site_dir(path: str) -> bool:
    """site-packages / dist-packages folders (and their .pth-added subfolders)."""
    parts = os.path.normpath(path).split(os.sep)
    return any(part in ("site-packages", "dist-packages") for part in parts)


_BOOT = "import sys; sys.path.insert(0, {path!r}); from worker.zygote import main; main()"
