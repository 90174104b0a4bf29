"""Linux namespace, mount and privilege calls through libc (Python 3.10 has no os.unshare).

Every function raises ``OSError`` with the errno on failure so callers can fall
back to a weaker isolation level and say so.
"""

from __future__ import annotations

import ctypes
import os
import resource

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(
    source: str, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    args = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(
        _libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]), f"mount {target}"
    )


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def map_ids(
    pid: int | str, uid_inside: int, uid_outside: int, gid_inside: int, gid_outside: int
) -> None:
    """Write a one-line uid/gid map for ``pid``'s user namespace."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/setgroups", "w") as handle:
            handle.write("deny")
    except OSError:
        pass  # absent on old kernels; not needed when the writer has CAP_SETGID
    with open(f"{base}/uid_map", "w") as handle:
        handle.write(f"{uid_inside} {uid_outside} 1")
    with open(f"{base}/gid_map", "w") as handle:
        handle.write(f"{gid_inside} {gid_outside} 1")


def enter_user_namespace(extra_flags: int) -> None:
    """unshare a new user namespace (plus ``extra_flags``) mapping ourselves to root."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER | extra_flags)
    map_ids("self", 0, uid, 0, gid)


def set_limits(limits: dict[str, int]) -> None:
    """Apply rlimits by name (``as``, ``cpu``, ``fsize``, ``nproc``, ``nofile``)."""
    names = {
        "as": resource.RLIMIT_AS,
        "cpu": resource.RLIMIT_CPU,
        "fsize": resource.RLIMIT_FSIZE,
        "nproc": resource.RLIMIT_NPROC,
        "nofile": resource.RLIMIT_NOFILE,
        "core": resource.RLIMIT_CORE,
    }
    for name, value in limits.items():
        resource.setrlimit(names[name], (value, value))


def limit_cpu_from_now(seconds: int) -> None:
    """Let this process use ``seconds`` more CPU time (soft limit: SIGXCPU, then kill)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
