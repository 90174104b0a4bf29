"""Start-up benchmark: how long `import codedance` and common CLI calls take.

Runs each command in a fresh interpreter several times and writes the table
between the markers in docs/benchmarks.md. Usage: python bench/startup.py [runs]
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- startup:begin -->", "<!-- startup:end -->"

CASES = {
    "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
    "import codedance": [sys.executable, "-c", "import codedance"],
    "from codedance import hookimpl": [sys.executable, "-c", "from codedance import hookimpl"],
    "codedance --help": [sys.executable, "-m", "codedance", "--help"],
    "codedance plugins --json": [sys.executable, "-m", "codedance", "plugins", "--json"],
    "codedance config show": [sys.executable, "-m", "codedance", "config", "show"],
}


def measure(argv: list[str], runs: int) -> list[float]:
    env = {**os.environ, "CODEDANCE_LOAD_PLUGINS": ""}
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def table(runs: int) -> str:
    rows = ["| command | median ms | min ms |", "|---|---:|---:|"]
    for label, argv in CASES.items():
        times = measure(argv, runs)
        rows.append(f"| `{label}` | {statistics.median(times):.0f} | {min(times):.0f} |")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return "\n".join([f"{runs} runs each, fresh interpreter, {machine}.", "", *rows])


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    result = table(runs)
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{result}\n{END}{tail}", encoding="utf-8")
    print(result)


if __name__ == "__main__":
    main()
