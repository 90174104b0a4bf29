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

__all__ = ["answer_candidates", "expresses_absence", "same_trend", "script_order", "trend"]

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
