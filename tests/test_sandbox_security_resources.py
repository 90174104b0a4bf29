"""Security suite, per-session resources and separation (issue classes 2, 3, 4).

A session's processes share one cgroup (memory incl. memfd, tmpfs and page cache;
pids; CPU), its working directory is a tmpfs with a size and an inode quota, it
runs as a uid no other live session has, and no other session's folder is in its
mount tree. Memory is measured on the host from the session's cgroup peak.
"""

from __future__ import annotations

import threading
import time

from codedance.sandboxes.base import InputFile, SessionSpec
from codedance.sandboxes.local import LocalSandbox
from tests.sandbox_attacks import (
    MEMORY_MB,
    alarm_guard,
    attack_config,
    backend,
    host,
    needs_bwrap,
    needs_root,
    peak_memory_mb,
    run_exec,
    session_uid,
)

pytestmark = needs_bwrap
__all__ = ["alarm_guard", "backend", "host"]  # fixtures, re-exported for pytest

SLACK_MB = 8  # page-granular accounting

MEMFD = """
import os
fd = os.memfd_create("hoard")
held = 0
try:
    for _ in range(128):
        os.write(fd, b"m" * (16 << 20))
        held += 16
except OSError as exc:
    print("refused", type(exc).__name__)
print("held", held)
"""

OWN_TMPFS = """
import ctypes, os
pid = os.fork()
if pid == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(0x10000000 | 0x00020000)  # a user and mount namespace of its own
    os.makedirs("mnt", exist_ok=True)
    mounted = libc.mount(b"none", b"mnt", b"tmpfs", 0, b"size=200g")
    os.write(1, f"mounted {mounted}\\n".encode())
    written = 0
    try:
        for n in range(128):
            with open(f"mnt/f{n}", "wb") as handle:
                handle.write(b"t" * (8 << 20))
            written += 8
    except OSError as exc:
        os.write(1, f"refused {type(exc).__name__}\\n".encode())
    os.write(1, f"written {written}\\n".encode())
    os._exit(0)
_ = os.waitpid(pid, 0)
"""

MANY_PROCESSES = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(200 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(2)
        finally:
            os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print("done")
"""


# -- class 2: memory per session -------------------------------------------------------


def test_memfd_files_count_toward_the_session_memory(backend, host):
    with backend.open_session() as session:
        record = session.run(MEMFD)
        peak = peak_memory_mb(session)
        assert session.run("print('alive')").stdout.endswith("alive\n")
    assert peak <= MEMORY_MB + SLACK_MB, f"the session held {peak} MB"
    assert "held 2048" not in record.stdout
    host.check(record)


def test_a_tmpfs_mounted_in_a_namespace_of_its_own_counts_too(backend, host):
    with backend.open_session() as session:
        record = session.run(OWN_TMPFS, timeout=20)
        peak = peak_memory_mb(session)
    assert peak <= MEMORY_MB + SLACK_MB, f"the session held {peak} MB"
    assert "written 1024" not in record.stdout
    host.check(record)


def test_several_processes_share_one_memory_limit(backend, host):
    with backend.open_session() as session:
        record = session.run(MANY_PROCESSES, timeout=20)
        peak = peak_memory_mb(session)
        assert session.run("print('alive')").stdout.endswith("alive\n")
    assert peak <= MEMORY_MB + SLACK_MB, f"4 x 200 MB held {peak} MB at once"
    host.check(record)


def test_tmp_and_dev_shm_are_bounded_and_private(backend, host):
    fill = """
import os
written = 0
for folder in ("/tmp", "/dev/shm"):
    try:
        for n in range(64):
            with open(f"{folder}/fill{n}", "wb") as handle:
                handle.write(b"f" * (16 << 20))
            written += 16
    except OSError as exc:
        print(folder, type(exc).__name__)
print("written", written)
"""
    with backend.open_session() as session:
        record = session.run(fill, timeout=20)
        peak = peak_memory_mb(session)
        with backend.open_session() as other:
            seen = other.run("import os\nprint(sorted(os.listdir('/tmp')))")
    assert peak <= MEMORY_MB + SLACK_MB
    assert "fill0" not in seen.stdout
    host.check(record, seen)


def test_exec_memfd_hoard_is_capped(tmp_path):
    record, _ = run_exec(tmp_path, MEMFD, "--no-tools")
    assert "held 2048" not in str(record["stdout"])


# -- class 3: disk and inodes ----------------------------------------------------------


def test_filling_the_workdir_stops_at_its_quota_and_never_touches_the_host_disk(backend, host):
    code = """
written = 0
try:
    for n in range(256):
        with open(f"blob{n}", "wb") as handle:
            handle.write(b"d" * (16 << 20))
        written += 16
except OSError as exc:
    print("stopped", type(exc).__name__)
print("written", written)
"""
    with backend.open_session() as session:
        record = session.run(code, timeout=20)
        assert session.run("print('alive')").stdout.endswith("alive\n")
    assert "stopped OSError" in record.stdout, record.stdout
    assert int(record.stdout.split("written ")[1]) <= 64
    host.check(record)


def test_an_inode_flood_stops_at_the_file_quota_and_the_record_stays_fast(backend, host):
    code = """
made = 0
try:
    for n in range(200_000):
        open(f"e{n}", "w").close()
        made += 1
except OSError as exc:
    print("stopped", type(exc).__name__)
print("made", made)
"""
    with backend.open_session() as session:
        record = session.run(code, timeout=20)
        start = time.monotonic()
        after = session.run("print('next')")
        assert time.monotonic() - start < 3, "the workdir scan slowed the next run"
    assert not record.timed_out
    assert int(record.stdout.split("made ")[1]) <= 2000
    assert len(record.files) <= 2000
    host.check(record, after)


def test_exec_disk_fill_leaves_the_host_disk_alone(tmp_path, host):
    code = (
        "n = 0\ntry:\n    while True:\n        open(f'x{n}', 'wb').write(b'z' * (32 << 20))\n"
        "        n += 1\nexcept OSError as exc:\n    print('stopped', n)\n"
    )
    record, _ = run_exec(tmp_path, code, "--no-tools", "--timeout", "20")
    assert "stopped" in str(record["stdout"])
    host.check()


# -- class 4: sessions apart -----------------------------------------------------------


FIND = """
import os
hits = []
for top in ("/", ):
    for root, dirs, files in os.walk(top):
        if root.startswith(("/proc", "/sys", "/dev", "/usr", "/work", "/root")):
            dirs[:] = []
            continue
        for name in files:
            path = os.path.join(root, name)
            try:
                if MARK in name or MARK.encode() in open(path, "rb").read(4096):
                    hits.append(path)
            except OSError:
                pass
print("hits", hits)
"""


def test_another_sessions_folder_is_not_in_the_mount_tree(backend, host):
    mark = "other-session-" + str(time.monotonic_ns())
    owner = backend.open_session(SessionSpec(files=[InputFile("secret.txt", mark.encode())]))
    try:
        owner.run(f"open('{mark}.txt', 'w').write({mark!r})")
        with backend.open_session() as snoop:
            record = snoop.run(f"MARK = {mark!r}\n" + FIND, timeout=20)
            mounts = snoop.run(
                "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                "print(libc.umount2(b'/workspace', 2), libc.umount2(b'/tmp', 2))\n"
                "import os\nprint(os.listdir('/sessions') if os.path.isdir('/sessions') else [])"
            )
    finally:
        owner.close()
    assert record.stdout == "hits []\n", record.stdout
    assert mounts.stdout == "-1 -1\n[]\n", mounts.stdout
    host.check(record, mounts)


def test_unmounting_inside_a_namespace_of_its_own_reveals_nothing(backend, host):
    mark = "hidden-" + str(time.monotonic_ns())
    owner = backend.open_session(SessionSpec(files=[InputFile(f"{mark}.txt", mark.encode())]))
    code = f"""
import ctypes, os
MARK = {mark!r}
pid = os.fork()
if pid == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(0x10000000 | 0x00020000)
    for target in (b"/workspace", b"/tmp", b"/sessions", b"/"):
        libc.umount2(target, 2)
    hits = []
    for root, dirs, files in os.walk("/"):
        if root.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        hits += [name for name in files if MARK in name]
    os.write(1, f"hits {{hits}}\\n".encode())
    os._exit(0)
_ = os.waitpid(pid, 0)
"""
    try:
        with backend.open_session() as snoop:
            record = snoop.run(code, timeout=20)
    finally:
        owner.close()
    assert record.stdout == "hits []\n", record.stdout
    host.check(record)


@needs_root
def test_live_sessions_never_share_a_uid(backend):
    seen: dict[int, tuple[int, str]] = {}
    lock = threading.Lock()

    def open_one(index: int) -> None:
        with backend.open_session() as session:
            inside = session.run("import os\nprint(os.getuid())").stdout.strip()
            with lock:
                seen[index] = (session_uid(session), inside)
            time.sleep(0.5)  # overlap with the others

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids = [uid for uid, _ in seen.values()]
    assert len(set(uids)) == 12, uids
    assert all(str(uid) == inside for uid, inside in seen.values())


@needs_root
def test_two_backends_never_hand_out_the_same_uid():
    config = attack_config(local={"pool_size": 0})
    with LocalSandbox(config) as first, LocalSandbox(config) as second:
        sessions = [first.open_session() for _ in range(4)]
        sessions += [second.open_session() for _ in range(4)]
        try:
            uids = [session_uid(session) for session in sessions]
        finally:
            for session in sessions:
                session.close()
    assert len(set(uids)) == 8, uids
