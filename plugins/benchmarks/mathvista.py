"""MathVista (testmini): math reasoning in visual contexts, scored by the official rule.

Reads either published form of MathVista (Lu et al., ICLR 2024):

* the Hugging Face dataset ``AI4Math/MathVista``: ``data/testmini-*.parquet``, one
  row per problem, the image embedded in ``decoded_image`` (``{"bytes", "path"}``)
  and the prompt in ``query``;
* the GitHub release (``lupantech/MathVista``, folder ``data/``): ``testmini.json``,
  a dict keyed by ``pid``, with images under ``images/`` (the dataset's
  ``images.zip``) and prompts in ``query.json``. Without ``query.json`` the prompt is
  built exactly as ``query.json`` holds it (``evaluation/build_query.py``, zero-shot:
  hint, question with unit, choices).

The question is the official ``query``, which already carries the hint and the
options. Multiple-choice answers become the option letter (``Task.answer``); the
official answer text stays in ``metadata["answer_text"]``.

Scoring follows ``evaluation/calculate_score.py``: the extraction goes through
``normalize_extracted_answer`` (a letter or option text becomes the option *text*,
anything else the most similar option by edit distance; integers are truncated with
``int(float(x))``; floats are rounded to ``precision`` decimals; lists are compared as
text) and is then compared with the answer string. Officially GPT extracts the answer
from the response first (``extract_answer.py``). By default (``--option
scorer=official``) the answer as given (the ``<answer>`` content, else the whole
response) is the extraction, as if GPT returned it verbatim: ``c``, ``21%`` or
``[2014,2016]`` are then judged exactly as calculate_score.py judges them. ``--option
scorer=lenient`` extracts by rule from free text instead
(:func:`extract_answer_rule_based`: "The answer is B", ``x = 5``, ``1,000 g``). One
deviation: an empty extraction scores 0, as with the official
``--ignore_empty_extractions``; by default the official scorer would map it to the
shortest option.

Tested on a subset of the authors' real records: tests/data/real/mathvista/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, write_image_bytes
from codedance.evaluation.files import (
    data_files,
    find_file,
    parquet_rows,
    read_json,
    required_field,
    safe_stem,
    schema_error,
)
from codedance.rewards.answers import answer_as_given, extract
from codedance.rewards.choices import letter_form, option_text
from codedance.rewards.numbers import pick_number
from codedance.runtime.types import Task, Trajectory

__all__ = [
    "TASK_ABBREVIATIONS",
    "MathVista",
    "build_query",
    "extract_answer_rule_based",
    "normalize_extracted_answer",
]

#: The leaderboard's short names of ``metadata.task``: the categories of breakdowns.
TASK_ABBREVIATIONS = {
    "figure question answering": "FQA",
    "geometry problem solving": "GPS",
    "math word problem": "MWP",
    "textbook question answering": "TQA",
    "visual question answering": "VQA",
}

#: The hint's wording per ``precision`` (MathVista uses 1 and 2 only).
_DECIMALS = {
    1: ("one decimal place", "1.2, 1.3, 1.4"),
    2: ("two decimal places", "1.23, 1.34, 1.45"),
}
_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")
_QUOTED_ANSWER = re.compile(r'The answer is "(.*)"\.')
_LOWER_LETTER = re.compile(r"[a-z]")
_WHOLE_LIST = re.compile(r"\[[^\[\]]*\]")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_NUMBER_TOKEN = re.compile(r"-?\d+(?:\.\d+)?")
_FREE_FORM_TYPES = ("integer", "float", "list")
_Row = tuple[str, Mapping[str, Any], Path]  # where, row, folder its image paths start from


class MathVista(Benchmark):
    """MathVista testmini (1,000 problems); ``options``: ``split`` (default ``testmini``)."""

    grader: ClassVar[str] = (
        "MathVista calculate_score.py (normalize_extracted_answer + safe_equal) on the answer "
        "as given, which stands for the GPT extraction"
    )
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "calculate_score.py on codedance's rule-based extraction from the response"
    }

    name = "mathvista"
    description = "MathVista testmini: math in visual contexts, official answer normalisation"
    layout = (
        "  <data>/data/testmini-*.parquet   (Hugging Face AI4Math/MathVista, images embedded)\n"
        "or\n"
        "  <data>/testmini.json             (GitHub lupantech/MathVista data/, keyed by pid)\n"
        "  <data>/query.json                (optional: the prompts; built when absent)\n"
        "  <data>/images/<pid>.jpg          (images.zip from the Hugging Face dataset)"
    )
    source = "https://huggingface.co/datasets/AI4Math/MathVista"
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 70.3,
        "Qwen2.5-VL-7B": 68.1,
        "GPT-4o": 63.4,
        "Qwen2.5-VL-72B": 74.8,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        split = str(self.options.get("split", "testmini"))
        files = data_files(self.data, (f"data/{split}-*.parquet", f"{split}-*.parquet"))
        root = self.data if self.data.is_dir() else self.data.parent
        rows = _parquet_rows(files, root, self.name) if files else self._json_rows(split)
        for where, row, base in rows:
            task = self.row_task(where, partial(self._task, row, where, base, image_dir))
            if task is not None:
                yield task

    def score(self, trajectory: Trajectory) -> float:
        """1.0 when the normalised extraction equals the official answer text."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        meta = task.metadata
        choices = task.options or []
        if self.scorer_mode == "official":
            extraction = _quick_extract(answer_as_given(trajectory.answer or "").strip())
        else:
            extraction = extract_answer_rule_based(
                trajectory.answer or "",
                meta["question_type"],
                meta["mathvista_answer_type"],
                choices,
            )
        prediction = normalize_extracted_answer(
            extraction,
            choices,
            meta["question_type"],
            meta["mathvista_answer_type"],
            meta["precision"],
        )
        return 1.0 if prediction == meta["answer_text"] else 0.0

    # -- finding and reading the files ----------------------------------------------

    def _json_rows(self, split: str) -> Iterator[_Row]:
        path = self._json_file(split)
        problems = read_json(path, _bad_row)
        if not isinstance(problems, dict):
            raise _bad_row(path.name, "the top level is not an object keyed by pid")
        query_file = path.with_name("query.json")
        queries = read_json(query_file, _bad_row) if query_file.is_file() else {}
        for pid, problem in problems.items():
            where = f"{path.name} entry {pid!r}"
            if not isinstance(problem, dict):
                raise _bad_row(where, "the entry is not an object")
            row = {"pid": pid, **problem}
            if pid in queries:
                row["query"] = queries[pid]
            yield where, row, path.parent

    def _json_file(self, split: str) -> Path:
        if self.data.is_file() and self.data.suffix == ".json":
            return self.data
        found = find_file(f"{split}.json", (self.data, self.data / "data"))
        if found is None:
            raise self.missing(f"no data/{split}-*.parquet and no {split}.json found")
        return found

    # -- one row to one task --------------------------------------------------------

    def _task(self, row: Mapping[str, Any], where: str, base: Path, image_dir: Path) -> Task:
        pid = required_field(row, "pid", where, _bad_row)
        question_type = required_field(row, "question_type", where, _bad_row)
        answer_type = required_field(row, "answer_type", where, _bad_row)
        choices = [str(c) for c in row.get("choices") or []]
        _check_types(question_type, answer_type, choices, where)
        answer_text = str(row.get("answer") or "")
        gold = _gold(answer_text, question_type, choices, where)
        required_field(row, "question", where, _bad_row)
        query = row.get("query") or build_query(row)
        return Task(
            id=pid,
            question=str(query),
            images=[self._image(row, pid, where, base, image_dir)],
            answer=gold,
            answer_type=_codedance_type(question_type, answer_type),
            options=choices or None,
            metadata=_metadata(row, question_type, answer_type, answer_text),
        )

    def _image(
        self, row: Mapping[str, Any], pid: str, where: str, base: Path, image_dir: Path
    ) -> str:
        embedded = row.get("decoded_image")
        if isinstance(embedded, Mapping) and embedded.get("bytes"):
            return write_image_bytes(image_dir, embedded["bytes"], safe_stem(f"mathvista-{pid}"))
        name = row.get("image") or (embedded or {}).get("path")
        if not name:
            raise _bad_row(where, "no image: neither decoded_image bytes nor an image path")
        found = find_file(str(name), (base, self.data, self.data / "data"))
        if found is None:
            raise self.missing(f"image {name!r} of {where} not found (unzip images.zip there)")
        return str(found)


def build_query(problem: Mapping[str, Any]) -> str:
    """The official zero-shot prompt, as ``query.json`` and the parquet ``query`` hold it."""
    question = f"Question: {problem['question']}"
    if problem.get("unit"):
        question += f" (Unit: {problem['unit']})"
    parts = [_hint(problem), question]
    choices = problem.get("choices") or []
    if choices:
        lines = [f"({chr(ord('A') + i)}) {choice}" for i, choice in enumerate(choices)]
        parts.append("Choices:\n" + "\n".join(lines))
    return "\n".join(parts).strip()  # build_query.py strips the query (5 testmini pids)


def _hint(problem: Mapping[str, Any]) -> str:
    if problem["question_type"] == "multi_choice":
        return (
            "Hint: Please answer the question and provide the correct option letter, "
            "e.g., A, B, C, D, at the end."
        )
    answer_type = problem["answer_type"]
    if answer_type == "integer":
        return (
            "Hint: Please answer the question requiring an integer answer and provide the "
            "final value, e.g., 1, 2, 3, at the end."
        )
    if answer_type == "float":
        precision = int(problem["precision"])
        places, examples = _DECIMALS.get(precision, (f"{precision} decimal places", "..."))
        return (
            f"Hint: Please answer the question requiring a floating-point number with {places} "
            f"and provide the final value, e.g., {examples}, at the end."
        )
    return (
        "Hint: Please answer the question requiring a Python list as an answer and provide "
        "the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end."
    )


# -- scoring ----------------------------------------------------------------------------


def extract_answer_rule_based(
    response: str, question_type: str, answer_type: str, choices: Sequence[str]
) -> str:
    """The answer in ``response``, in the form the official GPT extractor returns it.

    The official quick rules come first (``The answer is "..."``; the whole span is an
    option text, an integer or a float). Then, in place of GPT: for multiple choice
    the option letter the span names, or the option whose text it names, else the
    span; for numbers the number the span answers with (``"1,000 g"`` gives
    ``1000``); for lists the last ``[...]`` in the span, or its numbers, written
    ``[a, b]``.
    """
    quoted = _QUOTED_ANSWER.search(response)
    span = extract(quoted.group(1) if quoted else response)
    text = span.text
    if not text:
        return ""
    if question_type == "multi_choice":
        return _extract_choice(text, choices)
    if answer_type in ("integer", "float"):
        number = pick_number(text, marked=span.marked or quoted is not None)
        return "" if number is None else _number_text(number.value)
    if answer_type == "list":
        return _extract_list(text)
    return text


def _quick_extract(answer: str) -> str:
    """extract_answer.py's quick rule: ``The answer is "X".`` gives ``X``."""
    quoted = _QUOTED_ANSWER.search(answer)
    return quoted.group(1) if quoted else answer


def _extract_choice(text: str, choices: Sequence[str]) -> str:
    if text in choices or _LOWER_LETTER.fullmatch(text):
        return text  # as calculate_score.py: a lowercase "c" goes to the closest option text
    letter = letter_form(text) or option_text(text, choices)
    return letter if letter is not None else text


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _extract_list(text: str) -> str:
    if _WHOLE_LIST.fullmatch(text):
        return text  # compared verbatim, as calculate_score.py does ("[2014,2016]" is wrong)
    bracketed = _BRACKETS.findall(text)
    if bracketed:
        items = [item.strip().strip("'\"") for item in bracketed[-1].split(",")]
    else:
        items = _NUMBER_TOKEN.findall(text)
    items = [item for item in items if item]
    return "[" + ", ".join(items) + "]" if items else text


def normalize_extracted_answer(
    extraction: str,
    choices: Sequence[str],
    question_type: str,
    answer_type: str,
    precision: int | float | None,
) -> str | None:
    """The official ``normalize_extracted_answer``; ``None`` when nothing can be read.

    For multiple choice, a ``(X)`` inside the extraction is read as the letter X; a
    letter names its option; anything else becomes the option at the smallest
    Levenshtein distance (the first of ties). An empty extraction gives ``None``.
    """
    if question_type == "multi_choice":
        return _normalize_choice(str(extraction).strip(), list(choices))
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return None if precision is None else str(round(float(extraction), int(precision)))
    except (ValueError, OverflowError):
        return None
    return str(extraction)


def _normalize_choice(extraction: str, choices: list[str]) -> str | None:
    if not extraction or not choices:
        return None
    letters = _PAREN_LETTER.findall(extraction)
    if letters:
        extraction = letters[0].upper()
    sequential = [chr(ord("A") + i) for i in range(len(choices))]
    if extraction in sequential:
        return choices[sequential.index(extraction)]
    return min(choices, key=lambda choice: _levenshtein(extraction, choice))


def _levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), as python-Levenshtein's."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


# -- row helpers ------------------------------------------------------------------------


def _parquet_rows(files: Sequence[Path], base: Path, benchmark: str) -> Iterator[_Row]:
    for path in files:
        for where, row in parquet_rows(path, benchmark):
            yield where, row, base


def _check_types(question_type: str, answer_type: str, choices: list[str], where: str) -> None:
    if question_type == "multi_choice":
        if not choices:
            raise _bad_row(where, "question_type 'multi_choice' without choices")
    elif question_type != "free_form":
        raise _bad_row(where, f"question_type {question_type!r} is not multi_choice or free_form")
    elif answer_type not in _FREE_FORM_TYPES:
        raise _bad_row(where, f"answer_type {answer_type!r} is not one of {_FREE_FORM_TYPES}")


def _gold(answer: str, question_type: str, choices: list[str], where: str) -> str | None:
    if not answer:
        return None  # the test split publishes no answers
    if question_type != "multi_choice":
        return answer
    if answer not in choices:
        raise _bad_row(where, f"answer {answer!r} is not one of the choices {choices}")
    return chr(ord("A") + choices.index(answer))


def _codedance_type(question_type: str, answer_type: str) -> str:
    if question_type == "multi_choice":
        return "multiple_choice"
    return "text" if answer_type == "list" else "number"


def _metadata(
    row: Mapping[str, Any], question_type: str, answer_type: str, answer: str
) -> dict[str, Any]:
    meta = dict(row.get("metadata") or {})
    task = str(meta.get("task", ""))
    return {
        "category": TASK_ABBREVIATIONS.get(task, task or None),
        "task": task,
        "skills": list(meta.get("skills") or []),
        "context": meta.get("context"),
        "grade": meta.get("grade"),
        "source": meta.get("source"),
        "language": meta.get("language"),
        "vqa_category": meta.get("category"),
        "question_type": question_type,
        "mathvista_answer_type": answer_type,
        "precision": _precision(row.get("precision")),
        "unit": row.get("unit"),
        "answer_text": answer,
    }


def _precision(value: Any) -> int | None:
    """The number of decimals; the parquet stores it as a float, NaN when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


_bad_row = schema_error("mathvista", "MathVista", MathVista.source)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(MathVista)
