"""Admission: how many sessions start, and how many run code, at the same time.

A machine serves only so many sessions at once. Past that, every session slows
down together: starts overrun their timeout and runs hit ``timeout_s`` while
waiting for a core, and the records blame the model's code for the framework's
crowding. :class:`Admission` queues the extra callers instead, in front of the
clock: a run's time limit starts when it is admitted, not when it was asked for.
It uses threading semaphores (not asyncio ones) because sessions are driven from
worker threads and from several event loops (the runtime, verl's agent loops).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Literal, TypeVar

__all__ = ["Admission", "cpu_count", "thread_env"]

T = TypeVar("T")

#: The variables that size the native thread pools model code may use: OpenMP (and
#: onnxruntime through codedance's OCR tool), OpenBLAS, MKL, numexpr, Accelerate, OpenCV.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that caps every native thread pool at ``threads``."""
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


def cpu_count() -> int:
    """The CPUs this process may use (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Admission:
    """Two bounded queues: sessions starting, and sessions running code.

    ``None`` for a limit means no queue. ``waited`` counts the callers that had to
    queue (approximately: it is a diagnostic, not a guarantee).
    """

    def __init__(self, starting: int | None, running: int | None) -> None:
        self.starting, self.running = starting, running
        self._start = None if starting is None else threading.BoundedSemaphore(starting)
        self._run = None if running is None else threading.BoundedSemaphore(running)
        self.waited = 0

    @classmethod
    def from_limits(
        cls, starting: int | Literal["auto"], running: int | Literal["auto"], runs_here: bool
    ) -> Admission:
        """Resolve ``auto`` to this machine's CPU count, or to no limit for remote backends."""

        def resolve(value: int | Literal["auto"]) -> int | None:
            if value != "auto":
                return int(value)
            return cpu_count() if runs_here else None

        return cls(resolve(starting), resolve(running))

    def start(self, function: Callable[..., T], *args: object) -> T:
        """Call ``function(*args)`` (a session start) once a start slot is free."""
        with self._slot(self._start):
            return function(*args)

    def run(self, function: Callable[..., T], *args: object) -> T:
        """Call ``function(*args)`` (a run) once a run slot is free."""
        with self._slot(self._run):
            return function(*args)

    @contextlib.contextmanager
    def _slot(self, semaphore: threading.BoundedSemaphore | None) -> Iterator[None]:
        if semaphore is None:
            yield
            return
        if not semaphore.acquire(blocking=False):
            self.waited += 1
            semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()
