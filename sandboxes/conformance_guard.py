"""How the conformance suite runs its tests: guarantees, time limits, child processes.

Every test of :class:`~codedance.sandboxes.conformance.SandboxConformance` checks
one documented guarantee (:data:`GUARANTEES`, each with an anchor in
docs/sandboxes.md). :func:`guarantee` wraps the test so that

- it runs under a wall-clock limit (``time_limit_s`` on the test class), so a
  backend that hangs fails one test instead of stalling the run;
- a test whose model code could end the process running it (``os._exit``, a
  segfault, a loop that ignores signals) runs in a forked child when the backend
  executes code inside the test process itself, so the suite survives it;
- a failure names the guarantee and where it is documented.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
import types
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from codedance.sandboxes.base import SandboxBackend

__all__ = ["DOCS", "GUARANTEES", "ConformanceError", "GuaranteeBroken", "guarantee"]

DOCS = "docs/sandboxes.md"

#: Guarantee id (the anchor in docs/sandboxes.md) -> what it says, in one line.
GUARANTEES: dict[str, str] = {
    "record-fields": "every record's fields have the documented types and values",
    "isolation-label": "record.isolation is a non-empty text equal to session.isolation",
    "state": "variables, imports and files persist from one run to the next",
    "last-expression": "a trailing expression's value is printed as repr(value) and a newline",
    "capture": "stdout and stderr are captured apart, the code's child processes included",
    "traceback": "an exception is record.error: its type name, str(exc), a trimmed traceback",
    "syntax-error": "code that does not parse is an error of type 'SyntaxError'",
    "exit": "exit() and sys.exit() are errors of type 'SystemExit'; the state stays",
    "truncation": "output past the limit is cut, named in truncated, and ends with the note",
    "tools": "SessionSpec.tools are bound by name, shipped with their helper modules",
    "tool-traceback": "an error inside a tool shows the tool's own source lines",
    "tool-missing": "a tool whose module cannot be imported is unbound and explained once",
    "builtin-tools": "codedance's built-in tool modules ship into the sandbox and run there",
    "preload": "input images are files in the workdir and preloaded as images/image/<stem>",
    "files": "record.files lists the workdir-relative paths the run created or changed",
    "image-last-expression": "a trailing PIL image comes back with source 'last_expression'",
    "image-sources": "display, plt.show, Image.show and open figures come back in order",
    "image-arrays": "three-channel arrays are read in OpenCV's BGR order",
    "image-modes": "a CapturedImage is RGB, RGBA or L with width*height*channels bytes",
    "timeout": "a soft timeout interrupts the code: TimeoutError, timed_out, state kept",
    "hard-timeout": "code that ignores the interrupt is killed; the session goes on",
    "default-timeout": "run(code) without a timeout uses sandbox.timeout_s",
    "crash": "a crash of the process running the code is a record; the session goes on",
    "rollback": "on_error 'rollback' restores the last good state, or open_session refuses",
    "keep": "on_error 'keep' keeps the partial state of a failed run",
    "reset": "on_error 'reset' starts over from the inputs after a failed run",
    "restart": "restart() clears the variables and reloads the inputs",
    "independence": "sessions share no variables and no files",
    "close": "close() is idempotent; run() and restart() afterwards raise SessionClosedError",
    "async": "aopen_session, arun and 'async with' work like their sync twins",
    "config": "the backend's settings are the SandboxConfig it was given, as self.config",
    "doctor": "classmethod doctor() returns None or what is missing; describe() a non-empty line",
}

Test = TypeVar("Test", bound=Callable[..., None])


def where(gid: str) -> str:
    """``[id] statement (see docs/sandboxes.md#id)``: the head of every failure message."""
    return f"[{gid}] {GUARANTEES[gid]} (see {DOCS}#{gid})"


class ConformanceError(AssertionError):
    """The backend broke a documented guarantee; the message says which and where."""


class GuaranteeBroken(ConformanceError):
    """A failure found inside a test that belongs to another guarantee (a record check)."""

    def __init__(self, gid: str, detail: str) -> None:
        super().__init__(f"{where(gid)}\n{detail}")
        self.guarantee = gid


class TimeLimitExceeded(BaseException):
    """The test ran past its wall-clock limit (a BaseException: backends catch Exception)."""


_PASS_THROUGH = (pytest.skip.Exception, pytest.xfail.Exception)


def guarantee(gid: str, *, may_kill_runner: bool = False) -> Callable[[Test], Test]:
    """Mark a test as checking ``gid``; run it under the class's time limit.

    ``may_kill_runner``: the model code of this test ends or wedges the process
    that runs it when the backend executes code in-process; such a test runs in a
    forked child for those backends.
    """
    if gid not in GUARANTEES:
        raise KeyError(f"unknown guarantee {gid!r}")

    def decorate(test: Test) -> Test:
        @functools.wraps(test)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                _run(self, test, may_kill_runner, args, kwargs)
            except (GuaranteeBroken, *_PASS_THROUGH, KeyboardInterrupt):
                raise
            except pytest.fail.Exception as exc:  # pytest.raises' "DID NOT RAISE", say
                raise ConformanceError(f"{where(gid)}\n{exc.msg}") from None
            except AssertionError as exc:
                raise ConformanceError(f"{where(gid)}\n{exc}").with_traceback(
                    exc.__traceback__
                ) from None
            except BaseException as exc:
                detail = f"{type(exc).__name__}: {exc}"
                raise ConformanceError(f"{where(gid)}\n{detail}") from exc

        guarded.guarantee = gid  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def _run(owner: Any, test: Callable[..., None], risky: bool, args: Any, kwargs: Any) -> None:
    limit = float(owner.time_limit_s)
    backend = kwargs.get("sandbox_backend") or getattr(kwargs.get("open_session"), "backend", None)
    if risky and backend is not None and runs_in_process(backend, limit):
        run_in_child(lambda: test(owner, *args, **kwargs), limit, kwargs.get("open_session"))
        return
    with time_limit(limit):
        test(owner, *args, **kwargs)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in this (main) thread after ``seconds``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded(
            f"the test did not finish within its {seconds:g} s limit (time_limit_s on the "
            "test class); the backend hung in the call shown in the traceback"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- in-process backends: the risky tests run in a forked child -------------------------

_IN_PROCESS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_MARKER = f"_codedance_conformance_runner_{uuid.uuid4().hex}"


def runs_in_process(backend: SandboxBackend, limit: float) -> bool:
    """Whether ``backend`` executes model code inside this very process (asked once)."""
    if backend not in _IN_PROCESS:
        sys.modules.setdefault(_MARKER, types.ModuleType(_MARKER))  # here and in forks
        probe = f"import os, sys\nprint({_MARKER!r} in sys.modules, os.getpid())"
        with time_limit(limit):
            session = backend.open_session()
            try:
                stdout = session.run(probe, timeout=limit).stdout.split()
            finally:
                session.close()
        _IN_PROCESS[backend] = stdout == ["True", str(os.getpid())]
    return _IN_PROCESS[backend]


def run_in_child(call: Callable[[], None], limit: float, opener: Any) -> None:
    """Run ``call`` in a forked child under ``limit``; replay its outcome here."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_end)
        outcome = _outcome(call)
        with contextlib.suppress(BaseException):
            if opener is not None:
                opener.close_all()
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    report, status = _collect(pid, read_end, limit)
    if report is None:
        raise ConformanceError(status)
    outcome = json.loads(report)
    if outcome["outcome"] == "skipped":
        pytest.skip(outcome["message"])
    if outcome["outcome"] == "failed":
        raise ConformanceError(outcome["message"])


def _outcome(call: Callable[[], None]) -> dict[str, str]:
    try:
        call()
    except pytest.skip.Exception as exc:
        return {"outcome": "skipped", "message": str(exc.msg)}
    except BaseException as exc:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return {"outcome": "failed", "message": "".join(lines[-12:]).rstrip()}
    return {"outcome": "passed"}


def _collect(pid: int, fd: int, limit: float) -> tuple[bytes | None, str]:
    """The child's report, or None and what happened to the child."""
    deadline, data = time.monotonic() + limit, b""
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        return None, (
            f"the test did not finish within its {limit:g} s limit and was killed; the backend "
            "runs model code in the test process, and this code never gave control back"
        )
    os.close(fd)
    status = os.waitpid(pid, 0)[1]
    if data:
        return data, ""
    return None, (
        f"the process running the test ended ({_describe(status)}) while the backend ran the "
        "model's code: the backend runs code in the caller's own process, which model code can "
        "end or crash; run it in a child process (see docs/sandboxes.md#writing-a-backend)"
    )


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
