"""We-Math (testmini): multi-step visual math problems and their one-step sub-problems.

Reads either published form of We-Math (Qiao et al., ACL 2025), Hugging Face dataset
``We-Math/We-Math`` (``testmini.json`` is also in the GitHub release ``data/``):

* ``testmini.json``: a list of 1,740 rows with ``ID``, ``split``, ``knowledge
  concept``, ``question``, ``option`` (one string, ``"A. 300, 400;B. ...; E. No
  correct answer"``), ``answer`` (the letter), ``image_path`` (such as
  ``2steps/image/1-1.png``, relative to the json; ``testmini.zip``), ``key``,
  ``question number`` and ``knowledge concept description``;
* ``data/testmini-*.parquet``: the same columns, ``image_path`` holding the image
  as ``{"bytes", "path"}``.

The 525 problems are grouped by ``ID``: a two-step problem (``2steps_<n>``) has rows
keyed ``2steps_1``, ``2steps_2`` (its one-step sub-problems) and ``2steps_multi`` (the
composite problem); three-step ones add ``3steps_3``. A task's id is ``<ID>-<key>``.
The category is the step level of ``evaluation/accuracy.py``: ``one-step`` (every
sub-problem, S1), ``two-step`` or ``three-step`` (the composite problems, S2 and S3).
With ``knowledge_structure_nodes.json`` beside the json, ``metadata["area"]`` holds
the knowledge concept's second-level area (``root2``, e.g. "Angles and Length").

Scoring is the official string match (``evaluation/four_dimensional_metrics.py``):
the text after the last ``Answer``, without ``<``, ``>``, ``:`` and ``.``, must start
with the answer letter (A-H). By default (``--option scorer=official``) it reads the
answer as given (the ``<answer>`` content, else the whole response), so ``B``, ``B.
400, 300`` and ``Answer: B`` count, while ``(B)`` and "The answer is B." do not,
exactly as officially. ``--option scorer=lenient`` reads codedance's extracted answer
instead (``\\boxed{B}`` and "The answer is B." count). :func:`wemath_metrics`
computes the official four-dimensional metrics from scored tasks; ``codedance eval``
prints them under "Benchmark metrics" (:meth:`WeMath.metrics`).

Tested on a subset of the authors' real records: tests/data/real/wemath/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from string import ascii_uppercase
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError, write_image_bytes
from codedance.evaluation.files import (
    data_files,
    find_file,
    json_list_rows,
    parquet_rows,
    read_json,
    required_field,
    safe_stem,
    schema_error,
)
from codedance.rewards.answers import answer_as_given, extract_answer
from codedance.runtime.types import Task, Trajectory

__all__ = ["WeMath", "WeMathMetrics", "official_letter", "parse_options", "wemath_metrics"]

_OPTION_LABEL = re.compile(r"(?:^|;)\s*([A-H])\.\s*")
_LETTERS = "ABCDEFGH"  # the letters the official scorer reads
_STRIPPED = re.compile(r"[><:.]")
_KEY = re.compile(r"^([23])steps_(\d|multi)$")
_LEVELS = {"2steps_multi": "two-step", "3steps_multi": "three-step"}
_Row = tuple[str, Mapping[str, Any], Path]  # where, row, folder its image paths start from


class WeMath(Benchmark):
    """We-Math testmini (1,740 rows in 525 problem groups), official letter match."""

    name = "wemath"
    description = "We-Math testmini: multi-step visual math with sub-problems, 4-D metrics"
    layout = (
        "  <data>/testmini.json                 (Hugging Face We-Math/We-Math)\n"
        "  <data>/2steps/image/, 3steps/image/  (testmini.zip)\n"
        "  <data>/knowledge_structure_nodes.json (optional: metadata['area'])\n"
        "or\n"
        "  <data>/data/testmini-*.parquet       (images embedded in image_path)"
    )
    source = "https://huggingface.co/datasets/We-Math/We-Math"
    grader: ClassVar[str] = "We-Math four_dimensional_metrics letter rule, on the answer as given"
    scorer_modes: ClassVar[tuple[str, ...]] = ("official", "lenient")
    graders: ClassVar[Mapping[str, str]] = {
        "lenient": "We-Math's letter rule on codedance's extracted answer"
    }
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 39.6,
        "Qwen2.5-VL-7B": 35.4,
        "GPT-4o": 44.2,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        root = self.data if self.data.is_dir() else self.data.parent
        areas = _areas(root / "knowledge_structure_nodes.json")
        for where, row, base in self._rows(root):
            task = self.row_task(where, partial(self._task, row, where, base, areas, image_dir))
            if task is not None:
                yield task

    def score(self, trajectory: Trajectory) -> float:
        """1.0 when the official rule reads the answer letter from the extracted answer."""
        task = trajectory.task
        if task.answer is None:
            return 0.0
        response = trajectory.answer or ""
        given = (
            extract_answer(response) if self.scorer_mode == "lenient" else answer_as_given(response)
        )
        letter = official_letter(given)
        return 1.0 if letter == task.answer else 0.0

    def metrics(self, scored: Sequence[tuple[Task, float]]) -> dict[str, Any]:
        """The official four-dimensional metrics (:func:`wemath_metrics`), in percent.

        Nothing when no problem was counted (no first sub-problem was scored), so a
        run of a few composite rows reports no misleading zero scores.
        """
        metrics = wemath_metrics(scored)
        return metrics.to_json() if metrics.problems else {}

    def _rows(self, root: Path) -> Iterator[_Row]:
        parquet = data_files(self.data, ("data/testmini-*.parquet",))
        if parquet:
            for path in parquet:
                for where, row in parquet_rows(path, self.name):
                    yield where, row, root
            return
        listing = self.data if self.data.suffix == ".json" else root / "testmini.json"
        if not listing.is_file():
            raise self.missing("no testmini.json and no data/testmini-*.parquet found")
        for where, row in json_list_rows(listing, _bad_row, items="rows"):
            yield where, row, listing.parent

    def _task(
        self,
        row: Mapping[str, Any],
        where: str,
        base: Path,
        areas: Mapping[str, str],
        image_dir: Path,
    ) -> Task:
        group = required_field(row, "ID", where, _bad_row)
        key = required_field(row, "key", where, _bad_row)
        if _KEY.match(key) is None:
            raise _bad_row(where, f"key {key!r} is not like '2steps_1' or '3steps_multi'")
        option = required_field(row, "option", where, _bad_row)
        options = _options_or_none(option)
        answer = required_field(row, "answer", where, _bad_row).strip()
        letters = ascii_uppercase[: len(options)] if options else _LETTERS
        if len(answer) != 1 or answer not in letters:
            raise _bad_row(where, f"answer {answer!r} is not the letter of one of {option!r}")
        task_id = f"{group}-{key}"
        question = required_field(row, "question", where, _bad_row)
        if options:
            lines = "\n".join(f"{ascii_uppercase[i]}. {text}" for i, text in enumerate(options))
        else:  # as published: the official scorer reads only the answer letter
            lines = option.strip()
        concept = row.get("knowledge concept")
        return Task(
            id=task_id,
            question=f"{question}\nOptions:\n{lines}",
            images=[self._image(row.get("image_path"), task_id, where, base, image_dir)],
            answer=answer,
            answer_type="multiple_choice",
            options=options,
            metadata={
                "category": _LEVELS.get(key, "one-step"),
                "ID": group,
                "key": key,
                "question_number": row.get("question number"),
                "knowledge_concept": concept,
                "area": areas.get(str(concept)),
                "options_as_published": options is None,
            },
        )

    def _image(self, image: Any, task_id: str, where: str, base: Path, image_dir: Path) -> str:
        if isinstance(image, Mapping):
            if image.get("bytes"):
                return write_image_bytes(image_dir, image["bytes"], safe_stem(f"wemath-{task_id}"))
            image = image.get("path")
        if not image:
            raise _bad_row(where, "no image_path")
        found = find_file(str(image), (base, self.data))
        if found is None:
            raise self.missing(f"image {image!r} of {where} not found (unzip testmini.zip there)")
        return str(found)


def _options_or_none(option: str) -> list[str] | None:
    """:func:`parse_options`, or ``None`` for the rows whose string breaks the schema."""
    try:
        return parse_options(option)
    except BenchmarkDataError:
        return None


def parse_options(option: str, where: str = "option") -> list[str]:
    """The option texts of We-Math's one-string ``option`` field, in letter order.

    A full-width full stop (U+FF0E) after a label reads as ``.``. Eleven rows of the real
    testmini.json break the schema further (a missing ``;``, a stray ``;C.;`` inside
    an option's text, labels jumping from C to F); this raises for them, and the
    loader then shows their ``option`` string as published and scores them by the
    answer letter alone, as the official scorer (which never parses options) does.
    """
    parts = _OPTION_LABEL.split(option.replace("\uff0e", ".").strip())
    letters, texts = parts[1::2], [text.strip() for text in parts[2::2]]
    if parts[0].strip() or not letters or "".join(letters) != ascii_uppercase[: len(letters)]:
        raise _bad_row(where, f"option {option!r} is not 'A. ...;B. ...' with letters from A")
    return texts


def official_letter(response: str) -> str | None:
    """The letter the official scorer reads: after the last ``Answer``, ``<>:.`` removed."""
    tail = _STRIPPED.sub("", response.split("Answer")[-1].strip()).strip()
    return tail[0] if tail and tail[0] in "ABCDEFGH" else None


# -- the four-dimensional metrics ----------------------------------------------------


@dataclass(frozen=True)
class WeMathMetrics:
    """Counts of the official four dimensions over composite problems, and accuracies.

    IK (insufficient knowledge): a sub-problem wrong and the composite wrong. IG
    (inadequate generalization): all sub-problems right, the composite wrong. CM
    (complete mastery): the composite right with all (strict) or any (loose)
    sub-problems right. RM (rote memorization): the composite right with any
    (strict) or all (loose) sub-problems wrong.
    """

    problems: int
    insufficient_knowledge: int
    inadequate_generalization: int
    complete_mastery_strict: int
    complete_mastery_loose: int
    rote_memorization_strict: int
    rote_memorization_loose: int
    one_step: float | None
    two_step: float | None
    three_step: float | None

    @property
    def score_strict(self) -> float:
        """(n - 0.5 IG - RM_strict - IK) / n, the leaderboard's "Score (Strict)"."""
        return self._score(self.rote_memorization_strict)

    @property
    def score_loose(self) -> float:
        """(n - 0.5 IG - RM_loose - IK) / n, the leaderboard's "Score (Loose)"."""
        return self._score(self.rote_memorization_loose)

    def _score(self, rote: int) -> float:
        lost = 0.5 * self.inadequate_generalization + rote + self.insufficient_knowledge
        return (self.problems - lost) / self.problems if self.problems else 0.0

    def rates(self) -> dict[str, float | None]:
        """IK, IG and CM over all problems; RM over the problems whose composite is right."""
        n = self.problems or None
        return {
            "IK": _ratio(self.insufficient_knowledge, n),
            "IG": _ratio(self.inadequate_generalization, n),
            "CM_strict": _ratio(self.complete_mastery_strict, n),
            "CM_loose": _ratio(self.complete_mastery_loose, n),
            "RM_strict": _ratio(
                self.rote_memorization_strict,
                self.complete_mastery_strict + self.rote_memorization_strict,
            ),
            "RM_loose": _ratio(
                self.rote_memorization_loose,
                self.complete_mastery_loose + self.rote_memorization_loose,
            ),
        }

    def to_json(self) -> dict[str, Any]:
        """Scores, rates and accuracies in percent (two decimals), with the raw counts."""
        percent = {
            "score_strict": self.score_strict,
            "score_loose": self.score_loose,
            **{f"{name}_rate": value for name, value in self.rates().items()},
            "one_step": self.one_step,
            "two_step": self.two_step,
            "three_step": self.three_step,
        }
        counts = {
            "problems": self.problems,
            "IK": self.insufficient_knowledge,
            "IG": self.inadequate_generalization,
            "CM_strict": self.complete_mastery_strict,
            "CM_loose": self.complete_mastery_loose,
            "RM_strict": self.rote_memorization_strict,
            "RM_loose": self.rote_memorization_loose,
        }
        rounded = {k: None if v is None else round(100 * v, 2) for k, v in percent.items()}
        return {**rounded, "counts": counts}


def wemath_metrics(results: Iterable[tuple[Task, float]]) -> WeMathMetrics:
    """The official four-dimensional metrics of scored We-Math tasks.

    ``results`` pairs each task with its score, e.g.
    ``((t.task, bench.score(t)) for t in trajectories)``. As the official script
    (``four_dimensional_metrics.py`` and ``accuracy.py``), a problem counts when its
    first sub-problem was scored; a missing sub-problem or composite is neither right
    nor wrong. The official script divides by 525, the number of problems in the full
    testmini; here ``n`` is the number of problems counted, which is 525 there too.
    """
    groups: dict[tuple[int, str], dict[str, bool]] = defaultdict(dict)
    for task, score in results:
        key = str(task.metadata.get("key"))
        found = _KEY.match(key)
        if found is None:
            raise ValueError(f"task {task.id!r} has key {key!r}: not a We-Math task")
        groups[(int(found.group(1)), str(task.metadata["ID"]))][found.group(2)] = score >= 1.0
    counts = _Counts()
    for (steps, _), outcome in groups.items():
        if "1" in outcome:
            counts.add(
                steps, [outcome.get(str(i)) for i in range(1, steps + 1)], outcome.get("multi")
            )
    return counts.metrics()


class _Counts:
    """Accumulates the official filters (``calculate_metrics``) over problem groups."""

    def __init__(self) -> None:
        self.tally: dict[str, int] = defaultdict(int)
        self.singles: list[bool] = []
        self.composites: dict[int, list[bool]] = {2: [], 3: []}

    def add(self, steps: int, singles: list[bool | None], composite: bool | None) -> None:
        self.tally["problems"] += 1
        self.singles += [s for s in singles if s is not None]
        if composite is None:
            return
        self.composites[steps].append(composite)
        all_right = all(s is True for s in singles)
        any_wrong = any(s is False for s in singles)
        if composite:
            self.tally["CM_strict"] += all_right
            self.tally["CM_loose"] += any(s is True for s in singles)
            self.tally["RM_strict"] += any_wrong
            self.tally["RM_loose"] += all(s is False for s in singles)
        else:
            self.tally["IG"] += all_right
            self.tally["IK"] += any_wrong

    def metrics(self) -> WeMathMetrics:
        t = self.tally
        return WeMathMetrics(
            problems=t["problems"],
            insufficient_knowledge=t["IK"],
            inadequate_generalization=t["IG"],
            complete_mastery_strict=t["CM_strict"],
            complete_mastery_loose=t["CM_loose"],
            rote_memorization_strict=t["RM_strict"],
            rote_memorization_loose=t["RM_loose"],
            one_step=_mean(self.singles),
            two_step=_mean(self.composites[2]),
            three_step=_mean(self.composites[3]),
        )


def _ratio(part: int, whole: int | None) -> float | None:
    return part / whole if whole else None


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


# -- files ---------------------------------------------------------------------------


def _areas(path: Path) -> dict[str, str]:
    """Knowledge concept -> second-level area, from knowledge_structure_nodes.json."""
    if not path.is_file():
        return {}
    nodes = read_json(path, _bad_row)
    try:
        return {n["full node"].split("_")[-1]: n["full node"].split("_")[1] for n in nodes}
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise _bad_row(path.name, f"not a list of nodes with 'full node' ({error!r})") from error


_bad_row = schema_error("wemath", "We-Math", WeMath.source)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(WeMath)
