"""The zygote: import the heavy modules once, then fork a session per request.

The host starts it (inside bubblewrap when available) with a SOCK_SEQPACKET
control socket. Each request carries the session's spec as JSON and, as an
attached file descriptor, the socket the session will talk to the host on. The
forked child enters its own namespaces, hides every other session's directory,
and becomes the session's init.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

from . import isolation
from .protocol import send_message
from .session import INIT_CAPS, init_main
from .toolbox import load_bundle, warm_modules

PRELOAD = (
    "numpy",
    "numpy.random",  # numpy 2 loads it lazily: ~17 ms on a session's first use otherwise
    "PIL.Image",
    "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin",
    "cv2",
    "matplotlib",
    "matplotlib.pyplot",
    "sympy",
    "shapely",
)


def preload(modules: list[str]) -> list[str]:
    """Import what is installed; return the names that loaded."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            continue
        loaded.append(name)
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].figure().clear()  # builds the font cache now
        sys.modules["matplotlib.pyplot"].close("all")
    return loaded


def main() -> None:
    control = socket.socket(fileno=int(os.environ.pop("CODEDANCE_CONTROL_FD")))
    config = json.loads(os.environ.pop("CODEDANCE_ZYGOTE", "{}"))
    loaded = preload(list(config.get("preload", PRELOAD)))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sessions are reaped automatically
    control.send(json.dumps({"op": "ready", "preloaded": loaded, "pid": os.getpid()}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 8)
        except OSError:
            return
        if not data:
            return  # the host went away
        request = json.loads(data)
        if request.get("op") == "warm":
            _warm_tools(request)
        elif request.get("op") == "spawn" and fds:
            _spawn(control, fds[0], fds[1:], request["spec"])
        for fd in fds:
            os.close(fd)


_WARMED: set[str] = set()


def _warm_tools(request: dict[str, Any]) -> None:
    """Import a tool bundle seen for the first time here, so later forks inherit it.

    The host writes the bundle next to (never inside) the sessions' folders; a
    session's working directory is its own tmpfs, so code cannot replace it.
    """
    digest, path = request.get("digest"), request.get("path")
    if not digest or not path or digest in _WARMED:
        return
    _WARMED.add(digest)
    try:
        bundle = load_bundle({"path": path}, consume=False)
        if bundle:
            warm_modules(bundle)
    except Exception:  # a broken bundle is the session's to report, not the zygote's
        pass


def _spawn(
    control: socket.socket, host_fd: int, cgroup_fds: list[int], spec: dict[str, Any]
) -> None:
    """Start a session: its init, PID 1 of new namespaces, made by one clone()."""
    uid, gid = os.geteuid(), os.getegid()
    features = list(spec.get("base_isolation", []))
    try:  # privileged (root host, or root of bubblewrap's user namespace)
        pid = isolation.clone(_NAMESPACES)
        own_user = False
    except OSError:
        try:  # a user namespace of our own first (a non-root host)
            pid = isolation.clone(_NAMESPACES | isolation.CLONE_NEWUSER)
            own_user = True
        except OSError as exc:
            features.append(f"no session namespaces ({exc.strerror})")
            pid, own_user = os.fork(), False
            spec = {**spec, "no_namespaces": True}
    if pid != 0:
        return
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        host = socket.socket(fileno=os.dup(host_fd))
        for fd in cgroup_fds:  # join the session's cgroups before anything else
            os.write(fd, b"0")
            os.close(fd)
        os.close(host_fd)
        if own_user:
            isolation.map_ids("self", 0, uid, 0, gid)
        label = _isolate(spec, features)
        _start_init(host, spec, label)
    except BaseException as exc:
        try:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            message = f"{detail} (at {os.path.basename(where.filename)}:{where.lineno})"
            send_message(host, {"op": "failed", "message": message})
        finally:
            os._exit(71)


_NAMESPACES = (
    isolation.CLONE_NEWNS
    | isolation.CLONE_NEWNET
    | isolation.CLONE_NEWIPC
    | isolation.CLONE_NEWUTS
    | isolation.CLONE_NEWPID
)


def _isolate(spec: dict[str, Any], features: list[str]) -> str:
    """Set up the session's mounts (we are PID 1 of its namespaces); describe them."""
    uid = spec.get("uid")
    if uid is not None:
        features.append(f"uid {uid}")
    if spec.get("no_namespaces"):
        os.chdir(spec["workdir"])
        return ", ".join(features)
    features.append("own pid/net/ipc/mount namespaces (no network)")
    isolation.mount("none", "/", None, isolation.MS_REC | isolation.MS_PRIVATE)
    flags = isolation.MS_NOSUID | isolation.MS_NODEV
    for path, options in spec.get("tmpfs", {}).items():  # a private /tmp, for one
        isolation.mount("tmpfs", path, "tmpfs", flags, options)
    target = spec.get("mount_workdir_at")
    if target:  # the working directory: a tmpfs of its own, sized, counted in its memory
        isolation.mount("tmpfs", target, "tmpfs", flags, spec["workdir_tmpfs"])
        features.append(spec.get("workdir_label", "workdir tmpfs"))  # owned via uid=/gid=
    else:
        target = spec["workdir"]
    hidden = spec.get("sessions_root")
    if hidden:  # not covered but gone: nothing under it is in this session's mount tree
        try:
            isolation.umount(hidden)
            features.append("other sessions not mounted")
        except OSError:
            # In a user namespace of our own bubblewrap's mounts are locked together; a
            # cover is the best we can do there, and holders (no capabilities) and any
            # namespace they make (where our mounts are locked in turn) cannot lift it.
            isolation.mount("tmpfs", hidden, "tmpfs", flags | isolation.MS_RDONLY, "size=4k")
            features.append("other sessions hidden (covered)")
    os.chdir(target)
    return ", ".join(features)


def _start_init(host: socket.socket, spec: dict[str, Any], label: str) -> None:
    if spec.get("no_namespaces"):
        label += ", shared /proc"
    else:
        try:
            isolation.mount("proc", "/proc", "proc", isolation.MS_NOSUID | isolation.MS_NODEV)
            label += ", private /proc"
            label += _lock_proc()
        except OSError:
            label += ", shared /proc"
    # The memory limit takes a holder, never init.
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("-1000")
    isolation.prctl(isolation.PR_SET_DUMPABLE, 0)
    try:
        isolation.keep_capabilities(INIT_CAPS)
        label += ", capabilities dropped"
    except OSError:
        pass
    os.environ.clear()
    os.environ.update(spec.get("env", {}))
    init_main(host, spec, label)


def _lock_proc() -> str:
    """/proc/sys read-only; the kernel command line and boot id masked."""
    ro = isolation.MS_BIND | isolation.MS_REMOUNT | isolation.MS_RDONLY
    isolation.mount("/proc/sys", "/proc/sys", None, isolation.MS_BIND | isolation.MS_REC)
    isolation.mount("none", "/proc/sys", None, ro | isolation.MS_NOSUID | isolation.MS_NODEV)
    for path in ("/proc/cmdline", "/proc/sys/kernel/random/boot_id"):
        with contextlib.suppress(OSError):
            isolation.mount("/dev/null", path, None, isolation.MS_BIND)
    return " (/proc/sys read-only)"
