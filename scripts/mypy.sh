#!/usr/bin/env bash
# mypy on the codedance package. The repository root *is* the package (setuptools
# maps codedance -> .), so mypy gets a view where that mapping is a real folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
ln -s "$PWD" "$view/codedance"
MYPYPATH="$view" "$PY" -m mypy --cache-dir .mypy_cache -p codedance
