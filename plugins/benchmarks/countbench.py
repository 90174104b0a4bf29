"""Built-in plugin: the ``countbench`` benchmark (CountBenchQA: count objects, 2 to 10).

CountBench (Paiss et al., 2023, "Teaching CLIP to Count to Ten") was released as
image URLs, many of which no longer resolve. The loader reads the Hugging Face
``vikhyatk/CountBenchQA`` release instead (491 rows, the form used by Moondream,
lmms-eval and CodeDance's validation set): ``data/test-00000-of-00001.parquet`` with
columns ``image`` ({bytes, path}, embedded), ``text`` (the original caption),
``question`` ("How many ... are in the image?") and ``number`` (2-10).

Scoring (default, ``--option scorer=official``): lmms-eval's ``countbench`` rule, the
only published generative scorer of CountBenchQA
(``lmms_eval/tasks/countbench/utils.py``): the answer, stripped and lowercased, with a
number word from "none"/"zero" to "twenty" read as its digits, must equal the count
exactly; it is applied to the answer codedance extracts (``<answer>``, ``\\boxed``, "the
answer is"). So ``10`` and ``ten`` count for 10 while ``10 apples`` and ``9 or 10`` do
not. ``--option scorer=lenient`` instead uses answer type ``count`` (the one number the
answer gives, digits or words, so ``10 apples`` counts; a hedge such as ``9 or 10``
reads as its last number). The category buckets the gold count (``2-4``, ``5-7``,
``8-10``). Ids are ``countbench-<row>`` (the release has no id field; rows keep the
published order).

No public repository holds CountBenchQA's real rows (they are on Hugging Face only; see
tests/data/real/countbench/SOURCES.md), so this loader is tested on rows
written to the published schema, not on the authors' records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark
from codedance.evaluation.files import data_files, iter_parquet_rows, place_error, write_image
from codedance.rewards.answers import answer_as_given
from codedance.runtime.types import Task, Trajectory

__all__ = ["CountBenchBenchmark", "count_range", "official_count", "register_benchmarks"]

_FIELDS = ("image", "question", "number")


class CountBenchBenchmark(Benchmark):
    """CountBenchQA: how many objects of a named kind are in a web photo."""

    grader: ClassVar[str] = "lmms-eval countbench exact match (number words read as digits)"
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "codedance's count rule: the one number the answer gives"
    }

    name: ClassVar[str] = "countbench"
    description: ClassVar[str] = "CountBenchQA: 491 photos, count the named objects (2-10)"
    layout: ClassVar[str] = (
        "  data/test-00000-of-00001.parquet (or any test-*.parquet in --data) from the\n"
        "  Hugging Face dataset vikhyatk/CountBenchQA: columns image ({bytes, path}),\n"
        "  text, question, number"
    )
    source: ClassVar[str] = "https://huggingface.co/datasets/vikhyatk/CountBenchQA"
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 91.2,
        "Qwen2.5-VL-7B": 76.5,
        "GPT-4o": 87.9,
        "DeepEyes-7B": 80.4,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        files = self._files()
        if not files:
            raise self.missing("no test-*.parquet found")
        index = 0
        for path in files:
            for row_number, row in enumerate(iter_parquet_rows(path, self.name)):
                build = partial(_task, row, path, row_number, index, image_dir)
                task = self.row_task(f"{path.name} row {row_number}", build)
                if task is not None:
                    yield task
                index += 1

    def _files(self) -> list[Path]:
        return data_files(self.data, ("test-*.parquet", "data/test-*.parquet"))

    def score(self, trajectory: Trajectory) -> float:
        """lmms-eval's exact match (official) or the ``count`` answer type (lenient)."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        if self.scorer_mode == "lenient":
            return super().score(trajectory)
        return (
            1.0 if official_count(answer_as_given(trajectory.answer or "")) == task.answer else 0.0
        )


_ONES_TO_TWENTY = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
)  # fmt: skip
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_ONES_TO_TWENTY)} | {"none": "0"}


def official_count(answer: str) -> str:
    """The answer as lmms-eval compares it: stripped, lowercased, a number word as digits."""
    normalized = answer.strip().lower()
    return _NUMBER_WORDS.get(normalized, normalized)


def count_range(number: int) -> str:
    """The category of a gold count: ``2-4``, ``5-7``, ``8-10`` (``0-1``, ``11+`` outside)."""
    if number < 2:
        return "0-1"
    if number > 10:
        return "11+"
    low = 2 + 3 * ((number - 2) // 3)
    return f"{low}-{low + 2}"


def _task(row: Any, path: Path, row_number: int, index: int, image_dir: Path) -> Task:
    where = f"{path} row {row_number}"
    if not isinstance(row, dict) or any(row.get(name) is None for name in _FIELDS):
        raise _bad_row(where, f"missing one of the fields {', '.join(_FIELDS)}")
    number = row["number"]
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise _bad_row(where, f"'number' is {number!r}, expected a whole count")
    task_id = f"countbench-{index}"
    image = write_image(row["image"], path.parent, image_dir, task_id)
    if image is None:
        raise _bad_row(where, "'image' holds no readable image ({bytes, path} struct)")
    return Task(
        id=task_id,
        question=str(row["question"]),
        images=[image],
        answer=str(number),
        answer_type="count",
        metadata={"category": count_range(number), "caption": row.get("text")},
    )


_bad_row = place_error(
    "countbench", f"Fix: pass the unmodified parquet of {CountBenchBenchmark.source} with --data."
)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(CountBenchBenchmark)
