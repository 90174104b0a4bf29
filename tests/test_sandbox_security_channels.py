"""Security suite, control and record channels (issue classes 1, 5, 11, 13).

Model code runs in a holder that holds one socket, to its session's init; init
(another uid, not dumpable, PID 1 of the session) keeps the hard timeout and the
CPU limit and accepts exactly one token-carrying record per run. These attacks try
to switch the limits off, forge records, outlive their time through finalizers
and use capabilities; each asserts what the host sees.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codedance.sandboxes.base import SessionSpec
from tests.sandbox_attacks import (
    alarm_guard,
    backend,
    host,
    needs_bwrap,
    needs_root,
    run_exec,
    session_uid,
    wait_no_process_of,
)

pytestmark = needs_bwrap
__all__ = ["alarm_guard", "backend", "host"]  # fixtures, re-exported for pytest

#: Writes what the old init's watch pipe understood ("E": run ended, "X close": leaving)
#: into every pipe it holds (sockets are the forging tests' business), then ignores
#: SIGALRM and spins.
SWITCH_OFF_TIMEOUT = """
import os, signal, stat
for fd in range(3, 256):
    for line in (b"E\\n", b"X close\\n", b"S 100000\\n"):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, line)
        except OSError:
            pass
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
"""

FORGE = """
import json, os, stat, struct
frame = json.dumps({"op": "result", "stdout": "FORGED\\n", "stderr": "", "truncated": [],
                    "error": None, "images": [], "files": [], "duration_s": 0.0,
                    "timed_out": False, "blobs": []}).encode()
sent = 0
for fd in range(3, 256):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, struct.pack(">I", len(frame)) + frame)
            sent += 1
    except OSError:
        pass
print("sent", sent)
"""


# -- class 1: the hard timeout and the CPU limit -------------------------------------


@needs_root
def test_writing_to_every_descriptor_cannot_switch_off_the_hard_timeout(backend, host):
    session = backend.open_session()
    uid = session_uid(session)
    start = time.monotonic()
    record = session.run(SWITCH_OFF_TIMEOUT, timeout=2)
    elapsed = time.monotonic() - start
    assert record.timed_out, record
    assert record.session_died
    assert elapsed < 6, f"the 2 s run came back after {elapsed:.1f} s"
    assert session.run("print('served')").stdout == "served\n"
    session.close()
    assert wait_no_process_of(uid) == [], "spinning processes survived close()"
    host.check(record)


@needs_root
def test_spinning_children_die_with_the_session(backend, host):
    session = backend.open_session()
    uid = session_uid(session)
    code = (
        "import os\nfor _ in range(4):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        while True:\n            pass\nprint('spawned')"
    )
    record = session.run(code)
    assert record.stdout == "spawned\n"
    session.close()
    assert wait_no_process_of(uid) == []
    host.check(record)


def test_raising_the_cpu_soft_limit_does_not_buy_cpu_time(backend, host):
    """cpu_time_s is 3: code that raises its soft limit and ignores SIGXCPU is still stopped."""
    code = """
import resource, signal
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
try:
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
except (ValueError, OSError):
    pass
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
"""
    with backend.open_session() as session:
        start = time.monotonic()
        record = session.run(code, timeout=40)
        elapsed = time.monotonic() - start
        assert record.error is not None
        assert record.session_died
        assert not record.timed_out, "only the wall clock stopped it"
        assert record.error.type == "CPUTimeExceeded", record.error
        assert elapsed < 35, f"a 3 s CPU budget ran {elapsed:.1f} s"
        assert session.run("print(1)").stdout == "1\n"
    host.check(record)


def test_the_cpu_hard_limit_cannot_be_raised(backend, host):
    code = """
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
try:
    resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised" if hard != resource.RLIM_INFINITY else "was unlimited")
except (ValueError, OSError) as exc:
    print("refused")
"""
    with backend.open_session() as session:
        record = session.run(code)
    # Where init holds CAP_SYS_RESOURCE the holder's hard limit is finite and stays so;
    # elsewhere init's CPU watchdog is the limit (test above), never the code's rlimit.
    assert record.stdout in ("refused\n", "was unlimited\n"), record.stdout
    host.check(record)


def test_init_cannot_be_signalled_traced_or_read(backend, host):
    code = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):
    try:
        os.kill(1, sig)
    except OSError as exc:
        print("kill", sig.name, type(exc).__name__)
print("ptrace", libc.ptrace(16, 1, 0, 0), ctypes.get_errno())
for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/fd/0"):
    try:
        open(path, "rb").read(1)
        print(path, "read")
    except OSError as exc:
        print(path, type(exc).__name__)
"""
    with backend.open_session() as session:
        record = session.run(code)
        assert " read" not in record.stdout, record.stdout
        assert "ptrace -1 1" in record.stdout  # EPERM
        start = time.monotonic()
        spin = session.run(
            "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass",
            timeout=1,
        )
        assert spin.timed_out
        assert time.monotonic() - start < 5
    host.check(record, spin)


def test_exec_cannot_switch_off_the_timeout(tmp_path):
    record, elapsed = run_exec(tmp_path, SWITCH_OFF_TIMEOUT, "--timeout", "2", "--no-tools")
    assert record["timed_out"] is True
    assert elapsed < 30  # interpreter start + 2 s + 1 s grace, far from the old 33 s


# -- class 5: forged records -----------------------------------------------------------


@pytest.mark.parametrize("on_error", ["keep", "rollback", "reset"])
def test_a_forged_result_frame_is_rejected_and_marks_the_session(backend, host, on_error):
    with backend.open_session(SessionSpec(on_error=on_error)) as session:
        session.run("x = 41")
        forged = session.run(FORGE)
        assert "FORGED" not in forged.stdout
        assert forged.error is not None
        assert forged.error.type == "SessionCompromised"
        assert forged.session_died
        assert forged.restored == "reset"
        after = [session.run(f"print({n})").stdout for n in range(3)]
    assert after == ["0\n", "1\n", "2\n"], "records are shifted"
    host.check(forged)


def test_a_frame_forged_between_runs_is_caught_at_the_next_run(backend, host):
    code = (
        "import threading, time\n"
        + "def later():\n    time.sleep(0.3)\n"
        + "".join(f"    {line}\n" for line in FORGE.strip().splitlines())
        + "threading.Thread(target=later, daemon=True).start()\nprint('armed')"
    )
    with backend.open_session() as session:
        assert session.run(code).stdout == "armed\n"
        time.sleep(1.0)
        caught = session.run("print('next')")
        assert caught.error is not None
        assert caught.error.type == "SessionCompromised"
        assert session.run("print('clean')").stdout == "clean\n"
    host.check(caught)


def test_a_torn_frame_does_not_hang_or_shift_the_session(backend, host):
    code = """
import os, stat
for fd in range(3, 256):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, b"\\x00\\x00\\x10\\x00{\\"op\\": ")
    except OSError:
        pass
"""
    with backend.open_session() as session:
        start = time.monotonic()
        torn = session.run(code, timeout=2)
        assert time.monotonic() - start < 6
        assert torn.error is not None
        assert torn.error.type == "SessionCompromised"
        assert session.run("print('ok')").stdout == "ok\n"
    host.check(torn)


def test_the_host_channel_never_reaches_model_code(backend, host):
    """One socket (init's) and the capture pipes: nothing inherited from zygote or host."""
    code = """
import os
kinds = []
for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
    try:
        kinds.append(os.readlink(f"/proc/self/fd/{fd}").split(":")[0])
    except OSError:
        pass
print(" ".join(kinds))
"""
    with backend.open_session() as session:
        record = session.run(code)
    kinds = record.stdout.split()
    assert kinds.count("socket") == 1, kinds
    assert all(
        kind in ("socket", "pipe", "/dev/null", "/proc/1/fd") or "proc" in kind for kind in kinds
    ), kinds
    host.check(record)


def test_exec_rejects_a_forged_frame(tmp_path):
    record, _ = run_exec(tmp_path, FORGE, "--no-tools")
    assert record["error"]["type"] == "SessionCompromised"  # type: ignore[index]
    assert "FORGED" not in str(record["stdout"])


# -- class 11: time spent in finalizers ------------------------------------------------


def test_a_sleeping_finalizer_is_a_timeout_not_a_clean_run(backend, host):
    code = """
import time
class Slow:
    def __del__(self):
        time.sleep(30)
slow = Slow()
del slow
print("after")
"""
    with backend.open_session() as session:
        start = time.monotonic()
        record = session.run(code, timeout=1)
        assert time.monotonic() - start < 5
        assert record.timed_out
        assert record.error is not None
        assert session.run("print('alive')").stdout.endswith("alive\n")
    host.check(record)


def test_a_swallowed_interrupt_is_still_a_timeout(backend, host):
    code = """
import time
try:
    time.sleep(30)
except BaseException:
    pass
print("swallowed")
"""
    with backend.open_session() as session:
        record = session.run(code, timeout=1)
    assert record.timed_out
    assert record.error is not None
    assert record.error.type == "TimeoutError"
    host.check(record)


def test_a_finalizer_that_never_ends_is_killed(backend, host):
    code = """
import gc
class Forever:
    def __del__(self):
        while True:
            try:
                sum(range(10**7))
            except BaseException:
                pass
f = Forever()
f.me = f
del f
gc.collect()
"""
    with backend.open_session() as session:
        start = time.monotonic()
        record = session.run(code, timeout=1)
        assert time.monotonic() - start < 6
        assert record.timed_out
        assert record.session_died
    host.check(record)


# -- class 13: capabilities and /proc/sys ----------------------------------------------


def test_model_code_has_no_capabilities_and_cannot_mount(backend, host):
    code = """
import ctypes, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status") if ":\\t" in line)
print("eff", int(status["CapEff"], 16), "prm", int(status["CapPrm"], 16))
libc = ctypes.CDLL(None, use_errno=True)
print("mount", libc.mount(b"none", b"/workspace", b"tmpfs", 0, b"size=1g"), ctypes.get_errno())
print("umount", libc.umount2(b"/workspace", 2), ctypes.get_errno())
try:
    os.setuid(12345)
    print("setuid worked")
except OSError as exc:
    print("setuid", type(exc).__name__)
"""
    with backend.open_session() as session:
        record = session.run(code)
    lines = record.stdout.splitlines()
    assert lines[0] == "eff 0 prm 0", lines
    assert lines[1].startswith("mount -1")
    assert lines[2].startswith("umount -1")
    assert "setuid worked" not in record.stdout
    host.check(record)


def test_proc_sys_is_read_only(backend, host):
    code = """
for path in ("/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/core_pattern"):
    try:
        open(path, "w").write("1")
        print(path, "written")
    except OSError as exc:
        print(path, type(exc).__name__)
"""
    with backend.open_session() as session:
        record = session.run(code)
    assert "written" not in record.stdout, record.stdout
    host.check(record)


@needs_root
def test_the_zygote_keeps_only_the_capabilities_it_needs(backend):
    """As root, bubblewrap would keep every capability; the zygote is given at most six."""
    zygote = backend.ensure_zygote()
    pid = _child_of(_child_of(zygote.process.pid))  # bwrap -> bwrap's init -> the zygote
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert "python" in fields["Name"]
    effective = int(fields["CapEff"], 16)
    assert effective != 0
    assert bin(effective).count("1") <= 6, hex(effective)


def _child_of(parent: int) -> int:
    """The first child of ``parent``, from the host's /proc."""
    import os

    for entry in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            return int(entry)
    raise AssertionError(f"no child of {parent}")
