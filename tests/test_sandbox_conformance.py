"""The conformance suite itself: documented guarantees, time limits, crash-proof runs.

The backend under test here is the in-process example docs/plugins.md used to
show (it runs model code with ``exec`` in the test process). Against it the
suite used to fail 21 tests and never finish: a loop ignoring SIGALRM hung it
and ``os._exit(3)`` would have ended pytest. It now has to finish, survive, and
say for each failure which guarantee broke and where it is documented.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from codedance.sandboxes import conformance
from codedance.sandboxes.conformance_guard import (
    GUARANTEES,
    ConformanceError,
    TimeLimitExceeded,
    run_in_child,
    time_limit,
)
from codedance.testing import SandboxConformance

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "sandboxes.md"

IN_PROCESS_BACKEND = """
import contextlib, io, time, traceback

import pytest

from codedance.sandboxes.base import (
    ErrorInfo, ExecutionRecord, SandboxBackend, SandboxSession, SessionSpec,
)
from codedance.testing import SandboxConformance


class InProcessSession(SandboxSession):
    isolation = "none (in-process example)"

    def __init__(self):
        self.namespace = {}

    def run(self, code, timeout=None):
        out, start, error = io.StringIO(), time.perf_counter(), None
        try:
            with contextlib.redirect_stdout(out):
                exec(code, self.namespace)
        except Exception as exc:
            error = ErrorInfo(type(exc).__name__, str(exc), traceback.format_exc())
        return ExecutionRecord(stdout=out.getvalue(), error=error,
                               duration_s=time.perf_counter() - start, isolation=self.isolation)

    def restart(self):
        self.namespace.clear()

    def close(self):
        self.namespace.clear()


class InProcessSandbox(SandboxBackend):
    name = "in-process"

    def open_session(self, spec=None):
        return InProcessSession()


class TestInProcess(SandboxConformance):
    time_limit_s = 4

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls):
        with InProcessSandbox() as backend:
            yield backend
"""


def _guarantee_tests() -> dict[str, str]:
    return {
        name: getattr(getattr(SandboxConformance, name), "guarantee", "")
        for name in dir(SandboxConformance)
        if name.startswith("test_")
    }


def test_every_test_checks_a_documented_guarantee():
    doc = DOC.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', doc))
    tests = _guarantee_tests()
    assert all(tests.values()), [name for name, gid in tests.items() if not gid]
    assert set(GUARANTEES) <= anchors, f"undocumented: {sorted(set(GUARANTEES) - anchors)}"
    assert set(GUARANTEES) == set(tests.values()), "a guarantee without a test, or vice versa"
    assert "unsupported" in anchors  # named by the TypeError for an unknown item
    assert "\n## Writing a backend\n" in doc  # named when a backend kills the test process


def test_unsupported_items_are_checked_when_the_class_is_made():
    with pytest.raises(TypeError, match=r"unsupported names \['rollbak'\].*'rollback'"):
        type("TestTypo", (SandboxConformance,), {"unsupported": {"rollbak": "no snapshots"}})
    assert set(conformance.UNSUPPORTABLE.values()) <= set(GUARANTEES)


def test_an_in_process_backend_fails_loudly_but_the_suite_finishes(pytester):
    """os._exit, a segfault and a SIGALRM-ignoring loop run in children; hangs hit the limit."""
    pytester.makepyfile(test_in_process=IN_PROCESS_BACKEND)
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    elapsed = time.monotonic() - started
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 15, result.stdout.str()[-3000:]
    assert outcomes.get("passed", 0) >= 5  # the run survived to its summary
    assert elapsed < 200
    text = result.stdout.str()
    for gid in ("crash", "hard-timeout", "capture", "truncation", "exit"):
        assert f"[{gid}] {GUARANTEES[gid]} (see docs/sandboxes.md#{gid})" in text, gid
    assert "the process running the test ended (exit status 3)" in text
    assert "killed by SIGSEGV" in text
    assert "did not finish within its 4 s limit" in text


def test_a_backend_that_hangs_fails_one_test_with_the_limit(pytester):
    pytester.makepyfile(
        test_hang=IN_PROCESS_BACKEND.replace(
            "    def restart(self):\n        self.namespace.clear()",
            "    def restart(self):\n        time.sleep(3600)",
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-k", "restart_clears", timeout=120
    )
    result.assert_outcomes(failed=1)
    assert "[restart]" in result.stdout.str()
    assert "did not finish within its 4 s limit" in result.stdout.str()


def test_time_limit_interrupts_a_hang_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match=r"within its 0\.5 s limit"), time_limit(0.5):
        time.sleep(30)
    assert time.monotonic() - started < 5
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _exit_three() -> None:
    os._exit(3)


def _skip() -> None:
    pytest.skip("not here")


def _fail() -> None:
    raise AssertionError("the record was wrong")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (_exit_three, "the process running the test ended (exit status 3)"),
        (lambda: time.sleep(30), "did not finish within its 1 s limit and was killed"),
        (_fail, "AssertionError: the record was wrong"),
    ],
)
def test_a_child_run_reports_what_happened_to_the_child(call, expected):
    with pytest.raises(ConformanceError, match=re.escape(expected)):
        run_in_child(call, 1, None)


def test_a_child_run_replays_passes_and_skips():
    run_in_child(lambda: None, 5, None)
    with pytest.raises(pytest.skip.Exception, match="not here"):
        run_in_child(_skip, 5, None)
