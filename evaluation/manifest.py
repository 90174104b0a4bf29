"""The manifest of an eval run: everything needed to reproduce its numbers.

``report.json`` carries it under ``"manifest"`` (and ``eval.json`` in the run folder
keeps it for ``--report`` and ``--compare``): the codedance version, the benchmark
and its options, the model (backend, name, endpoint; never the API key), the
protocol, the image pixel bounds and the turn cap, the scorer (its mode and which
grader decided: the ported official rule, a rule-based stand-in for an LLM grader,
or the LLM judge), the dataset files read with their size and sha256, and the
whole configuration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codedance.core.config import Config
    from codedance.evaluation.benchmark import Benchmark

__all__ = ["DATA_SUFFIXES", "build_manifest", "dataset_files"]

#: Files whose hashes identify a benchmark's data (images are covered by the rows).
DATA_SUFFIXES = frozenset({".json", ".jsonl", ".parquet", ".tsv", ".csv"})
_MAX_FILES = 200  # a folder with more data files than this is listed up to it
_CHUNK = 1 << 20


def build_manifest(benchmark: Benchmark, config: Config, model: str, tasks: int) -> dict[str, Any]:
    """The manifest of a run of ``benchmark`` with ``config`` (see the module docstring)."""
    from codedance import __version__

    dumped = config.model_dump(mode="json")
    dumped.get("model", {}).pop("api_key", None)
    return {
        "codedance_version": __version__,
        "benchmark": benchmark.name,
        "options": dict(benchmark.options),
        "tasks": tasks,
        "model": model,
        "model_backend": config.model.backend,
        "model_name": config.model.name,
        "endpoint": config.model.endpoint,
        "protocol": config.protocol.name,
        "max_turns": config.runtime.max_turns,
        "image_min_pixels": config.runtime.image_min_pixels,
        "image_max_pixels": config.runtime.image_max_pixels,
        "scorer": benchmark.scorer(),
        "data": str(benchmark.data),
        "dataset_files": list(dataset_files(benchmark.data)),
        "config": dumped,
    }


def dataset_files(data: Path) -> Iterator[dict[str, Any]]:
    """The data files at ``data`` (the file, or those below the folder) with sha256."""
    if data.is_file():
        paths = [data]
    elif data.is_dir():
        found = (p for p in sorted(data.rglob("*")) if p.suffix in DATA_SUFFIXES and p.is_file())
        paths = [p for _, p in zip(range(_MAX_FILES), found, strict=False)]
    else:
        paths = []
    for path in paths:
        name = path.name if data.is_file() else str(path.relative_to(data))
        yield {"path": name, "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
