"""Built-in plugin: the ``charxiv`` benchmark (CharXiv v1.0: charts from arXiv papers).

Reads the GitHub release (github.com/princeton-nlp/CharXiv) as published:
``data/reasoning_<split>.json`` (figure id -> ``figure_id``, ``query``, ``answer``,
``inst_category`` 1-4, ``qa_source``), ``data/descriptive_<split>.json`` (figure id ->
``subplot_loc``, ``qids``, ``answers``, ...), the optional ``data/image_metadata_<split>.json``
(subject ``category``, ``year``) and ``images/<figure_id>.jpg`` (images.zip of the
Hugging Face dataset ``princeton-nlp/CharXiv``). Test answers are ``null``: no answer.

CodeDance does not say which subset it reports; ``subset`` defaults to ``reasoning``
(1,000 val questions; Qwen2.5-VL-7B's published CharXiv number is the reasoning
score); ``--option subset=descriptive`` gives the 4,000 descriptive ones. Questions are
built as CharXiv's ``src/*_utils.py`` builds them: the question, then the official
instructions of its answer type (reasoning) or template (descriptive, the subplot
named from ``subplot_loc``), indentation normalised. Ids are the official response
keys ``<figure_id>`` and ``<figure_id>_<i>``. Categories: the reasoning answer types
(Text-in-Chart, ...) or the descriptive groups (Information Extraction, ...).

Scoring: the official grader is an LLM (GPT-4o prompted with a rubric per answer
kind). By default a rule-based stand-in takes its place, and the report says so
(grader below); it gives the rubrics' own scores on all 27 of their worked examples
(tests/test_bench_charxiv_rubric.py). The answer is extracted by rule (``<answer>``,
``\\boxed``, "the answer is"; an unmarked response also after its last " is ") and
judged by the rule each grading rubric states:

- numbers (Number-in-Chart/-General; descriptive counts and differences): equal in
  value in any notation (``0.01``, ``1e-2``, ``10^-2``), up to float noise only, as
  the rubric says "exactly equal in values";
- text-in-chart terms: equal after normalising case, LaTeX markup (``$``, ``\\``,
  braces), Greek letters (the letter or its name) and enclosing brackets (``(b)`` =
  ``b``), sub- and superscripts in either order (``A_v^t`` = ``A^t_v``);
  comma-separated terms in any order;
- text-in-general and trends: the same, or equal after SQuAD normalisation; a trend
  by its sequence of directions ("move up and stay constant" = "increases then
  stabilizes"); other paraphrases score 0 (the GPT judge's "same semantic meaning");
- descriptive titles, labels and ticks: the term rule, or equal numbers; legend
  names: terms in the same order; "do lines intersect": yes/no; layout: "n by m";
- a gold "Not Applicable" needs a response saying so, or saying the thing is absent
  ("There is no title.", "There are no lines in the plot.").

Tested on a subset of the authors' real records: tests/data/real/charxiv/ (SOURCES.md
names the repository, commit and cut; tests/test_bench_real.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError
from codedance.evaluation.files import find_file, read_json
from codedance.plugins.benchmarks.charxiv_judge import canon, judge, read_number
from codedance.plugins.benchmarks.charxiv_rubric import (
    answer_candidates,
    grading_prompt,
    grading_verdict,
)
from codedance.runtime.types import Task, Trajectory

__all__ = ["CharXivBenchmark", "judge", "register_benchmarks"]

SUBSETS = ("reasoning", "descriptive")
SPLITS = ("val", "test")
REASONING_CATEGORIES = {
    1: "Text-in-Chart",
    2: "Text-in-General",
    3: "Number-in-Chart",
    4: "Number-in-General",
}
_META = {"subject": "category", "year": "year"}  # task metadata <- image_metadata fields
_Build = Callable[[Mapping[str, Any], Path, str], list[Task]]  # one figure's entry -> its tasks
_REASONING_RULES = {1: "terms", 2: "phrase", 3: "number", 4: "number"}
_REASONING_INSTRUCTIONS = {
    1: (
        "* Your final answer must be grounded to some text that is explicitly written and "
        "relevant to the question in the chart.",
        "* If you need to answer multiple terms, separate them with commas.",
        "* Unless specified in the question (such as answering with a letter), you are required "
        "to answer the full names of subplots and/or labels by default.",
    ),
    2: (
        "* If there are options in the question, your final answer must conform to one of the "
        "options.",
        "* If there are additional instructions in the question, follow them accordingly.",
        "* If there are neither options nor additional instructions, you are allowed to respond "
        "with a short phrase only.",
    ),
    3: (
        "* Your final answer must be grounded to a number that is exlicitly written and relevant "
        "to the question in the chart, even if it's an approximate value.",
        "* You are allowed to extract numbers within some text when needed.",
    ),
}
_NA = "answer 'Not Applicable'."
_NA2 = 'answer "Not Applicable".'
_XAXIS = (
    "including the case when x-axis is shared across multiple subplots. When the x-axis is "
    "present on both the top and bottom of the plot, answer based on the axis at the bottom. "
    "Ignore units or scales that are written separately from the tick, such as units and "
    "scales from the axis label or the corner of the plot."
)
_YAXIS = (  # sic: "based on", without "answer", as in CharXiv's templates 6 and 7
    "including the case when y-axis is shared across multiple subplots. When the y-axis is "
    "present on both the left and right of the plot, based on the axis at the left. "
    "Ignore units or scales that are written separately from the tick, such as units and "
    "scales from the axis label or the corner of the plot."
)
_DIFF_NA = (
    "* If the plot does not have an explicit {0}-axis tick value, or if the tick values are not "
    "numerical, or if the difference is not constant between all consecutive tick values, " + _NA2
)
_LINES_NA = "* If the plot does not contain any lines or is not considered a line plot, " + _NA2
_LEGEND_NA = (
    "* If the plot does not have a legend or no legend is not considered relevant to this plot, "
    + _NA2
)
_COLORBAR_NA = (
    "* If the plot does not have an explicit colorbar-based continuous legend or the legend is "
    "not considered relevant to this subplot, " + _NA2
)
_IGNORE_GRID = "Ignore grid lines, tick marks, and any vertical or horizontal auxiliary lines."
#: Descriptive templates by question id: (question, instruction lines, rule, category).
_DESCRIPTIVE: dict[int, tuple[str, tuple[str, ...], str, str]] = {
    1: ("what is its title?", (
        "* Your final answer should be the most relevant title of the plot that is explicitly "
        "written.",
        "* If the plot does not have an explicit title or contains only a letter, " + _NA,
    ), "term", "Information Extraction"),
    2: ("what is the label of the x-axis?", (
        "* Your final answer should be the label of the x-axis that is explicitly written, "
        "including the case when x-axis is shared across multiple subplots. When the x-axis is "
        "present on both the top and bottom of the plot, answer the label of the x-axis at the "
        "bottom.",
        "* If the plot does not have an explicit x-axis label, " + _NA,
    ), "term", "Information Extraction"),
    3: ("what is the label of the y-axis?", (
        "* Your final answer should be the label of the y-axis that is explicitly written, "
        "including the case when y-axis is shared across multiple subplots. When the y-axis is "
        "present on both the left and right of the plot, answer the label of the y-axis at the "
        "left.",
        "* If the plot does not have an explicit y-axis label, " + _NA,
    ), "term", "Information Extraction"),
    4: ("what is the leftmost labeled tick on the x-axis?", (
        "* Your final answer should be the tick value on the x-axis that is explicitly written, "
        + _XAXIS,
    ), "term", "Information Extraction"),
    5: ("what is the rightmost labeled tick on the x-axis?", (
        "* Your final answer should be the tick value on the x-axis that is explicitly written, "
        + _XAXIS,
    ), "term", "Information Extraction"),
    6: ("what is the spatially lowest labeled tick on the y-axis?", (
        "* Your final answer should be the tick value on the y-axis that is explicitly written, "
        + _YAXIS,
    ), "term", "Information Extraction"),
    7: ("what is the spatially highest labeled tick on the y-axis?", (
        "* Your final answer should be the tick value on the y-axis that is explicitly written, "
        + _YAXIS,
    ), "term", "Information Extraction"),
    8: ("what is difference between consecutive numerical tick values on the x-axis?", (
        "* Your final answer should be the difference between consecutive numerical tick values "
        "of the x-axis, " + _XAXIS,
        _DIFF_NA.format("x"),
    ), "number", "Enumeration"),
    9: ("what is difference between consecutive numerical tick values on the y-axis?", (
        "* Your final answer should be the difference between consecutive numerical tick values "
        "of the y-axis, " + _YAXIS.replace("based on the axis", "answer based on the axis"),
        _DIFF_NA.format("y"),
    ), "number", "Enumeration"),
    10: ("how many lines are there?", (
        "* Your final answer should be the number of lines in the plot. " + _IGNORE_GRID,
        _LINES_NA,
    ), "number", "Counting"),
    11: ("do any lines intersect?", (
        '* Your final answer should be "Yes" if any lines intersect, and "No" otherwise. '
        + _IGNORE_GRID,
        _LINES_NA,
    ), "yes_no", "Pattern Recognition"),
    12: ("how many discrete labels are there in the legend?", (
        "* Your final answer should account for only labels relevant to the plot in the legend, "
        "even if the legend is located outside the plot.",
        _LEGEND_NA,
    ), "number", "Counting"),
    13: ("what are the names of the labels in the legend?", (
        "* You should write down the labels from top to bottom, then from left to right and "
        "separate the labels with commas. Your final answer should account for only labels "
        "relevant to the plot in the legend, even if the legend is located outside the plot.",
        _LEGEND_NA,
    ), "ordered_terms", "Enumeration"),
    14: ("what is the difference between the maximum and minimum values of the tick labels on "
         "the continuous legend (i.e., colorbar)?", (
        "* You should remove the percentage sign (if any) in your answer.",
        _COLORBAR_NA,
    ), "number", "Enumeration"),
    15: ("what is the maximum value of the tick labels on the continuous legend (i.e., "
         "colorbar)?", (
        "* You should remove the percentage sign (if any) in your answer.",
        _COLORBAR_NA,
    ), "number", "Enumeration"),
    16: ("what is the general trend of data from left to right?", (
        '* Your final answer should be within a few words, such as "increases", "increases '
        'then stabilizes".',
    ), "phrase", "Pattern Recognition"),
    17: ("What is the total number of explicitly labeled ticks across all axes?", (
        "* Your final answer should be the total number of explicitly labeled ticks across all "
        "axes, including the case when any axis is shared across multiple subplots.",
    ), "number", "Compositionality"),
    18: ("What is the layout of the subplots?", (
        '* Your final answer should follow "n by m" format, where n is the number of rows and m '
        "is the number of columns.",
        '* If the plot does not contain subplots, answer "1 by 1".',
    ), "layout", "Pattern Recognition"),
    19: ("What is the number of subplots?", (
        "* Your final answer should be the total number of subplots in the plot.",
        '* If the plot does not contain subplots, answer "1".',
    ), "number", "Counting"),
}  # fmt: skip


class CharXivBenchmark(Benchmark):
    """CharXiv: reasoning (default) or descriptive questions about scientific charts."""

    name: ClassVar[str] = "charxiv"
    description: ClassVar[str] = (
        "CharXiv val: arXiv charts; reasoning (default, 1,000) or descriptive (4,000) questions"
    )
    layout: ClassVar[str] = (
        "  data/reasoning_val.json, data/descriptive_val.json (optional\n"
        "  data/image_metadata_val.json) and images/<figure_id>.jpg: the CharXiv repo with\n"
        "  images.zip unzipped into images/ (--option images=<dir> points elsewhere)"
    )
    source: ClassVar[str] = (
        "https://github.com/princeton-nlp/CharXiv (images.zip from "
        "https://huggingface.co/datasets/princeton-nlp/CharXiv)"
    )
    reported: ClassVar[Mapping[str, float]] = {"CodeDance-7B": 44.1, "Qwen2.5-VL-7B": 42.1}
    grader: ClassVar[str] = (
        "rule-based stand-in for CharXiv's GPT-4o grader (its rubrics' rules; all 27 worked "
        "examples agree)"
    )

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        subset, split = self.choice("subset", SUBSETS), self.choice("split", SPLITS)
        path = self._json(f"{subset}_{split}.json")
        if path is None:
            raise self.missing(f"no data/{subset}_{split}.json found")
        entries = _load_json(path)
        meta_path = self._json(f"image_metadata_{split}.json")
        meta = {} if meta_path is None else _load_json(meta_path)
        build = _reasoning_tasks if subset == "reasoning" else _descriptive_tasks
        for key, entry in entries.items():
            where = f"{path.name} {key!r}"
            built = self.row_task(where, partial(self._figure, build, entry, path, key))
            for task in built or []:
                figure_meta = meta.get(key)
                if isinstance(figure_meta, dict):
                    task.metadata |= {k: figure_meta.get(v) for k, v in _META.items()}
                yield task

    def _figure(self, build: _Build, entry: Any, path: Path, key: str) -> list[Task]:
        """The tasks of one figure, its image found (or a BenchmarkDataError)."""
        figure = self._image(_figure_id(entry, path, key))
        tasks = build(entry, path, key)
        for task in tasks:
            task.images = [figure]
        return tasks

    def score(self, trajectory: Trajectory) -> float:
        """The rubric of the task's answer kind applied by rule (see the module docstring)."""
        from codedance.rewards.answers import extract

        task = trajectory.task
        if task.answer is None:
            return 0.0
        response = extract(trajectory.answer or "")
        rule = task.metadata["rule"]
        candidates = answer_candidates(response.text, marked=response.marked)
        right = any(judge(text, task.answer, rule, marked=response.marked) for text in candidates)
        return 1.0 if right else 0.0

    def judge_prompt(self, task: Task, response: str) -> str | None:
        """CharXiv's own GPT-4o grading query for ``response`` (``--judge``)."""
        if task.answer is None:
            return None
        return grading_prompt(task.metadata, task.answer, response)

    def judge_verdict(self, reply: str) -> float | None:
        return grading_verdict(reply)

    def _json(self, name: str) -> Path | None:
        return find_file(name, (self.data / "data", self.data))

    def _image(self, figure_id: int) -> str:
        folders = [Path(str(self.options["images"]))] if self.options.get("images") else []
        folders += [self.data / "images", self.data.parent / "images"]
        found = find_file(f"{figure_id}.jpg", folders)
        if found is None:
            raise self.missing(f"image images/{figure_id}.jpg not found (unzip images.zip there)")
        return str(found)


def _reasoning_tasks(entry: Mapping[str, Any], path: Path, key: str) -> list[Task]:
    query, answer, kind = _fields(entry, ("query", "answer", "inst_category"), path, key)
    if kind not in REASONING_CATEGORIES:
        raise _bad_entry(path, key, f"inst_category is {kind!r}, expected 1, 2, 3 or 4")
    if kind == 4:  # the official prompt states the answer's decimal places
        instructions: tuple[str, ...] = (_number_instruction(answer, path, key),)
    else:
        instructions = _REASONING_INSTRUCTIONS[kind]
    metadata = {"category": REASONING_CATEGORIES[kind], "inst_category": kind}
    metadata |= {"raw_question": query, "qa_source": entry.get("qa_source")}
    question = "\n".join((str(query), *instructions))
    return [_task(key, question, answer, _REASONING_RULES[kind], metadata)]


def _descriptive_tasks(entry: Mapping[str, Any], path: Path, key: str) -> list[Task]:
    qids, answers, loc = _fields(entry, ("qids", "answers", "subplot_loc"), path, key)
    if not isinstance(qids, list) or not isinstance(answers, list) or len(qids) != len(answers):
        raise _bad_entry(path, key, "qids and answers must be lists of the same length")
    tasks = []
    for index, (qid, answer) in enumerate(zip(qids, answers, strict=True)):
        if qid not in _DESCRIPTIVE:
            raise _bad_entry(path, key, f"question id {qid!r} is not a CharXiv template (1-19)")
        text, instructions, rule, category = _DESCRIPTIVE[qid]
        prefix = "" if qid in (18, 19) else _subplot_prefix(loc, path, key)
        metadata = {"category": category, "qid": qid, "subq_idx": index}
        question = "\n".join((prefix + text, *instructions))
        tasks.append(_task(f"{key}_{index}", question, answer, rule, metadata))
    return tasks


def _task(task_id: str, question: str, answer: Any, rule: str, metadata: dict[str, Any]) -> Task:
    """A task whose ``answer_type`` is what ``score_answer`` could also read the answer as."""
    gold = None if answer is None else str(answer)
    answer_type = "text"
    if gold is not None and rule == "number" and read_number(gold) is not None:
        answer_type = "number"
    elif gold is not None and rule == "yes_no" and canon(gold) in ("yes", "no"):
        answer_type = "yes_no"
    metadata["rule"] = rule
    return Task(task_id, question, answer=gold, answer_type=answer_type, metadata=metadata)


def _subplot_prefix(loc: Any, path: Path, key: str) -> str:
    if isinstance(loc, str):
        return f"For {loc}, "
    if isinstance(loc, list) and len(loc) == 2:
        if loc[0] == 0:
            return "For the current plot, "
        return f"For the subplot at row {loc[0]} and column {loc[1]}, "
    raise _bad_entry(path, key, f"subplot_loc is {loc!r}, expected [row, column] or a phrase")


def _number_instruction(answer: Any, path: Path, key: str) -> str:
    parts = str(answer or "0").split(".")  # the test split's answers are null
    if len(parts) > 2:
        raise _bad_entry(path, key, f"Number-in-General answer {answer!r} is not a number")
    if len(parts) == 1:
        return "* Your final answer must be an exact integer."
    return f"* Your final answer must be a number with {len(parts[1])} decimal places."


def _figure_id(entry: Any, path: Path, key: str) -> int:
    if not isinstance(entry, dict):
        raise _bad_entry(path, key, f"expected an object, got {entry!r:.60}")
    figure_id = entry.get("figure_id", key)
    try:
        return int(figure_id)
    except (TypeError, ValueError):
        raise _bad_entry(path, key, f"figure_id {figure_id!r} is not a number") from None


def _fields(entry: Mapping[str, Any], names: tuple[str, ...], path: Path, key: str) -> list[Any]:
    absent = [name for name in names if name not in entry]
    if absent:
        raise _bad_entry(path, key, f"missing field(s) {', '.join(absent)}")
    return [entry[name] for name in names]


def _load_json(path: Path) -> dict[str, Any]:
    data = read_json(path, lambda _, problem: _bad_entry(path, None, problem))
    if not isinstance(data, dict):
        raise _bad_entry(path, None, "expected an object keyed by figure id")
    return data


def _bad_entry(path: Path, key: str | None, what: str) -> BenchmarkDataError:
    where = str(path) if key is None else f"{path} entry {key!r}"
    return BenchmarkDataError(
        f"benchmark 'charxiv': {where}: {what}. Fix: pass the unmodified CharXiv release "
        f"({CharXivBenchmark.source}) with --data."
    )


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(CharXivBenchmark)
