#!/usr/bin/env bash
# The one check command: ruff (lint + format), mypy on the package, pytest.
# Usage: scripts/check.sh [pytest args...]   (run from anywhere; uses .venv if present)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

echo "== ruff check"; "$PY" -m ruff check .
echo "== ruff format --check"; "$PY" -m ruff format --check .
echo "== mypy"; scripts/mypy.sh "$PY"
echo "== pytest"
set +e
"$PY" -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no tests; that is not a failure of the checks.
if [ "$status" -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi
exit "$status"
