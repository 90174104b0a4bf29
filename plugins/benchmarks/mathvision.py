"""MATH-Vision (MathVision): competition math problems with images, testmini or test.

Reads either published form of MATH-Vision (Wang et al., NeurIPS 2024 D&B):

* the Hugging Face dataset ``MathLLMs/MathVision``: ``data/testmini-*.parquet`` (and
  ``data/test-*.parquet``) with the image embedded in ``decoded_image``
  (``{"bytes", "path"}``) beside its path ``image``;
* the GitHub release ``mathllm/MATH-V``: ``data/testmini.jsonl`` (or ``test.jsonl``)
  with ``image`` paths such as ``images/1.jpg`` relative to the repository root.

Each problem has ``id``, ``question`` (with ``<image1>`` where the image goes),
``options`` (five option texts, or empty for free-form problems), ``answer`` (the
option letter A-E for multiple choice), ``solution``, ``level`` (1-5) and ``subject``
(16 subjects: the category of breakdowns).

The question is the official one; as in the official model scripts
(``models/*.py``), the options are appended as ``(A) ...`` lines unless they are just
the letters A-E (then the options are drawn in the image).

Scoring (default, ``--option scorer=official``): the official ``evaluation/evaluate.py``
rule, ported in :mod:`codedance.plugins.benchmarks.mathvision_official`: string rules
reduce the (codedance-extracted) answer, which must equal the gold letter or the right
option's text, as text or as a value **rounded to 2 decimals** (``0.33`` is right for
``1/3``), with no extra text around it. One quirk is kept: a symbolic gold written with
spaces or ``\\left`` can never be matched, not even by itself, because the answer is
cleaned and the gold is not and neither evaluates to a number (test id 2866,
``$\\pi-\\tan ^{-1}\\left(\\frac{1}{d}\\right)$``: 0 under the official code too).
``--option scorer=lenient`` scores by option letter or text (``multiple_choice``) and by
math equivalence (``math``: math-verify, then numbers, then text) instead: ``x = 5`` is
right, ``0.33`` is not.

Option ``split``: ``testmini`` (default, 304 problems) or ``test`` (3,040).

Tested on a subset of the authors' real records: tests/data/real/mathvision/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from string import ascii_uppercase
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, write_image_bytes
from codedance.evaluation.files import (
    data_files,
    find_file,
    first_file,
    jsonl_rows,
    parquet_rows,
    required_field,
    safe_stem,
    schema_error,
)
from codedance.plugins.benchmarks.mathvision_official import official_answer, official_equal
from codedance.rewards.answers import answer_as_given
from codedance.rewards.choices import letter_form
from codedance.runtime.types import Task, Trajectory

__all__ = ["MathVision", "question_text"]

_Row = tuple[str, Mapping[str, Any], tuple[Path, ...]]  # where, row, folders images start from


class MathVision(Benchmark):
    """MATH-Vision; ``options``: ``split`` (``testmini`` or ``test``), ``scorer``."""

    grader: ClassVar[str] = "MATH-V evaluate.py is_equal (values rounded to 2 decimals)"
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "codedance multiple_choice / math (math-verify) equivalence"
    }

    name = "mathvision"
    description = "MATH-Vision testmini: competition math with images, 16 subjects, 5 levels"
    layout = (
        "  <data>/data/testmini-*.parquet   (Hugging Face MathLLMs/MathVision, images embedded)\n"
        "or\n"
        "  <data>/data/testmini.jsonl       (GitHub mathllm/MATH-V)\n"
        "  <data>/images/<id>.jpg"
    )
    source = "https://huggingface.co/datasets/MathLLMs/MathVision"
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 29.6,
        "Qwen2.5-VL-7B": 25.0,
        "GPT-4o": 36.5,
    }

    def score(self, trajectory: Trajectory) -> float:
        """The official ``is_equal`` against the letter or option text (lenient: math)."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        if self.scorer_mode == "lenient":
            return super().score(trajectory)
        answer = official_answer(answer_as_given(trajectory.answer or ""))
        golds = [task.answer]
        if task.options:
            golds.append(task.options[ord(task.answer) - ord("A")])
        return 1.0 if any(official_equal(answer, gold) for gold in golds) else 0.0

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        split = str(self.options.get("split", "testmini"))
        for where, row, bases in self._rows(split):
            task = self.row_task(where, partial(self._task, row, where, bases, image_dir))
            if task is not None:
                yield task

    def _rows(self, split: str) -> Iterator[_Row]:
        root = self.data if self.data.is_dir() else self.data.parent
        parquet = data_files(self.data, (f"data/{split}-*.parquet", f"{split}-*.parquet"))
        if parquet:
            for path in parquet:
                for where, row in parquet_rows(path, self.name):
                    yield where, row, (root, path.parent.parent)
            return
        jsonl = first_file((root / "data" / f"{split}.jsonl", root / f"{split}.jsonl"))
        if jsonl is None:
            raise self.missing(f"no data/{split}-*.parquet and no {split}.jsonl found")
        for where, row in jsonl_rows(jsonl, _bad_row):
            yield where, row, (root, jsonl.parent.parent)

    def _task(
        self, row: Mapping[str, Any], where: str, bases: tuple[Path, ...], image_dir: Path
    ) -> Task:
        problem_id = required_field(row, "id", where, _bad_row)
        options = row.get("options") or []
        if not isinstance(options, list):
            raise _bad_row(where, f"options {options!r} is not a list")
        options = [str(option) for option in options]
        answer = _gold(str(row.get("answer") or "").strip(), options, where)
        return Task(
            id=problem_id,
            question=question_text(required_field(row, "question", where, _bad_row), options),
            images=[self._image(row, problem_id, where, bases, image_dir)],
            answer=answer,
            answer_type="multiple_choice" if options else "math",
            options=options or None,
            metadata={
                "category": row.get("subject"),
                "subject": row.get("subject"),
                "level": row.get("level"),
                "solution": row.get("solution"),
            },
        )

    def _image(
        self,
        row: Mapping[str, Any],
        problem_id: str,
        where: str,
        bases: tuple[Path, ...],
        image_dir: Path,
    ) -> str:
        embedded = row.get("decoded_image")
        if isinstance(embedded, Mapping) and embedded.get("bytes"):
            stem = safe_stem(f"mathvision-{problem_id}")
            return write_image_bytes(image_dir, embedded["bytes"], stem)
        name = row.get("image")
        if not name:
            raise _bad_row(where, "no image: neither decoded_image bytes nor an image path")
        found = find_file(str(name), bases)
        if found is None:
            raise self.missing(f"image {name!r} of {where} not found (put images/ beside data/)")
        return str(found)


def question_text(question: str, options: list[str]) -> str:
    """The question, with the options as ``(A) ...`` lines unless they are just letters."""
    if not options or "".join(options) == ascii_uppercase[: len(options)]:
        return question
    lines = [f"({ascii_uppercase[i]}) {option}" for i, option in enumerate(options)]
    return question + "\n" + "\n".join(lines)


def _gold(answer: str, options: list[str], where: str) -> str | None:
    if not answer:
        return None
    if not options:
        return answer
    letter = letter_form(answer)
    if letter is None or ascii_uppercase.index(letter) >= len(options):
        raise _bad_row(
            where, f"answer {answer!r} is not the letter of one of {len(options)} options"
        )
    return letter


_bad_row = schema_error("mathvision", "MATH-Vision", MathVision.source)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(MathVision)
