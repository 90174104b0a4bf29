"""MathVerse (testmini): visual math problems in several text/vision versions.

Reads either published form of MathVerse (Zhang et al., ECCV 2024), from the Hugging
Face dataset ``AI4Math/MathVerse`` (the same files the GitHub release ``data/`` has):

* ``testmini.parquet``: one row per sample, the image embedded in ``image``
  (``{"bytes", "path"}``);
* ``testmini.json``: a list of samples whose ``image`` is a path such as
  ``images_version_1-4/image_685.png``, relative to the json (``images.zip``).

``testmini_text_only.{parquet,json}`` holds the "Text Only" version and is read
only when that version is asked for. Each sample has ``sample_index`` (the id),
``problem_index``, ``problem_version``, ``question``, ``answer``, ``question_type``
(``multi-choice`` or ``free-form``), ``metadata`` (``split``, ``source``,
``subject``, ``subfield``), ``query_wo``, ``query_cot`` and, since April 2024,
``question_for_eval``.

Options (``--option`` / ``options``):

``versions``
    the problem versions to load: a list, a comma-separated string, or ``all``
    (the five main versions). Default ``["Vision Only"]``, the version the
    CodeDance paper reports.
``prompt``
    the field used as the question: ``query_cot`` (default: the official prompt
    asking for reasoning, then the answer), ``query_wo`` (answer directly) or
    ``question`` (the bare question, empty for Vision Only).

Scoring: the official scorer has GPT judge the extracted answer against the
reference (``evaluation/score_answer_s2.py``), an LLM grader; a rule-based stand-in
takes its place and the report says so. It gives the judge prompt's own judgements
on its five worked examples (tests/test_bench_mathverse_rubric.py). Multiple-choice
samples whose answer is a letter are scored by option letter, as the question lists
it (``D:140°``) or not, or by option text when the question lists the options (under
``Choices:`` or inline, ``A. ... B. ...``); every other sample by math equivalence
(math-verify, then numbers, then text; :func:`codedance.rewards.score_answer` with
``math``), a labelled gold (``domain: ... and range: ...``) needing every part. The
few multiple-choice answers that are not one letter (``C\\nD``, ``False``, bearings)
are scored as math.

Tested on a subset of the authors' real records: tests/data/real/mathverse/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.errors import ConfigError
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, write_image_bytes
from codedance.evaluation.files import (
    find_file,
    first_file,
    json_list_rows,
    parquet_rows,
    required_field,
    safe_stem,
    schema_error,
)
from codedance.rewards.answers import extract_answer
from codedance.rewards.choices import letter_form
from codedance.rewards.matching import score_answer
from codedance.runtime.types import Task, Trajectory

__all__ = ["MAIN_VERSIONS", "PROMPTS", "VERSIONS", "MathVerse", "labelled_parts", "parse_choices"]

#: The five versions of testmini.{json,parquet}, from most text to most vision.
MAIN_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
#: Every version, "Text Only" (testmini_text_only.*) included.
VERSIONS = (*MAIN_VERSIONS, "Text Only")
#: The fields that can serve as the question (option ``prompt``).
PROMPTS = ("query_cot", "query_wo", "question")

# "A:40°", "A. 40°", "(A) 40°"; \uff1a is the full-width colon of some sources.
_JUDGEMENT = re.compile(r"(?:judgement\s*:\s*|^\s*)([01])\b", re.IGNORECASE | re.MULTILINE)
_INLINE_LABEL = re.compile(r"(?:(?<=[\s.])|^)([A-H])\.\s")
_LABELLED = re.compile(r"\b([A-Za-z]+)\s*:\s*(.+?)(?=\s+and\s+[A-Za-z]+\s*:|;|$)")
_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.\uff1a)]\s*(.*?)\s*$")
_Row = tuple[str, Mapping[str, Any], Path]  # where, row, folder its image paths start from


class MathVerse(Benchmark):
    """MathVerse testmini; ``options``: ``versions`` (default Vision Only) and ``prompt``."""

    grader: ClassVar[str] = (
        "rule-based stand-in for MathVerse's GPT judge (score_answer_s2.py): letters, then math "
        "equivalence"
    )

    name = "mathverse"
    description = (
        "MathVerse testmini: visual math across text/vision versions (default Vision Only)"
    )
    layout = (
        "  <data>/testmini.parquet             (Hugging Face AI4Math/MathVerse, images embedded)\n"
        "or\n"
        "  <data>/testmini.json                (list of samples)\n"
        "  <data>/images_version_1-4/, images_version_5/, images_version_6/  (images.zip)\n"
        "plus testmini_text_only.{parquet,json} for the 'Text Only' version"
    )
    source = "https://huggingface.co/datasets/AI4Math/MathVerse"
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 46.8,
        "Qwen2.5-VL-7B": 45.1,
        "DeepEyes-7B": 47.3,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        versions = self._versions()
        prompt = self._prompt()
        for stem in _stems(versions):
            for where, row, base in self._rows(stem):
                if row.get("problem_version") in versions:
                    build = partial(self._task, row, where, base, prompt, image_dir)
                    task = self.row_task(where, build)
                    if task is not None:
                        yield task

    def score(self, trajectory: Trajectory) -> float:
        """Letter or option text; math equivalence; a labelled gold needs every part.

        A gold such as ``domain: [-4, 0) and range: (-3, 1]`` is right only when the
        answer gives each labelled part equivalently (MathVerse's judge prompt scores
        "Range: (-4, 1]" 0 for it).
        """
        task = trajectory.task
        parts = labelled_parts(task.answer or "") if task.answer_type == "math" else {}
        if len(parts) < 2:
            return super().score(trajectory)
        given = labelled_parts(extract_answer(trajectory.answer or ""))
        if given.keys() != parts.keys():
            return 0.0
        same = all(score_answer(given[k], parts[k], "math") == 1.0 for k in parts)
        return 1.0 if same else 0.0

    def judge_prompt(self, task: Task, response: str) -> str | None:
        """MathVerse's own scoring prompt (``demo_prompt_score``) for the extracted answer.

        Officially GPT first extracts the answer (step 1); codedance's extraction
        (``<answer>``, ``\\boxed``, "the answer is") takes that step's place.
        """
        from codedance.plugins.benchmarks.judge_prompts import MATHVERSE_SCORE_PROMPT

        if task.answer is None:
            return None
        question = task.metadata.get("question_for_eval") or task.metadata.get("raw_question", "")
        return MATHVERSE_SCORE_PROMPT.format(
            question=question, gt=task.answer, extraction=extract_answer(response)
        )

    def judge_verdict(self, reply: str) -> float | None:
        """The 0 or 1 of "Judgement: 1" (the prompt's own answer form), or a lone digit."""
        found = _JUDGEMENT.findall(reply)
        return float(found[-1]) if found else None

    def _versions(self) -> set[str]:
        wanted = self.options.get("versions", ["Vision Only"])
        if isinstance(wanted, str):
            wanted = MAIN_VERSIONS if wanted.strip().lower() == "all" else wanted.split(",")
        by_lower = {version.lower(): version for version in VERSIONS}
        chosen = {by_lower.get(str(v).strip().lower(), str(v)) for v in wanted}
        unknown = sorted(chosen - set(VERSIONS))
        if unknown or not chosen:
            raise ConfigError(
                f"benchmark 'mathverse': unknown versions {unknown or list(wanted)}; choose from "
                f"{', '.join(VERSIONS)} (or 'all'), e.g. versions='Vision Only'."
            )
        return chosen

    def _prompt(self) -> str:
        prompt = str(self.options.get("prompt", "query_cot"))
        if prompt not in PROMPTS:
            raise ConfigError(
                f"benchmark 'mathverse': prompt {prompt!r} is not one of {', '.join(PROMPTS)}."
            )
        return prompt

    # -- files ------------------------------------------------------------------------

    def _rows(self, stem: str) -> Iterator[_Row]:
        root = self.data if self.data.is_dir() else self.data.parent
        names = (f"{stem}.parquet", f"{stem}.json")
        found = first_file(folder / name for folder in (root, root / "data") for name in names)
        if found is None:
            raise self.missing(f"no {stem}.parquet or {stem}.json found")
        if found.suffix == ".parquet":
            rows = parquet_rows(found, self.name)
        else:
            rows = json_list_rows(found, _bad_row, items="samples")
        for where, row in rows:
            yield where, row, found.parent

    # -- one row to one task ----------------------------------------------------------

    def _task(
        self, row: Mapping[str, Any], where: str, base: Path, prompt: str, image_dir: Path
    ) -> Task:
        sample = required_field(row, "sample_index", where, _bad_row)
        question = row.get(prompt)
        if question is None:
            raise _bad_row(where, f"missing field {prompt!r} (the prompt option)")
        answer, answer_type = _gold(row, where)
        options = _options(row, answer, answer_type)
        return Task(
            id=sample,
            question=str(question),
            images=self._images(row.get("image"), sample, where, base, image_dir),
            answer=answer,
            answer_type=answer_type,
            options=options,
            metadata=_metadata(row),
        )

    def _images(
        self, image: Any, sample: str, where: str, base: Path, image_dir: Path
    ) -> list[str]:
        if isinstance(image, Mapping):
            if image.get("bytes"):
                stem = safe_stem(f"mathverse-{sample}")
                return [write_image_bytes(image_dir, image["bytes"], stem)]
            image = image.get("path")
        if not image:
            return []  # Text Only samples have no image
        found = find_file(str(image), (base, base / "images"))
        if found is None:
            raise self.missing(f"image {image!r} of {where} not found (unzip images.zip there)")
        return [str(found)]


def parse_choices(question: str) -> list[str] | None:
    """The option texts listed after ``Choices:`` in ``question`` (``A:40°``), in order.

    ``None`` when the question lists none, or not as consecutive letters from A.
    """
    _, marker, tail = question.rpartition("Choices:")
    if not marker:
        return _inline_choices(question)
    lines = [_CHOICE_LINE.match(line) for line in tail.strip().splitlines() if line.strip()]
    if not lines or any(found is None for found in lines):
        return None
    letters = "".join(found.group(1) for found in lines if found)
    if letters != "ABCDEFGH"[: len(letters)]:
        return None
    return [found.group(2) for found in lines if found]


def _inline_choices(question: str) -> list[str] | None:
    """Options written on one line, ``...equation.A. x + y = 1 B. Can not determine.``."""
    labels = list(_INLINE_LABEL.finditer(question))
    if len(labels) < 2 or "".join(m.group(1) for m in labels) != "ABCDEFGH"[: len(labels)]:
        return None
    ends = [m.start() for m in labels[1:]] + [len(question)]
    return [question[m.end() : end].strip() for m, end in zip(labels, ends, strict=True)]


def labelled_parts(text: str) -> dict[str, str]:
    """``domain: [-4, 0) and range: (-3, 1]`` as ``{"domain": ..., "range": ...}``."""
    return {m.group(1).lower(): m.group(2).strip() for m in _LABELLED.finditer(text)}


def _stems(versions: set[str]) -> list[str]:
    stems = ["testmini"] if versions & set(MAIN_VERSIONS) else []
    return [*stems, "testmini_text_only"] if "Text Only" in versions else stems


def _gold(row: Mapping[str, Any], where: str) -> tuple[str | None, str]:
    answer = str(row.get("answer") or "").strip()
    question_type = row.get("question_type")
    if question_type not in ("multi-choice", "free-form"):
        raise _bad_row(where, f"question_type {question_type!r} is not multi-choice or free-form")
    if not answer:
        return None, "math"
    letter = letter_form(answer) if question_type == "multi-choice" else None
    return (letter, "multiple_choice") if letter else (answer, "math")


def _options(row: Mapping[str, Any], answer: str | None, answer_type: str) -> list[str] | None:
    """The options the question lists for a letter answer, if they include that letter."""
    if answer is None or answer_type != "multiple_choice":
        return None
    options = parse_choices(str(row.get("question") or ""))
    if options is None or ord(answer) - ord("A") >= len(options):
        return None  # a list parsed from the text that misses the answer is not trusted
    return options


def _metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    meta = row.get("metadata")
    meta = dict(meta) if isinstance(meta, Mapping) else {}  # a copy may carry it as text
    version = row.get("problem_version")
    subject = meta.get("subject")
    return {
        "category": f"{version} / {subject}",
        "problem_version": version,
        "problem_index": row.get("problem_index"),
        "subject": subject,
        "subfield": meta.get("subfield"),
        "source": meta.get("source"),
        "question_type": row.get("question_type"),
        "question_for_eval": row.get("question_for_eval"),
        "raw_question": row.get("question"),
    }


_bad_row = schema_error("mathverse", "MathVerse", MathVerse.source)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(MathVerse)
