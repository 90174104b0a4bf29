"""Scorer parity: the default scores agree with the official scorers' own verdicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from codedance.evaluation.parity import load_cases, parity

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "parity"


def script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "scorer_parity", ROOT / "scripts/scorer_parity.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(CASES.glob("*.jsonl")), ids=lambda p: p.stem)
def test_default_scorer_agrees_with_the_official_code_on_every_case(
    path: Path, codedance_registry
) -> None:
    loader = codedance_registry.get("benchmark", path.stem)
    cases = load_cases(path)
    result = parity(lambda mode: loader(Path("."), {"scorer": mode}), path.stem, cases)
    assert len(cases) >= 40
    assert {c["official"] for c in cases} == {True, False}  # right and wrong answers both
    assert result.differ["official"] == {}, result.differ["official"]


def test_the_parity_table_in_docs_is_current() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert script().render(doc) == doc, "run: python scripts/scorer_parity.py"
