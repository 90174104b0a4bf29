"""What ``codedance train`` checks on disk before verl starts: the policy and the data.

verl's own validation sees only the configuration's shape, so a model path that
does not exist, or fewer training rows than ``train_batch_size`` (verl's dataloader
drops the incomplete last batch, so no step would ever run), only showed up after
Ray and the workers had started. :func:`input_problems` finds both in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codedance.core.config import TrainingConfig

__all__ = ["input_problems"]


def input_problems(training: TrainingConfig) -> list[str]:
    """One message per problem with the model path or the training files, each with its fix."""
    problems = _model_problems(training.model_path)
    rows, file_problems = _rows(training.train_files)
    problems += file_problems
    if not file_problems and rows < training.train_batch_size:
        problems.append(
            f"training.train_files: {rows} rows in all, fewer than training.train_batch_size "
            f"= {training.train_batch_size}; verl drops an incomplete batch, so no step would "
            f"run. Fix: add data, or set training.train_batch_size to at most {rows}."
        )
    return problems


def _model_problems(model_path: str | None) -> list[str]:
    if not model_path or Path(model_path).expanduser().exists():
        return []
    if _looks_like_hub_id(model_path):
        return []  # verl downloads it from the Hugging Face Hub
    return [
        f"training.model_path: {model_path!r} does not exist. Fix: the folder of the "
        f"policy checkpoint (a Hugging Face model folder), or a Hub id such as org/name."
    ]


def _looks_like_hub_id(value: str) -> bool:
    """``org/name``: one slash, not starting with ``/``, ``.`` or ``~``."""
    return value.count("/") == 1 and not value.startswith(("/", ".", "~"))


def _rows(files: list[str]) -> tuple[int, list[str]]:
    import pyarrow.parquet as pq

    total, problems = 0, []
    for index, file in enumerate(files):
        path = Path(file).expanduser()
        if not path.is_file():
            problems.append(
                f"training.train_files.{index}: {file!r} does not exist. Fix: write it with "
                f"`codedance data to-verl`, or correct the path."
            )
            continue
        total += pq.ParquetFile(path).metadata.num_rows
    return total, problems
