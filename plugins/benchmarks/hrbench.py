"""Built-in plugin: HR-Bench 4K and 8K (``hrbench4k``, ``hrbench8k``).

Format followed: the Hugging Face release ``DreamMr/HR-Bench`` (AAAI 2025,
github.com/DreamMr/HR-Bench), in its two published forms:

* ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv``, VLMEvalKit's TSV: columns ``index``,
  ``question``, ``A``..``D``, ``answer`` (a letter), ``category`` (``single`` for
  fine-grained single-instance perception, ``cross`` for cross-instance),
  ``cycle_category`` (which rotation of the options) and ``image`` (base64). As
  everywhere in VLMEvalKit, an ``image`` of at most 64 characters names the
  ``index`` of the row that holds the image.
* the parquet config ``hrbench_version_split`` (splits ``hrbench_4k`` and
  ``hrbench_8k``, read by lmms-eval) with the same columns.

``--data`` is the file itself or a folder searched for a ``.tsv`` or ``.parquet``
whose path below it, without ``_``/``-``, contains ``hrbench4k`` (``hrbench8k``);
a TSV is preferred when both are there. The question gets the options appended as
HR-Bench's own prompt does (``Options:\\nA. ...``, then "Please select the correct
answer from the options above.").

Scoring: HR-Bench asks an LLM whether the response gives ``"<letter>. <text>"``
and reports the mean over ``cycle_category`` of the per-cycle accuracy. We read
the letter (or the text of exactly one option) by rule with ``score_answer(...,
"multiple_choice")``; every cycle holds each question once, so the cycle mean is
the plain mean over rows. ``cycle_category`` is kept in the metadata.

No public repository holds HR-Bench's real rows (they are on Hugging Face only; see
tests/data/real/hrbench/SOURCES.md), so this loader is tested on rows
written to the published schema, not on the authors' records.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark
from codedance.evaluation.files import parquet_rows, write_image
from codedance.runtime.types import Task

__all__ = ["HRBench4K", "HRBench8K", "register_benchmarks"]

#: VLMEvalKit: an ``image`` cell this short is the ``index`` of the row holding the image.
_REFERENCE_MAX_CHARS = 64
_SUFFIXES = (".tsv", ".parquet")


class _HRBench(Benchmark):
    """HR-Bench at one resolution (``size``); the two registered classes set it."""

    grader: ClassVar[str] = (
        "rule-based stand-in for HR-Bench's LLM judge: the option letter (or one option's text)"
    )

    size: ClassVar[str] = ""
    source: ClassVar[str] = "https://huggingface.co/datasets/DreamMr/HR-Bench"

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        tasks: dict[str, Task] = {}
        references: list[tuple[Task, str, str]] = []  # task, index it names, where
        for row, where, path in self._rows():
            task = self.row_task(where, partial(self._task, row, where))
            if task is None:
                continue
            if task.id in tasks:
                self.skip(where, self.missing(f"{where}: index {task.id!r} occurs twice"))
                continue
            cell = row.get("image")
            if isinstance(cell, str) and 0 < len(cell.strip()) <= _REFERENCE_MAX_CHARS:
                references.append((task, cell.strip(), where))
            else:
                write = partial(self._write_image, cell, where, path, image_dir)
                image = self.row_task(where, write)
                if image is None:
                    continue
                task.images = [image]
            tasks[task.id] = task
        for task, index, where in references:
            if index not in tasks or not tasks[index].images:
                problem = f"{where}: 'image' names index {index!r}, which holds no image"
                self.skip(where, self.missing(problem))
                del tasks[task.id]
                continue
            task.images = list(tasks[index].images)
        yield from tasks.values()

    def _files(self) -> list[Path]:
        if self.data.is_file():
            return [self.data] if self.data.suffix in _SUFFIXES else []
        if not self.data.is_dir():
            return []
        key = f"hrbench{self.size}"
        found = [
            path
            for path in sorted(self.data.rglob("*"))
            if path.suffix in _SUFFIXES and key in _squash(str(path.relative_to(self.data)))
        ]
        tsv = [path for path in found if path.suffix == ".tsv"]
        return tsv or found

    def _rows(self) -> Iterator[tuple[Mapping[str, Any], str, Path]]:
        """Every row of the benchmark's files, with where it is (for errors) and its file."""
        files = self._files()
        if not files:
            raise self.missing(f"no hr_bench_{self.size}.tsv and no hrbench_{self.size} parquet")
        for path in files:
            if path.suffix == ".tsv":
                yield from _tsv_rows(path)
            else:
                for where, row in parquet_rows(path, self.name):
                    yield row, where, path

    def _task(self, row: Mapping[str, Any], where: str) -> Task:
        from codedance.rewards.choices import letter_form

        options = _options(row)
        if len(options) < 2:
            raise self.missing(f"{where} has fewer than two options in columns A, B, ...")
        answer = letter_form(str(self._field(row, "answer", where)))
        if answer is None or ord(answer) - ord("A") >= len(options):
            raise self.missing(
                f"{where}: 'answer' {row['answer']!r} is not the letter of one of its "
                f"{len(options)} options"
            )
        index = str(self._field(row, "index", where)).strip()
        metadata = {"category": str(self._field(row, "category", where)), "index": index}
        metadata["raw_question"] = str(self._field(row, "question", where))
        if row.get("cycle_category") not in (None, ""):
            metadata["cycle_category"] = str(row["cycle_category"])
        return Task(
            id=index,
            question=_prompt(str(self._field(row, "question", where)).strip(), options),
            answer=answer,
            answer_type="multiple_choice",
            options=options,
            metadata=metadata,
        )

    def judge_prompt(self, task: Task, response: str) -> str | None:
        """HR-Bench's own judge question (``hrbench/vlmeval/dataset/utils/hrbench.py``)."""
        if task.answer is None or not task.options:
            return None
        return official_judge_prompt(
            str(task.metadata.get("raw_question", "")), task.options, task.answer, response
        )

    def judge_verdict(self, reply: str) -> float | None:
        """As ``parse_score``: 1 when the reply starts with "yes", else 0."""
        return 1.0 if reply.strip().lower().startswith("yes") else 0.0

    def _write_image(self, cell: Any, where: str, path: Path, image_dir: Path) -> str:
        image = write_image(cell, path.parent, image_dir, self.name)  # cycles share one file
        if image is None:
            raise self.missing(f"{where}: 'image' is not a base64-encoded image")
        return image

    def _field(self, row: Mapping[str, Any], key: str, where: str) -> Any:
        value = row.get(key)
        if value is None or str(value).strip() == "":
            raise self.missing(f"{where} has no {key!r} value (columns: {sorted(row)})")
        return value


class HRBench4K(_HRBench):
    """HR-Bench 4K: 200 questions on 4K crops, each in four option rotations."""

    name: ClassVar[str] = "hrbench4k"
    size: ClassVar[str] = "4k"
    description: ClassVar[str] = "HR-Bench 4K: fine-grained perception in 4K images (MC)"
    layout: ClassVar[str] = (
        "  hr_bench_4k.tsv   VLMEvalKit TSV: index, question, A..D, answer (letter),\n"
        "                    category (single/cross), cycle_category, image (base64)\n"
        "  or: a parquet of the hrbench_version_split config (hrbench_4k split),\n"
        "      the same columns, e.g. hrbench_version_split/hrbench_4k-*.parquet"
    )
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 75.2,
        "Qwen2.5-VL-7B": 69.0,
        "GPT-4o": 65.0,
        "Qwen2.5-VL-72B": 79.4,
    }


class HRBench8K(_HRBench):
    """HR-Bench 8K: the same 200 questions on the full 8K images."""

    name: ClassVar[str] = "hrbench8k"
    size: ClassVar[str] = "8k"
    description: ClassVar[str] = "HR-Bench 8K: fine-grained perception in 8K images (MC)"
    layout: ClassVar[str] = HRBench4K.layout.replace("4k", "8k")
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 72.3,
        "Qwen2.5-VL-7B": 66.0,
        "Qwen2.5-VL-72B": 76.3,
    }


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def _options(row: Mapping[str, Any]) -> list[str]:
    """The option texts in columns A, B, ... up to the first missing or empty one."""
    options: list[str] = []
    for letter in string.ascii_uppercase:
        value = row.get(letter)
        if value is None or value != value or not str(value).strip():  # value != value: NaN
            break
        options.append(str(value).strip())
    return options


def official_judge_prompt(question: str, options: list[str], label: str, response: str) -> str:
    """HR-Bench's judge question, built as its ``build_prompt`` builds it."""
    listed = "".join(f"{string.ascii_uppercase[i]}. {text}\n" for i, text in enumerate(options))
    prompt = (
        f"{question}\nOptions:\n{listed}Please select the correct answer from the options above. \n"
    )
    truth = f"{label}. {options[ord(label) - ord('A')]}"
    return (
        f"Given the following question: {prompt}, the correct answer is: {truth}. Does the "
        f"following answer correctly answers the question, answer:{response}?"
    )


def _prompt(question: str, options: list[str]) -> str:
    """HR-Bench's question with its options, as its VLMEvalKit prompt lays them out."""
    listed = "\n".join(f"{string.ascii_uppercase[i]}. {text}" for i, text in enumerate(options))
    return (
        f"{question}\nOptions:\n{listed}\nPlease select the correct answer from the options above."
    )


def _tsv_rows(path: Path) -> Iterator[tuple[Mapping[str, Any], str, Path]]:
    import csv

    # base64 images are far longer than csv's default 128 KiB field limit
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, delimiter="\t")
        for row in reader:
            yield row, f"{path.name} line {reader.line_num}", path


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(HRBench4K)
    register(HRBench8K)
