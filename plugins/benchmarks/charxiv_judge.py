"""CharXiv's rule-based grader: the rule each grading rubric states, applied by code.

:func:`judge` decides whether an extracted answer gives the reference under a task's
``metadata["rule"]`` (see the :mod:`~codedance.plugins.benchmarks.charxiv` docstring
for what each rule accepts). :func:`canon` and :func:`read_number` are also how the
loader decides which answer type a reference can be read as.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable

from codedance.plugins.benchmarks.charxiv_rubric import expresses_absence, same_trend, script_order

__all__ = ["canon", "judge", "read_number"]

_MARKUP = re.compile(r"[$\\{}]")
_MATH_DELIMITERS = re.compile(r"\\[()\[\]]")
_ENCLOSED = re.compile(r"^\(([^()]*)\)$|^\[([^\[\]]*)\]$|^\"([^\"]*)\"$|^'([^']*)'$")
_OPERATOR_SPACE = re.compile(r"\s*([=_^:/+\-<>])\s*")
_POWER_OF_TEN = re.compile(r"10\s*\^\s*\{?\s*([-+\u2212]?\d+)\s*\}?")
_NOT_APPLICABLE = re.compile(r"\bnot\s+applicable\b|^(?:n/?a|none)$")
_LAYOUT = re.compile(
    r"\b(\w+)\s*(?:by|x|\u00d7|\*)\s*(\w+)\b|\b(\w+)\s+rows?\b\D*?\b(\w+)\s+columns?\b"
)


def judge(prediction: str, answer: str, rule: str, *, marked: bool = True) -> bool:
    """Does the extracted ``prediction`` give ``answer`` under CharXiv's ``rule``?

    ``rule`` is a task's ``metadata["rule"]``; ``marked`` says whether the response
    marked its answer, as for :func:`~codedance.rewards.numbers.pick_number`.
    """
    if canon(answer) == "not applicable":
        return expresses_absence(canon(prediction))
    if not prediction.strip() or _NOT_APPLICABLE.search(canon(prediction)):
        return False
    if rule == "number":
        return _sameread_number(prediction, answer, marked=marked)
    return _RULES[rule](prediction, answer)


def canon(text: str) -> str:
    """Lowercase, Greek letters spelled out, LaTeX markup and an enclosing bracket removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(map(_spell_greek, text))
    text = _MATH_DELIMITERS.sub(" ", text)  # gold "\\( g_A(r) \\)" is g_A(r)
    text = " ".join(_MARKUP.sub("", text).split()).rstrip(".").strip()
    text = _OPERATOR_SPACE.sub(r"\1", text)
    text = script_order(text)
    enclosed = _ENCLOSED.match(text)
    return next(g for g in enclosed.groups() if g is not None).strip() if enclosed else text


def _spell_greek(char: str) -> str:
    """A Greek letter as LaTeX names it (Unicode spells lambda "LAMDA")."""
    name = unicodedata.name(char, "") if "\u0370" <= char <= "\u03ff" else ""
    if not name.startswith("GREEK SMALL LETTER"):
        return char
    return name.rsplit(" ", 1)[1].lower().replace("lamda", "lambda")


def _terms(text: str) -> list[str]:
    return [term for term in (canon(part) for part in text.split(",")) if term]


def _same_terms(prediction: str, answer: str) -> bool:
    if canon(prediction) == canon(answer):
        return True
    return sorted(_terms(prediction)) == sorted(_terms(answer))


def _same_ordered_terms(prediction: str, answer: str) -> bool:
    return canon(prediction) == canon(answer) or _terms(prediction) == _terms(answer)


def _same_phrase(prediction: str, answer: str) -> bool:
    from codedance.rewards.answers import normalize_text

    if _same_terms(prediction, answer):
        return True
    trends = same_trend(prediction, answer)
    if trends is not None:  # the rubric judges trends by meaning: compare their directions
        return trends
    return normalize_text(canon(prediction)) == normalize_text(canon(answer))


def read_number(text: str, *, marked: bool | None = None) -> float | None:
    """``text`` read whole as one number, or (``marked`` given) the number it answers with."""
    from codedance.rewards.numbers import parse_number, pick_number

    power = _POWER_OF_TEN.fullmatch(text.strip())
    if power:
        return float(f"1e{power.group(1).replace(chr(0x2212), '-')}")
    found = parse_number(text) if marked is None else pick_number(text, marked=marked)
    return None if found is None else found.value


def _sameread_number(prediction: str, answer: str, *, marked: bool = True) -> bool:
    wanted = read_number(answer)
    if wanted is None:  # a text answer under a numeric rubric: judge it as a term
        return _same_terms(prediction, answer)
    got = read_number(prediction, marked=marked)
    return got is not None and math.isclose(got, wanted, rel_tol=1e-6, abs_tol=1e-9)


def _same_term(prediction: str, answer: str) -> bool:
    """Titles, labels and ticks: the same term, or the same number when it is one."""
    if read_number(answer) is not None and read_number(prediction) is not None:
        return _sameread_number(prediction, answer)
    return _same_terms(prediction, answer)


def _same_polarity(prediction: str, answer: str) -> bool:
    from codedance.rewards import score_answer

    return score_answer(prediction, answer, "yes_no") == 1.0


def _same_layout(prediction: str, answer: str) -> bool:
    from codedance.rewards.numbers import parse_number

    def rows_columns(text: str) -> tuple[float, ...] | None:
        for found in _LAYOUT.finditer(canon(text)):
            values = [parse_number(part) for part in found.groups() if part is not None]
            if all(values):
                return tuple(value.value for value in values if value is not None)
        return None

    wanted = rows_columns(answer)
    return wanted is not None and rows_columns(prediction) == wanted


_RULES: dict[str, Callable[[str, str], bool]] = {
    "terms": _same_terms,
    "term": _same_term,
    "ordered_terms": _same_ordered_terms,
    "phrase": _same_phrase,
    "yes_no": _same_polarity,
    "layout": _same_layout,
}
