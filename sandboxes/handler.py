"""A sandbox backend driven by a handler function, for tests and benchmarks.

``HandlerSandbox(lambda code: "42\\n")`` answers every run with that stdout;
a handler may also return a full :class:`ExecutionRecord`. Nothing is executed
and nothing is isolated, so it is never registered as a backend: tests and
``bench/runtime.py`` hand it to the runtime directly, to measure or exercise the
loop without a sandbox's cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from codedance.sandboxes.base import (
    ExecutionRecord,
    SandboxBackend,
    SandboxSession,
    SessionClosedError,
    SessionSpec,
)

__all__ = ["HandlerSandbox", "HandlerSession"]

Handler = Callable[[str], "ExecutionRecord | str"]


class HandlerSandbox(SandboxBackend):
    """Sessions whose runs are answered by ``handler(code)`` (default: empty output)."""

    name = "handler"
    runs_here = False  # in-process handlers start no processes: nothing to queue

    def __init__(self, handler: Handler | None = None) -> None:
        super().__init__()
        self.handler: Handler = handler or (lambda code: "")
        self.opened: list[HandlerSession] = []

    def open_session(self, spec: SessionSpec | None = None) -> HandlerSession:
        session = HandlerSession(self.handler, spec or SessionSpec())
        self.opened.append(session)
        return session


class HandlerSession(SandboxSession):
    """Records the code it was given; answers with the handler."""

    isolation = "none (handler sandbox: nothing runs)"

    def __init__(self, handler: Handler, spec: SessionSpec) -> None:
        self.handler, self.spec = handler, spec
        self.codes: list[str] = []
        self.closed = False

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        if self.closed:
            raise SessionClosedError("the session is closed")
        started = time.perf_counter()
        self.codes.append(code)
        result = self.handler(code)
        if isinstance(result, ExecutionRecord):
            return result
        return ExecutionRecord(stdout=result, stderr="", duration_s=time.perf_counter() - started)

    async def arun(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        return self.run(code, timeout)  # in-process and instant: no thread hop

    def restart(self) -> None:
        self.codes.clear()

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.close()
