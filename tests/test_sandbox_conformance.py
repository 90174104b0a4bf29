"""The conformance suite itself: documented guarantees, time limits, crash-proof runs.

The backend under test here is the in-process example docs/plugins.md used to
show (it runs model code with ``exec`` in the test process). Against it the
suite used to fail 21 tests and never finish: a loop ignoring SIGALRM hung it
and ``os._exit(3)`` would have ended pytest. It now has to finish, survive, and
say for each failure which guarantee broke and where it is documented.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from codedance.sandboxes import conformance
from codedance.sandboxes.conformance_guard import GUARANTEES
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
