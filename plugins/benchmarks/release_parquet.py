"""Built-in plugin: the CodeDance release's eval parquet (``codedance-parquet``).

Format followed: what ``eval/eval.py`` of github.com/CodeDance-VL/CodeDance (commit
62f8c6f, 2026-02) reads with ``pd.read_parquet``, a verl-style parquet with

``images``
    a list of ``{"bytes", "path"}`` structs; the release sends only the first one
    (from ``path`` when ``bytes`` is empty), and so do we.
``extra_info``
    a struct with ``question`` and ``answer`` (other keys such as ``index`` and
    ``split`` are kept in the metadata). ``<image>`` is removed from the question,
    as the release does; we also strip the whitespace around it.
``data_source``
    the dataset's name; the release picks its scorer by it.

``--data`` is one parquet file or a folder searched for ``*.parquet``. Task ids are
``<file stem>-<row>`` (the row number is the release's ``index`` in its results);
the category for breakdowns is the ``data_source``.

Scoring deviates from the release, which grades with an LLM judge (Qwen2.5-72B)
or math-verify then the judge: we grade by rule, with ``score_answer`` of an answer
type chosen from ``data_source`` (:func:`answer_type_for`; the ``answer_type``
option overrides it). An inferred type that cannot read the reference (a ``count``
source whose answer is not a whole number) falls back to ``text`` and says so in
``metadata["answer_type_fallback"]``; an ``answer_type`` option that cannot read
it is an error naming the file and row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError
from codedance.evaluation.files import data_files, iter_parquet_rows, write_image
from codedance.runtime.types import Task

__all__ = ["ReleaseParquet", "answer_type_for", "register_benchmarks"]

#: ``data_source`` substrings (lower case) and the answer type they imply, first match wins.
SOURCE_TYPES: tuple[tuple[str, str], ...] = (
    ("math", "math"),  # mathvista, mathverse, mathvision, wemath, math_*
    ("thinklite", "math"),
    ("xince", "math"),
    ("vstar", "multiple_choice"),
    ("hrbench", "multiple_choice"),
    ("hr_bench", "multiple_choice"),
    ("count", "count"),  # countbench
    ("pixmo", "count"),
    ("chartqa", "chartqa"),
)


def answer_type_for(data_source: str) -> str:
    """The answer type a ``data_source`` name implies (:data:`SOURCE_TYPES`), else ``text``."""
    source = data_source.lower()
    return next((kind for part, kind in SOURCE_TYPES if part in source), "text")


class ReleaseParquet(Benchmark):
    """Any eval parquet in the CodeDance release's format, scored by rule."""

    name: ClassVar[str] = "codedance-parquet"
    description: ClassVar[str] = (
        "the CodeDance release's verl-style eval parquet (images, extra_info, data_source)"
    )
    layout: ClassVar[str] = (
        "  a *.parquet file, or a folder of them (searched recursively), with columns\n"
        "    images       list of {bytes, path}; the first is the task's image\n"
        "    extra_info   {question, answer, ...}; '<image>' is removed from the question\n"
        "    data_source  the dataset's name; picks the answer type\n"
        "  options: answer_type=TYPE overrides the type; data_source=NAME stands in\n"
        "  for a missing data_source column (default: the file's name)"
    )
    source: ClassVar[str] = (
        "the CodeDance release's eval files (github.com/CodeDance-VL/CodeDance, "
        "eval/eval.py --data_path, e.g. wemath_testmini.parquet) or any verl-style parquet"
    )

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        override = self._override()
        for path in self._files():
            stem = path.relative_to(self.data).with_suffix("") if self.data.is_dir() else None
            label = str(stem) if stem is not None else path.stem
            for number, row in enumerate(iter_parquet_rows(path, self.name)):
                where = f"{path.name} row {number}"
                build = partial(self._row_task, row, f"{label}-{number}", where, path, override)
                task = self.row_task(where, partial(build, image_dir))
                if task is not None:
                    task.metadata["row"] = number
                    yield task

    def _row_task(
        self,
        row: Mapping[str, Any],
        task_id: str,
        where: str,
        path: Path,
        override: str | None,
        image_dir: Path,
    ) -> Task:
        task = self._task(row, task_id, where, path, override)
        task.images = self._images(row, where, path, image_dir)
        return task

    def _files(self) -> list[Path]:
        files = data_files(self.data, ("**/*.parquet",))
        if not files:
            raise self.missing("no *.parquet file found")
        return files

    def _override(self) -> str | None:
        from codedance.rewards import ANSWER_TYPES

        value = self.options.get("answer_type")
        if value is None or str(value) in ANSWER_TYPES:
            return None if value is None else str(value)
        raise BenchmarkDataError(
            f"benchmark {self.name!r}: option answer_type={value!r} is not an answer type. "
            f"Fix: pass one of {', '.join(ANSWER_TYPES)}, e.g. --option answer_type=math."
        )

    def _task(
        self, row: Mapping[str, Any], task_id: str, where: str, path: Path, override: str | None
    ) -> Task:
        """One row as a Task (without its image, which :meth:`_images` writes)."""
        extra = row.get("extra_info")
        if not isinstance(extra, Mapping):
            raise self.missing(f"{where} has no 'extra_info' struct (columns: {sorted(row)})")
        question, answer = (self._text(extra, key, where) for key in ("question", "answer"))
        question = question.replace("<image>", "").strip()
        source = str(row.get("data_source") or self.options.get("data_source") or path.stem)
        answer_type, options, note = self._answer_type(question, answer, source, override, where)
        metadata: dict[str, Any] = {"category": source, "data_source": source, "file": path.name}
        metadata.update({k: v for k, v in extra.items() if k in ("index", "split")})
        if note:
            metadata["answer_type_fallback"] = note
        return Task(
            id=task_id,
            question=question,
            answer=answer,
            answer_type=answer_type,
            options=options,
            metadata=metadata,
        )

    def _text(self, extra: Mapping[str, Any], key: str, where: str) -> str:
        value = extra.get(key)
        if value is None or not str(value).strip():
            raise self.missing(f"{where}: extra_info has no {key!r} (keys: {sorted(extra)})")
        return str(value).strip()

    def _answer_type(
        self, question: str, answer: str, source: str, override: str | None, where: str
    ) -> tuple[str, list[str] | None, str | None]:
        """The answer type, the options parsed for multiple choice, and a fallback note."""
        from codedance.plugins.benchmarks.vstar import parse_options

        answer_type = override or answer_type_for(source)
        options = parse_options(question) if answer_type == "multiple_choice" else None
        if _reads(answer, answer_type, options):
            return answer_type, options, None
        if override is not None:
            raise self.missing(
                f"{where}: answer {answer!r} is not a valid {override!r} answer; "
                f"drop the answer_type option or pick another type"
            )
        return "text", None, f"{answer_type}: the reference {answer!r} is not one"

    def _images(self, row: Mapping[str, Any], where: str, path: Path, image_dir: Path) -> list[str]:
        cells = row.get("images")
        if isinstance(cells, bytes | str | Mapping):
            cells = [cells]
        if not cells:
            return []  # the release runs image-less rows too
        image = write_image(cells[0], path.parent, image_dir, path.stem)
        if image is None:
            raise self.missing(f"{where}: images[0] holds neither image bytes nor a readable path")
        return [image]


def _reads(answer: str, answer_type: str, options: list[str] | None) -> bool:
    """Whether ``score_answer`` can read ``answer`` as ``answer_type`` (math/text always can)."""
    from codedance.rewards import InvalidAnswerError, score_answer

    if answer_type in ("math", "text"):
        return True  # any non-empty reference; skips loading math-verify per row
    try:
        score_answer(answer, answer, answer_type, options=options)
    except InvalidAnswerError:
        return False
    return True


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(ReleaseParquet)
