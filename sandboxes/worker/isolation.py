"""Linux namespace, mount and privilege calls through libc (Python 3.10 has no os.unshare).

Every function raises ``OSError`` with the errno on failure so callers can fall
back to a weaker isolation level and say so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
#: SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP(_LOCKED) | KEEP_CAPS_LOCKED:
#: uid 0 gains nothing on exec and a later setuid cannot bring capabilities back.
SECURE_NOROOT_ALL = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN, CAP_SYS_RESOURCE = 5, 6, 7, 21, 24
_LAST_CAP = 63  # PR_CAPBSET_DROP answers EINVAL past the kernel's last capability

_libc = ctypes.CDLL(None, use_errno=True)
#: The same libc, called with the GIL held: a child made by clone() must come back
#: holding it, as after os.fork().
_pylibc = ctypes.PyDLL(None, use_errno=True)
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
SIGCHLD = 17


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def clone(flags: int) -> int:
    """fork() into new namespaces in one step: 0 in the child, its pid in the parent.

    With CLONE_NEWPID the child is PID 1 of its namespace at once, which saves the
    second fork that unshare() needs. Only for a single-threaded caller (the zygote):
    the child skips Python's after-fork hooks, which matter only with threads.
    Raises OSError where the architecture or the kernel refuses.
    """
    number = _SYS_CLONE.get(os.uname().machine)
    if number is None:
        raise OSError(38, "clone: unsupported architecture")
    syscall = _pylibc.syscall
    syscall.restype = ctypes.c_long
    pid = syscall(ctypes.c_long(number), ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"clone: {os.strerror(errno)}")
    return int(pid)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(
    source: str, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    args = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(
        _libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]), f"mount {target}"
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def prctl(option: int, value: int, arg3: int = 0) -> None:
    _check(
        _libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(arg3), 0, 0), f"prctl {option}"
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def keep_capabilities(keep: tuple[int, ...] = ()) -> None:
    """Drop every capability but ``keep``: bounding set, ambient, and the current sets.

    Without ``keep`` the process also gets the lock-in securebits, so it cannot
    regain capabilities as uid 0 through exec (the non-root-host case, where the
    session's code runs as root of its own user namespace).
    """
    permitted = capabilities("CapPrm")
    keep = tuple(cap for cap in keep if permitted >> cap & 1)  # the host may lack some
    if not keep:
        with contextlib.suppress(OSError):  # needs CAP_SETPCAP: fails only if already without
            prctl(PR_SET_SECUREBITS, SECURE_NOROOT_ALL)
    for cap in range(_LAST_CAP + 1):
        if cap in keep:
            continue
        dropped = _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) == 0
        if not dropped and ctypes.get_errno() == 22:  # EINVAL: past the last capability
            break
    with contextlib.suppress(OSError):  # ambient capabilities arrived in Linux 4.3
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    mask = [0, 0]
    for cap in keep:
        mask[cap // 32] |= 1 << (cap % 32)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)(*(_CapData(m, m, 0) for m in mask))
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def capabilities(which: str = "CapEff") -> int:
    """A capability mask of this process (``CapEff``, ``CapPrm``, ``CapBnd``: /proc/self/status)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(which + ":"):
                return int(line.split()[1], 16)
    return 0


def close_fds_except(keep: tuple[int, ...]) -> None:
    """Close every descriptor above 2 except ``keep``: nothing inherited reaches model code."""
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _max_fd())


def _max_fd() -> int:
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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
    """Let this process use at most ``seconds`` more CPU time; hard = soft, so it stays.

    The hard limit can only go down from here: a process that already used its
    budget gets none back (a fresh fork starts counting from zero).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit = used + seconds
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))


def limit_cpu_soft(seconds: int) -> None:
    """The fallback when nobody can raise our hard limit later: a soft limit only.

    Used where the session's init lacks CAP_SYS_RESOURCE (a container's unprivileged
    init): code could raise it again, which the record's isolation line admits.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its reaped children, in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def limit_cpu_of(pid: int, seconds: int) -> None:
    """Give process ``pid`` ``seconds`` more CPU time, hard = soft (needs CAP_SYS_RESOURCE).

    Run by the session's init before each run, so the holder that runs model code
    can never raise its own limit but still gets a fresh budget per run.
    """
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    used = (int(fields[11]) + int(fields[12])) // ticks + 1
    limit = used + seconds
    resource.prlimit(pid, resource.RLIMIT_CPU, (limit, limit))
