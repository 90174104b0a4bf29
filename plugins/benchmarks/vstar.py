"""Built-in plugin: V* Bench (``vstar``), small details in large, crowded images.

Format followed: the Hugging Face release ``craigwu/vstar_bench`` (the V* paper's
benchmark, github.com/penghao-wu/vstar): ``test_questions.jsonl``, one question a
line, ``{"image": "direct_attributes/sa_4690.jpg", "text": "What is the color of
the woman's shirt?\\n(A) white\\n(B) black\\n(C) red\\n(D) blue\\nAnswer with the
option's letter from the given choices directly.", "category": "direct_attributes",
"question_id": 0, "label": "A"}``, with the images in the category folders beside
it (``image`` is relative to the jsonl). The lmms-eval copy ``lmms-lab/vstar-bench``
(parquet with the same columns, ``image`` a ``{"bytes", "path"}`` struct) is read too.
The per-image ``<name>.json`` annotations of the same release (options with the
correct one first) are not read: presenting them unshuffled gives the answer away.

The question is ``text`` as published (it already lists the options); the options
are parsed from it into ``Task.options`` and the gold is ``label``, a letter.
Categories: ``direct_attributes`` (115) and ``relative_position`` (76).

Scoring: the V* paper's script picks the option of lowest loss, which a generative
model has no equivalent of; the published generative scorer is lmms-eval's
``vstar_bench`` (``extract_answer_letter``), and that is the default here
(``--option scorer=official``), applied to the answer codedance extracts: uppercased,
the first of these that matches gives the letter (A-D): a response that starts with a
letter; "answer/choice/option (is)" then a letter; ``(X)``; a letter followed by ``.``,
``)`` or ``]``; a letter standing alone; the only letter A-D in the response. Its
quirks are kept: "Blue" reads as B (it starts with B), option texts never count.
``--option scorer=lenient`` uses ``score_answer(..., "multiple_choice")`` instead, which
also accepts the text of exactly one option and rejects hedges such as "(A) or (C)".

No public repository holds V* Bench's real rows (they are on Hugging Face only; see
tests/data/real/vstar/SOURCES.md), so this loader is tested on rows
written to the published schema, not on the authors' records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError
from codedance.evaluation.files import data_files, iter_parquet_rows, jsonl_rows, write_image
from codedance.rewards.answers import answer_as_given
from codedance.runtime.types import Task, Trajectory

__all__ = ["VStarBench", "official_letter", "parse_options", "register_benchmarks"]

QUESTIONS_FILE = "test_questions.jsonl"
CATEGORIES = ("direct_attributes", "relative_position")

# "(A) white" up to the next "(B)", the end of the line or the end of the text.
_OPTION = re.compile(r"\(([A-Z])\)[ \t]*(.*?)(?=[ \t]*\([A-Z]\)|\n|$)")


def parse_options(text: str) -> list[str] | None:
    """The option texts listed in ``text`` as ``(A) ...`` ``(B) ...``, or ``None``.

    The labels must run A, B, C, ... from the first one found, so a stray ``(C)``
    inside a sentence is not mistaken for a list of options.
    """
    found = _OPTION.findall(text)
    letters = [letter for letter, _ in found]
    if len(found) < 2 or letters != [chr(ord("A") + i) for i in range(len(found))]:
        return None
    return [option.strip() for _, option in found]


class VStarBench(Benchmark):
    """V* Bench: 191 multiple-choice questions on high-resolution images."""

    grader: ClassVar[str] = "lmms-eval vstar_bench letter extraction (extract_answer_letter)"
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "codedance multiple_choice: the letter, or the text of exactly one option"
    }

    name: ClassVar[str] = "vstar"
    description: ClassVar[str] = (
        "V* Bench: attributes and relative positions of small objects in large images"
    )
    layout: ClassVar[str] = (
        f"  {QUESTIONS_FILE}               one question a line: image, text, category,\n"
        "                                     label (the option letter), question_id\n"
        "  direct_attributes/*.jpg, relative_position/*.jpg   the images (paths in 'image')\n"
        "  or: *.parquet (lmms-lab/vstar-bench: the same columns, image as {bytes, path})"
    )
    source: ClassVar[str] = (
        "https://huggingface.co/datasets/craigwu/vstar_bench "
        "(or https://huggingface.co/datasets/lmms-lab/vstar-bench)"
    )
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 84.8,
        "Qwen2.5-VL-7B": 76.4,
        "GPT-4o": 67.5,
        "DeepEyes-7B": 90.4,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        seen: set[str] = set()
        for where, task in self._read(image_dir):
            if task.id in seen:
                self.skip(where, self.missing(f"{where}: question_id {task.id!r} occurs twice"))
                continue
            seen.add(task.id)
            yield task

    def _read(self, image_dir: Path) -> Iterator[tuple[str, Task]]:
        jsonl = self.data if self.data.suffix == ".jsonl" else self.data / QUESTIONS_FILE
        if jsonl.is_file():
            yield from self._from_jsonl(jsonl)
            return
        parquets = data_files(self.data, ("**/*.parquet",))
        if not parquets:
            raise self.missing(f"no {QUESTIONS_FILE} and no *.parquet found")
        for path in parquets:
            yield from self._from_parquet(path, image_dir)

    def _from_jsonl(self, path: Path) -> Iterator[tuple[str, Task]]:
        for where, row in jsonl_rows(path, self._bad_line, invalid="not JSON"):
            task = self.row_task(where, partial(self._jsonl_task, row, path, where))
            if task is not None:
                yield where, task

    def _jsonl_task(self, row: Mapping[str, Any], path: Path, where: str) -> Task:
        image = path.parent / str(self._field(row, "image", where))
        if not image.is_file():
            raise self.missing(f"{where}: image {str(image)!r} does not exist")
        return self._task(row, str(image), where)

    def _bad_line(self, where: str, problem: str) -> BenchmarkDataError:
        return self.missing(f"{where} is {problem}")

    def _from_parquet(self, path: Path, image_dir: Path) -> Iterator[tuple[str, Task]]:
        for number, row in enumerate(iter_parquet_rows(path, self.name)):
            where = f"{path.name} row {number}"
            build = partial(self._parquet_task, row, path, number, where, image_dir)
            task = self.row_task(where, build)
            if task is not None:
                yield where, task

    def _parquet_task(
        self, row: Mapping[str, Any], path: Path, number: int, where: str, image_dir: Path
    ) -> Task:
        stem = f"vstar-{row.get('question_id', number)}"
        image = write_image(self._field(row, "image", where), path.parent, image_dir, stem)
        if image is None:
            raise self.missing(f"{where}: 'image' holds no image bytes")
        return self._task(row, image, where)

    def _task(self, row: Mapping[str, Any], image: str, where: str) -> Task:
        """One row (jsonl line or parquet row) as a Task; ``image`` is its file."""
        from codedance.rewards.choices import letter_form

        text = str(self._field(row, "text", where))
        options = parse_options(text)
        if options is None:
            raise self.missing(f"{where}: no '(A) ... (B) ...' options in 'text' {text!r}")
        label = letter_form(str(self._field(row, "label", where)))
        if label is None or ord(label) - ord("A") >= len(options):
            raise self.missing(
                f"{where}: 'label' {row['label']!r} is not one of the letters of its "
                f"{len(options)} options"
            )
        question_id = self._field(row, "question_id", where)
        category = str(self._field(row, "category", where))
        return Task(
            id=str(question_id),
            question=text,
            images=[image],
            answer=label,
            answer_type="multiple_choice",
            options=options,
            metadata={"category": category, "question_id": question_id},
        )

    def score(self, trajectory: Trajectory) -> float:
        """lmms-eval's letter (official) or ``multiple_choice`` (lenient) against ``label``."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        if self.scorer_mode == "lenient":
            return super().score(trajectory)
        return (
            1.0 if official_letter(answer_as_given(trajectory.answer or "")) == task.answer else 0.0
        )

    def _field(self, row: Mapping[str, Any], key: str, where: str) -> Any:
        value = row.get(key)
        if value is None or value == "":
            raise self.missing(f"{where} has no {key!r} field (fields: {sorted(row)})")
        return value


_LETTER_RULES = (
    re.compile(r"^([A-D])"),  # starts with a letter ("Blue" too, as lmms-eval)
    re.compile(r"(?:THE\s+)?(?:ANSWER|CHOICE|OPTION)(?:\s+IS)?[\s:]+([A-D])"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"([A-D])\s*[.)\]]"),
    re.compile(r"(?:^|\s)([A-D])(?:\s|$)"),
)


def official_letter(response: str) -> str | None:
    """The option letter lmms-eval's V* scorer reads from ``response`` (see the module doc)."""
    text = response.strip().upper()
    for rule in _LETTER_RULES:
        found = rule.search(text)
        if found is not None:
            return found.group(1)
    letters = re.findall(r"[A-D]", text)
    return letters[0] if len(letters) == 1 else None


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(VStarBench)
