"""What CharXiv's grading rubrics accept that plain string rules miss (the GPT grader's part).

CharXiv's GPT-4o grader is prompted with a rubric and worked examples per answer kind
(``src/constants.py``). The rule-based stand-in in :mod:`charxiv` needs three more rules
to give the rubrics' own scores on all of their worked examples:

* **absence** answers "Not Applicable": "There is no title.", "There are no lines in
  the plot." (while "the final answer should be 0" does not);
* **sub- and superscripts in either order** are one term: ``A_v^t`` and ``A^t_v``;
* **trends** are compared by their sequence of directions: "the curves move up and
  stay constant" is "Increases then stabilizes", "Decreases" is not "Decreases then
  increases".

And a response that does not mark its answer ("The letter of the subplot ... is b.")
is also read after its last " is " (:func:`answer_candidates`).
"""

from __future__ import annotations

import re

__all__ = [
    "answer_candidates",
    "expresses_absence",
    "grading_prompt",
    "grading_verdict",
    "same_trend",
    "script_order",
    "trend",
]

_ABSENCE = re.compile(
    r"\bnot\s+applicable\b|^(?:n/?a|none)$|\bthere\s+(?:is|are)\s+no\b|\bno\s+(?:title|"
    r"labels?|legend|lines?|ticks?|colou?rbar|subplots?|values?)\b|\bdoes\s+not\s+(?:have|"
    r"exist|apply)\b|\bdoesn'?t\s+(?:have|exist|apply)\b"
)
_SCRIPTS = re.compile(r"(\^[^_^\s,]+)(_[^_^\s,]+)")
_MOVE = r"(?:move|moves|moving|go|goes|going)\s+"
_DIRECTIONS = (
    ("up", rf"increas\w*|ris(?:e|es|ing)|grow\w*|{_MOVE}up|upward\w*|climb\w*"),
    ("down", rf"decreas\w*|declin\w*|fall\w*|drop\w*|{_MOVE}down|downward\w*|reduc\w*"),
    ("flat", r"stabiliz\w*|stable|constant|flat\w*|plateau\w*|unchang\w*|stay\w*|steady"),
    ("wave", r"fluctuat\w*|oscillat\w*"),
)
_DIRECTION = re.compile("|".join(f"(?P<{name}>\\b(?:{words}))" for name, words in _DIRECTIONS))
_LAST_IS = re.compile(r".*\bis\s+(.+?)\.?\s*$", re.DOTALL)


def expresses_absence(canonical: str) -> bool:
    """Whether a (canonical, lowercased) response says the asked-for thing is not there."""
    return _ABSENCE.search(canonical) is not None


def script_order(canonical: str) -> str:
    """``x^t_v`` written ``x_v^t``: the subscript first, so both orders compare equal."""
    return _SCRIPTS.sub(r"\2\1", canonical)


def trend(text: str) -> list[str]:
    """The directions a trend phrase names, in order, repeats merged."""
    found = [m.lastgroup for m in _DIRECTION.finditer(text.lower()) if m.lastgroup]
    return [d for i, d in enumerate(found) if i == 0 or d != found[i - 1]]


def same_trend(prediction: str, answer: str) -> bool | None:
    """Equal trends, or ``None`` when the gold is not a trend phrase."""
    wanted = trend(answer)
    return None if not wanted else trend(prediction) == wanted


def answer_candidates(text: str, *, marked: bool) -> list[str]:
    """The response, and for an unmarked one also what follows its last " is "."""
    if marked:
        return [text]
    found = _LAST_IS.match(text.strip())
    tail = found.group(1).strip() if found else ""
    return [text, tail] if tail and tail != text else [text]


# -- the official GPT-4o grading prompt (``--judge``) ------------------------------------

_RUBRIC_BY_QID = {1: "title", 11: "bool", 13: "enum", 16: "trend", 18: "layout"}
_RUBRIC_BY_QID |= dict.fromkeys((2, 3, 4, 5, 6, 7), "ocr")
_RUBRIC_BY_QID |= dict.fromkeys((8, 9, 10, 12, 14, 15, 17, 19), "quant")
_SCORE = re.compile(r'"score(?:_T1)?"\s*:\s*"?([01])\b')


def grading_prompt(metadata: dict[str, object], answer: str, response: str) -> str | None:
    """CharXiv's grading query for one response, built as ``src/*_utils.py`` builds it.

    Reasoning: the prefix, then the rules and examples of the question's
    ``inst_category`` with the question, ground truth and response filled in.
    Descriptive: a batch of one (``T1``) under the template's overarching question,
    with the rubric of its ``qid``.
    """
    from codedance.plugins.benchmarks import judge_prompts as prompts

    if "inst_category" in metadata:
        inst = prompts.CHARXIV_REASONING_INST[int(str(metadata["inst_category"]))]
        filled = inst.replace("<|question|>", str(metadata.get("raw_question", "")))
        filled = filled.replace("<|ground_truth|>", answer).replace("<|response|>", response)
        return prompts.CHARXIV_REASONING_PREFIX + filled
    qid = metadata.get("qid")
    if not isinstance(qid, int) or qid not in _RUBRIC_BY_QID:
        return None
    prefix = (
        prompts.CHARXIV_DESCRIPTIVE_PREFIX.replace("<|NUM_TRIPLETS|>", "1")
        .replace("<|OVERARCHING_QUESTION|>", prompts.CHARXIV_DESCRIPTIVE_QUESTIONS[qid])
        .replace("<|JSON_KEYS|>", str(["extract_answer_T1", "score_T1"]))
    )
    rubric = prompts.CHARXIV_DESCRIPTIVE_ICL[_RUBRIC_BY_QID[qid]]
    return f"{prefix}{rubric}T1:\nResponse 1: {response}\nGround Truth 1: {answer}\n\n"


def grading_verdict(reply: str) -> float | None:
    """The ``score`` (reasoning) or ``score_T1`` (descriptive) of the grader's JSON reply."""
    found = _SCORE.search(reply)
    return None if found is None else float(found.group(1))
