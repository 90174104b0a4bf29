"""The benchmark contract: read a published dataset from a local path, score by its rule.

A benchmark is a class registered through ``register_benchmarks``. It reads the
files exactly as the benchmark publishes them (JSON, JSONL, parquet, TSV; images
as files or embedded bytes) from ``data`` and yields :class:`~codedance.runtime.types.Task`
objects with the answer type, options and category filled in. Embedded images
are written once under ``image_dir`` (tasks carry file paths). ``score`` applies
the benchmark's official rule; the default is :func:`codedance.rewards.score_answer`
with the task's answer type. A wrong path is a :class:`BenchmarkDataError` that
names the files the loader expected and where to get them (``layout``, ``source``).

A bad *row* never ends a run: loaders build each task through :meth:`Benchmark.row_task`,
which skips a row whose :class:`BenchmarkDataError` it catches and records it in
:attr:`Benchmark.problems` (a :class:`~codedance.evaluation.problems.DataProblem` with
the place and the reason), unless ``--option strict=true`` asks for the error.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from codedance.core.errors import ConfigError
from codedance.evaluation.problems import DataProblem
from codedance.runtime.types import Task, Trajectory

__all__ = ["Benchmark", "BenchmarkDataError", "write_image_bytes"]

T = TypeVar("T")


class BenchmarkDataError(ConfigError):
    """The data at ``--data`` is not what the benchmark's loader reads."""


class Benchmark(ABC):
    """Subclass, fill in the class attributes, implement :meth:`tasks`, register it."""

    name: ClassVar[str] = ""
    #: One line for ``codedance eval --list`` and docs/benchmarks.md.
    description: ClassVar[str] = ""
    #: The files the loader expects under ``data`` (shown in errors and docs).
    layout: ClassVar[str] = ""
    #: Where users download the data (the loader never downloads).
    source: ClassVar[str] = ""
    #: Numbers reported in the CodeDance paper's tables, to print beside ours (percent).
    reported: ClassVar[Mapping[str, float]] = {}
    #: Which grader :meth:`score` is, in words, for the report's manifest.
    grader: ClassVar[str] = "the benchmark's official rule (score_answer of its answer type)"
    #: The scorer modes offered (``--option scorer=...``); the first, the official one, is
    #: the default. :attr:`graders` describes the grader of each other mode.
    scorer_modes: ClassVar[tuple[str, ...]] = ("official",)
    graders: ClassVar[Mapping[str, str]] = {}

    def __init__(self, data: Path, options: Mapping[str, Any] | None = None) -> None:
        self.data = Path(data)
        self.options = dict(options or {})
        #: Rows :meth:`tasks` skipped, with where they are and why (filled while iterating).
        self.problems: list[DataProblem] = []

    def row_task(self, where: str, build: Callable[[], T]) -> T | None:
        """``build()``, or ``None`` after recording why the row at ``where`` is unusable.

        A :class:`BenchmarkDataError` from one row (a malformed field, a missing
        image), or a ``ValueError``/``TypeError``/``KeyError``/``AttributeError``/
        ``IndexError`` from a field of a shape the loader did not expect, becomes a
        :class:`DataProblem` in :attr:`problems` and the row is skipped; with
        ``--option strict=true`` it is raised instead.
        """
        try:
            return build()
        except BenchmarkDataError as error:
            self.skip(where, error)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
            # a field of an unexpected shape that the loader did not check: still one row
            problem = f"{where}: unreadable row ({type(error).__name__}: {error})"
            self.skip(where, BenchmarkDataError(f"benchmark {self.name!r}: {problem}"))
        return None

    def skip(self, where: str, error: BenchmarkDataError) -> None:
        """Record that the row at ``where`` is skipped because of ``error`` (strict: raise it)."""
        if _truthy(self.options.get("strict", False)):
            raise error
        # the layout and download hint of missing() help once, not on every row
        reason = str(error).split("Expected layout:")[0].strip()
        self.problems.append(DataProblem(where, reason))

    @abstractmethod
    def tasks(self, image_dir: Path) -> Iterator[Task]:
        """The benchmark's tasks; embedded images are written under ``image_dir``."""

    def score(self, trajectory: Trajectory) -> float:
        """The official score of one trajectory in [0, 1] (default: ``score_answer``)."""
        from codedance.rewards import score_answer

        task = trajectory.task
        if task.answer is None:
            return 0.0
        return score_answer(
            trajectory.answer or "", task.answer, task.answer_type, options=task.options
        )

    @property
    def scorer_mode(self) -> str:
        """The scorer mode chosen with ``--option scorer=...`` (default: the official one)."""
        return self.choice("scorer", self.scorer_modes)

    def scorer(self) -> dict[str, str]:
        """The scorer the report names: its mode and which grader decides."""
        mode = self.scorer_mode
        return {"mode": mode, "grader": self.graders.get(mode, self.grader)}

    def judge_prompt(self, task: Task, response: str) -> str | None:
        """The official LLM grader's prompt about ``response``, for ``--judge``.

        ``None`` (the default) when the benchmark's official grader is not an LLM;
        benchmarks graded by one (CharXiv, MathVerse, HR-Bench) fill in its prompt as
        their official scripts do. ``response`` is the model's final message.
        """
        return None

    def judge_verdict(self, reply: str) -> float | None:
        """The score the official grader's ``reply`` gives (default: ``parse_verdict``)."""
        from codedance.rewards.judge import parse_verdict

        return parse_verdict(reply)

    def metrics(self, scored: Sequence[tuple[Task, float]]) -> dict[str, Any]:
        """Benchmark-specific metrics beyond accuracy (e.g. We-Math's four dimensions).

        ``scored`` pairs each task with its official score; the report prints what
        this returns (default: nothing).
        """
        return {}

    def category(self, task: Task) -> str | None:
        """The task's category for breakdowns (default: ``metadata["category"]``)."""
        value = task.metadata.get("category")
        return None if value is None else str(value)

    def choice(self, option: str, allowed: Sequence[str]) -> str:
        """The value of ``option``, one of ``allowed`` (default: the first of them)."""
        value = str(self.options.get(option, allowed[0]))
        if value not in allowed:
            raise BenchmarkDataError(
                f"benchmark {self.name!r}: unknown {option} {value!r}. "
                f"Fix: --option {option}=<one of {', '.join(allowed)}>."
            )
        return value

    def missing(self, what: str) -> BenchmarkDataError:
        """The error for data that is not where or what the loader expects."""
        return BenchmarkDataError(
            f"benchmark {self.name!r}: {what} (looked in {str(self.data)!r}). Expected layout:\n"
            f"{self.layout}\nGet the data from {self.source} and pass its folder with --data."
        )


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def write_image_bytes(image_dir: Path, data: bytes, stem: str) -> str:
    """Write embedded image bytes once (named by content) and return the file's path."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
    path = image_dir / f"{stem}-{digest}{suffix}"
    if not path.exists():
        image_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(path)
