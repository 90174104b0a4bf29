"""Per-session accounting for the local backend: cgroups, unique uids, safe cleanup.

A session's processes join a cgroup of their own before any of them runs code,
so memory (every process, memfd files, the session's tmpfs and page cache), the
number of processes and CPU are counted for the session as a whole, and killing
the session means killing what is in its cgroup. cgroup v1 (a hierarchy per
controller) and v2 (one unified tree, delegated to us) are both understood;
where neither can be written (a non-root host without delegation, a container),
:func:`detect_cgroups` says why and the backend falls back to per-process limits,
loudly (a warning, and every record's isolation line says so).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CgroupTree",
    "Reaper",
    "SessionCgroup",
    "UidPool",
    "detect_cgroups",
    "kill_uid",
    "safe_rmtree",
]

ROOT = Path("/sys/fs/cgroup")
_V1 = ("memory", "pids", "cpu")


@dataclass
class SessionCgroup:
    """One session's cgroup directories (one per v1 controller, or one v2 directory)."""

    dirs: list[Path]
    procs: Path  # the cgroup.procs that lists every process of the session

    def open_join_fds(self) -> list[int]:
        """Write ends of each ``cgroup.procs``: the session writes "0" to join."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in self.procs.read_text().split()]
        except (OSError, ValueError):
            return []

    def memory_bytes(self) -> int:
        """Memory charged to the session now (RSS, memfd, tmpfs, page cache)."""
        for d in self.dirs:
            for name in ("memory.usage_in_bytes", "memory.current"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / name).read_text())
        return 0

    def peak_memory_bytes(self) -> int:
        """The most memory the session ever had charged (v1 max_usage, v2 memory.peak)."""
        for d in self.dirs:
            for name in ("memory.max_usage_in_bytes", "memory.peak"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / name).read_text())
        return 0

    def kill(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_and_remove(self, timeout: float = 2.0) -> bool:
        """SIGKILL every process in the cgroup until none is left; remove it. False: left."""
        deadline = time.monotonic() + timeout
        while True:
            victims = self.pids()
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not victims and self._remove():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def _remove(self) -> bool:
        for d in list(self.dirs):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBUSY:  # exited tasks not yet gone from the css
                    return False
                raise
            self.dirs.remove(d)
        return True


@dataclass
class CgroupTree:
    """Where this backend creates session cgroups, and the limits it writes."""

    version: int
    bases: dict[str, Path]  # controller (v1) or "unified" (v2) -> our parent directory
    made: list[Path] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"cgroup v{self.version} (memory incl. memfd/tmpfs/page cache, pids, cpu)"

    def create(self, name: str, memory_bytes: int, pids: int, cpus: float) -> SessionCgroup:
        if self.version == 1:
            dirs = {c: base / name for c, base in self.bases.items()}
            for d in dirs.values():
                d.mkdir()
            memory = dirs["memory"]
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            with contextlib.suppress(OSError):  # without swap accounting the file is absent
                _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)
            with contextlib.suppress(OSError):
                _write(memory / "memory.swappiness", 0)
            _write(dirs["pids"] / "pids.max", pids)
            if "cpu" in dirs and cpus > 0:
                _write(dirs["cpu"] / "cpu.cfs_period_us", 100_000)
                _write(dirs["cpu"] / "cpu.cfs_quota_us", int(cpus * 100_000))
            return SessionCgroup(list(dirs.values()), memory / "cgroup.procs")
        d = self.bases["unified"] / name
        d.mkdir()
        _write(d / "memory.max", memory_bytes)
        with contextlib.suppress(OSError):
            _write(d / "memory.swap.max", 0)
        _write(d / "pids.max", pids)
        if cpus > 0:
            with contextlib.suppress(OSError):
                (d / "cpu.max").write_text(f"{int(cpus * 100_000)} 100000")
        return SessionCgroup([d], d / "cgroup.procs")

    def close(self) -> None:
        for base in self.bases.values():
            with contextlib.suppress(OSError):
                for child in base.iterdir():
                    if child.is_dir():
                        SessionCgroup([child], child / "cgroup.procs").kill_and_remove(0.5)
            with contextlib.suppress(OSError):
                base.rmdir()


def _write(path: Path, value: int) -> None:
    path.write_text(str(value))


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and "" for the v2 tree."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                found[name] = path
    return found


def detect_cgroups(tag: str) -> tuple[CgroupTree | None, str]:
    """Make this backend's parent cgroup(s); (tree, "") or (None, why not)."""
    own = _own_paths()
    v1 = {c: ROOT / c for c in _V1 if (ROOT / c / "cgroup.procs").exists()}
    problems = []
    if "memory" in v1 and "pids" in v1:
        bases = {c: v1[c] / own.get(c, "/").lstrip("/") / tag for c in v1}
        try:
            for base in bases.values():
                base.mkdir(exist_ok=True)
            return CgroupTree(1, bases), ""
        except OSError as exc:
            problems.append(f"cgroup v1 not writable ({exc.strerror})")
            for base in bases.values():
                with contextlib.suppress(OSError):
                    base.rmdir()
    unified = ROOT / own.get("", "/").lstrip("/")
    if (ROOT / "cgroup.controllers").exists() or (unified / "cgroup.controllers").exists():
        try:
            available = (unified / "cgroup.controllers").read_text().split()
            if not {"memory", "pids"} <= set(available):
                raise OSError(errno.ENOTSUP, f"controllers {available} lack memory/pids")
            base = unified / tag
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            return CgroupTree(2, {"unified": base}), ""
        except OSError as exc:
            problems.append(f"cgroup v2 not delegated ({exc.strerror or exc})")
    return None, "; ".join(problems) or "no cgroup filesystem"


class Reaper:
    """One background thread that finishes cleanups (waits, rmdir, uid release) in order."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.busy = False

    def submit(self, job: Callable[[], None]) -> None:
        with self.cond:
            self.jobs.append(job)
            if self.thread is None:
                self.thread = threading.Thread(target=self._work, name="codedance-reaper")
                self.thread.daemon = True
                self.thread.start()
            self.cond.notify_all()

    def _work(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: bool(self.jobs))
                job = self.jobs.pop(0)
                self.busy = True
            try:
                job()
            except Exception:  # cleanup never raises into anyone; what is left stays
                pass
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every submitted cleanup has finished."""
        with self.cond:
            self.cond.wait_for(lambda: not self.jobs and not self.busy, timeout)


class UidPool:
    """A uid per live session, unique across every codedance process on the machine.

    Each uid is held with an ``flock`` on a file in a root-only folder while its
    session lives, so two backends (or two runs) never share one; released uids
    are reused only after their session's processes are gone.
    """

    def __init__(self, base: int = 200_000, size: int = 100_000) -> None:
        self.base, self.size = base, size
        self.folder = Path(tempfile.gettempdir()) / "codedance-uids"
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.held: dict[int, int] = {}
        self.lock = threading.Lock()

    def acquire(self) -> int:
        start = random.randrange(self.size)
        with self.lock:
            for step in range(self.size):
                uid = self.base + (start + step) % self.size
                if uid in self.held:
                    continue
                fd = os.open(self.folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                self.held[uid] = fd
                return uid
        raise RuntimeError("every session uid is in use")

    def release(self, uid: int) -> None:
        with self.lock:
            fd = self.held.pop(uid, None)
        if fd is not None:
            os.close(fd)


def kill_uid(uid: int, timeout: float = 2.0) -> bool:
    """SIGKILL every process running as ``uid`` (reserved for one session); True if none left."""
    deadline = time.monotonic() + timeout
    while True:
        victims = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        victims.append(int(entry))
        if not victims:
            return True
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def safe_rmtree(path: Path) -> None:
    """Remove ``path`` whatever model code built in it; never raises.

    Iterative and relative (one directory descriptor at a time, names never joined
    into long paths), so a 3,000-level chain neither overflows the recursion nor hits
    the 4,096-byte path limit; makes each directory writable before emptying it;
    takes any bytes in names. What cannot be removed is left, silently: cleanup
    must not turn a finished session into an exception.
    """
    raw = os.fsencode(path).rstrip(b"/")
    try:
        if not stat.S_ISDIR(os.lstat(raw).st_mode):
            os.unlink(raw)
            return
        parent_path, base = os.path.split(raw)
        top = os.open(parent_path or b".", _DIR_FLAGS)
    except OSError:
        return
    try:
        fd = _enter(top, base)
    finally:
        os.close(top)
    if fd is not None:
        _empty_and_remove(fd, base)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _enter(parent: int, name: bytes) -> int | None:
    with contextlib.suppress(OSError):
        os.chmod(name, 0o700, dir_fd=parent, follow_symlinks=False)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        return None


def _empty_and_remove(fd: int, base: bytes) -> None:
    names, stuck = [base], set()
    while True:
        child = None
        with contextlib.suppress(OSError), os.scandir(fd) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.inode() not in stuck:
                            child = os.fsencode(entry.name)
                            break
                    else:
                        os.unlink(entry.name, dir_fd=fd)
                except OSError:
                    continue
        if child is not None:
            deeper = _enter(fd, child)
            if deeper is not None:
                os.close(fd)
                fd, names = deeper, [*names, child]
                continue
            with contextlib.suppress(OSError):
                stuck.add(os.stat(child, dir_fd=fd, follow_symlinks=False).st_ino)
            continue
        inode = os.fstat(fd).st_ino
        try:
            parent = os.open(b"..", _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return
        os.close(fd)
        name = names.pop()
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError:
            stuck.add(inode)
        if not names:
            os.close(parent)
            return
        fd = parent
