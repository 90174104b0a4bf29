"""Shared helpers for codedance's own tests (the public fixtures live in codedance.testing)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_plugin(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_plugin("name.py", source)``: write a plugin file under tmp_path."""

    def write(filename: str, source: str) -> Path:
        path = tmp_path / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write


class Problems(list[str]):
    """The problems benchmarks recorded, as ``"<where>: <reason>"``."""

    def has(self, pattern: str) -> bool:
        """Whether one recorded problem matches ``pattern`` (``re.search``)."""
        return any(re.search(pattern, problem) for problem in self)


@pytest.fixture
def data_problems(monkeypatch: pytest.MonkeyPatch) -> Problems:
    """Every row any benchmark skips during the test.

    Spies on :meth:`Benchmark.skip` (which still records the problem as usual), so a
    test can assert that a bad row was skipped with its reason instead of aborting.
    """
    from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError

    seen = Problems()
    original = Benchmark.skip

    def spy(self: Benchmark, where: str, error: BenchmarkDataError) -> None:
        original(self, where, error)
        seen.append(f"{where}: {error}")

    monkeypatch.setattr(Benchmark, "skip", spy)
    return seen
