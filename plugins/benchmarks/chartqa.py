"""Built-in plugin: the ``chartqa`` benchmark (ChartQA test, human and augmented questions).

Three published forms are read, exactly as released:

- the GitHub release (github.com/vis-nlp/ChartQA, ``ChartQA Dataset/``):
  ``test/test_human.json`` and ``test/test_augmented.json``, each a list of
  ``{"imgname", "query", "label"}``, with the charts in ``test/png/<imgname>``;
- the Hugging Face ``HuggingFaceM4/ChartQA`` parquet (``data/test-*.parquet``):
  ``image`` ({bytes, path}), ``query``, ``label`` (a list of one string) and
  ``human_or_machine`` (0 human, 1 augmented);
- the lmms-eval copy ``lmms-lab/ChartQA`` (``data/test-*.parquet``): ``image``,
  ``question``, ``answer`` and ``type`` (``human_test`` / ``augmented_test``).

Scoring (default, ``--option scorer=official``): ChartQA's relaxed accuracy exactly as
lmms-eval's ``relaxed_correctness`` (pix2struct's): numbers within 5% (a trailing ``%``
divides by 100), other answers equal up to case, applied to the answer as given
(:func:`~codedance.rewards.answers.answer_as_given`: the ``<answer>`` content, else the
whole response), so ``U.S.`` answers gold ``U.S.`` and ``No.`` does not answer ``No``.
``--option scorer=lenient`` first extracts the answer from prose ("The answer is
14.") and drops a trailing full stop (answer type ``chartqa``). The category is ``human`` or
``augmented``; the paper's single number is the mean over both (relaxed overall).
Task ids are ``<category>-<n>``, ``n`` counting rows of that category in file order
(ChartQA has no id field; one chart carries several questions). Option ``split``:
``test`` (default) or ``val``.

Tested on a subset of the authors' real records: tests/data/real/chartqa/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError
from codedance.evaluation.files import data_files, iter_parquet_rows, read_json, write_image
from codedance.rewards.answers import answer_as_given
from codedance.rewards.matching import relaxed_correctness
from codedance.runtime.types import Task, Trajectory

__all__ = ["ChartQABenchmark", "register_benchmarks"]

CATEGORIES = ("human", "augmented")
_LMMS_TYPES = {
    "human_test": "human",
    "augmented_test": "augmented",
    "human_val": "human",
    "augmented_val": "augmented",
}


class ChartQABenchmark(Benchmark):
    """ChartQA: questions about real-world charts, scored by relaxed accuracy."""

    name: ClassVar[str] = "chartqa"
    description: ClassVar[str] = (
        "ChartQA test: 2,500 chart questions (human + augmented), relaxed accuracy"
    )
    layout: ClassVar[str] = (
        "  GitHub release: ChartQA Dataset/test/test_human.json, test_augmented.json and\n"
        "    test/png/<imgname> (--data: the repo, 'ChartQA Dataset' or its test/ folder)\n"
        "  or Hugging Face parquet: data/test-*.parquet from HuggingFaceM4/ChartQA (image,\n"
        "    query, label, human_or_machine) or lmms-lab/ChartQA (image, question, answer, type)"
    )
    source: ClassVar[str] = (
        "https://github.com/vis-nlp/ChartQA or https://huggingface.co/datasets/HuggingFaceM4/ChartQA"
    )
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 87.5,
        "Qwen2.5-VL-7B": 86.3,
        "GPT-4o": 86.7,
        "DeepEyes-7B": 78.2,
    }

    grader: ClassVar[str] = "lmms-eval relaxed_correctness on the answer as given"
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "relaxed correctness on codedance's extracted answer (answer type chartqa)"
    }

    def score(self, trajectory: Trajectory) -> float:
        """Relaxed correctness of the answer as given (lenient: of the extracted answer)."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        if self.scorer_mode == "lenient":
            return super().score(trajectory)
        given = answer_as_given(trajectory.answer or "")
        return 1.0 if relaxed_correctness(task.answer, given) else 0.0

    @property
    def split(self) -> str:
        return self.choice("split", ("test", "val"))

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        folder = self._json_folder()
        if folder is not None:
            yield from self._json_tasks(folder)
            return
        files = self._parquet_files()
        if not files:
            raise self.missing(
                f"no {self.split}_human.json/{self.split}_augmented.json and no "
                f"{self.split}-*.parquet found"
            )
        counters = dict.fromkeys(CATEGORIES, 0)
        for path in files:
            for index, row in enumerate(iter_parquet_rows(path, self.name)):
                build = partial(self._parquet_task, row, path, index, counters, image_dir)
                task = self.row_task(f"{path.name} row {index}", build)
                if task is not None:
                    yield task

    # -- GitHub json ---------------------------------------------------------------

    def _json_folder(self) -> Path | None:
        """The folder holding ``<split>_human.json``, wherever under --data it sits."""
        split = self.split
        for base in (self.data, self.data / "ChartQA Dataset"):
            for folder in (base / split, base):
                if (folder / f"{split}_human.json").is_file():
                    return folder
        return None

    def _json_tasks(self, folder: Path) -> Iterator[Task]:
        for category in CATEGORIES:
            path = folder / f"{self.split}_{category}.json"
            if not path.is_file():
                raise self.missing(f"{path.name} not found next to {self.split}_human.json")
            for index, row in enumerate(_json_list(path)):
                build = partial(self._json_task, row, path, index, category)
                task = self.row_task(f"{path.name} item {index}", build)
                if task is not None:
                    yield task

    def _json_task(self, row: Any, path: Path, index: int, category: str) -> Task:
        fields = _fields(row, ("imgname", "query", "label"), path, index)
        image = path.parent / "png" / str(fields["imgname"])
        if not image.is_file():
            raise self.missing(
                f"image png/{fields['imgname']} of {path.name} row {index} not found"
            )
        answer = _answer(fields["label"], path, index)
        return _task(category, index, str(fields["query"]), answer, str(image), path)

    # -- Hugging Face parquet ------------------------------------------------------------

    def _parquet_files(self) -> list[Path]:
        pattern = f"{self.split}-*.parquet"
        return data_files(self.data, (pattern, f"data/{pattern}"))

    def _parquet_task(
        self, row: dict[str, Any], path: Path, index: int, counters: dict[str, int], image_dir: Path
    ) -> Task:
        if "human_or_machine" in row:  # HuggingFaceM4/ChartQA
            fields = _fields(row, ("image", "query", "label", "human_or_machine"), path, index)
            category = _m4_category(fields["human_or_machine"], path, index)
            question, label = fields["query"], fields["label"]
        else:  # lmms-lab/ChartQA
            fields = _fields(row, ("image", "question", "answer", "type"), path, index)
            category = _LMMS_TYPES.get(str(fields["type"]), "")
            if not category:
                raise _bad_row(path, index, f"unknown type {fields['type']!r}")
            question, label = fields["question"], fields["answer"]
        answer = _answer(label, path, index)
        stem = f"chartqa-{category}-{counters[category]}"
        image = write_image(fields["image"], path.parent, image_dir, stem)
        if image is None:
            raise _bad_row(path, index, "'image' holds no readable image ({bytes, path} struct)")
        task = _task(category, counters[category], str(question), answer, image, path)
        counters[category] += 1
        return task


def _task(category: str, index: int, question: str, answer: str, image: str, path: Path) -> Task:
    return Task(
        id=f"{category}-{index}",
        question=question,
        images=[image],
        answer=answer,
        answer_type="chartqa",
        metadata={"category": category, "source_file": path.name},
    )


def _json_list(path: Path) -> list[Any]:
    rows = read_json(path, lambda _, problem: _bad_row(path, None, problem))
    if not isinstance(rows, list):
        raise _bad_row(path, None, "the file is not a JSON list of questions")
    return rows


def _answer(label: Any, path: Path, index: int) -> str:
    """The gold answer: a string, or the HF form's list of one string."""
    if isinstance(label, list):
        if not label:
            raise _bad_row(path, index, "'label' is an empty list")
        label = label[0]
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        label = f"{label:g}" if isinstance(label, float) else str(label)
    if not isinstance(label, str) or not label.strip():
        raise _bad_row(path, index, f"the answer {label!r} is not a non-empty string")
    return label


def _m4_category(value: Any, path: Path, index: int) -> str:
    if value in (0, "human"):
        return "human"
    if value in (1, "machine"):
        return "augmented"
    raise _bad_row(path, index, f"human_or_machine is {value!r}, expected 0 (human) or 1")


def _fields(row: Any, names: tuple[str, ...], path: Path, index: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _bad_row(path, index, f"expected an object with {', '.join(names)}, got {row!r:.80}")
    absent = [name for name in names if row.get(name) is None]
    if absent:
        raise _bad_row(path, index, f"missing field(s) {', '.join(absent)}")
    return row


def _bad_row(path: Path, index: int | None, what: str) -> BenchmarkDataError:
    where = str(path) if index is None else f"{path} row {index}"
    return BenchmarkDataError(
        f"benchmark 'chartqa': {where}: {what}. Fix: pass the unmodified ChartQA release "
        f"({ChartQABenchmark.source}) with --data."
    )


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(ChartQABenchmark)
