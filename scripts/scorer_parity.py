"""Write the scorer-parity table (ours vs the official scorers) into docs/benchmarks.md.

Reads tests/data/parity/<benchmark>.jsonl (cases from the authors' real records with
the official scoring code's verdicts; see tests/data/parity/SOURCES.md), scores each
case with the benchmark's default scorer and its lenient one, and writes the
agreement per benchmark between the scorer-parity markers. tests/test_eval_parity.py
checks that the page is current. Usage: python scripts/scorer_parity.py
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
CASES = ROOT / "tests" / "data" / "parity"
BEGIN, END = "<!-- scorer-parity:begin -->", "<!-- scorer-parity:end -->"


def table() -> str:
    from codedance.core.discovery import load_registry
    from codedance.evaluation.parity import load_cases, parity, parity_markdown

    registry = load_registry(env={"CODEDANCE_LOAD_PLUGINS": ""})
    results = []
    for path in sorted(CASES.glob("*.jsonl")):
        loader = registry.get("benchmark", path.stem)
        make = partial(_benchmark, loader)
        results.append(parity(make, path.stem, load_cases(path)))
    return parity_markdown(results)


def _benchmark(loader: Any, mode: str) -> Any:
    return loader(Path("."), {"scorer": mode})


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main() -> None:
    sys.path.insert(0, str(ROOT.parent))
    DOC.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
