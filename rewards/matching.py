"""``score_answer``: does a model response give the reference answer? 1.0 or 0.0.

The answer is first extracted from the response (:mod:`codedance.rewards.answers`),
then compared by the rule of its ``answer_type``:

``math``
    math-verify, then numbers, then text (:mod:`codedance.rewards.math_match`).
``chartqa``
    ChartQA's relaxed accuracy, exactly as pix2struct's ``relaxed_correctness``:
    when both sides read as Python floats (a trailing ``%`` divides by 100, so
    ``50%`` is ``0.5``) and the reference is not 0, within 5% relative error;
    otherwise case-insensitive string equality (also for a reference of 0).
``multiple_choice``
    the option letter named by the prediction equals the reference's; see
    :mod:`codedance.rewards.choices`. Pass ``options`` to also accept option texts.
``yes_no``
    the polarity: yes/true or no/false, read from the first word ("Yes, because
    ...") or else from the only polarity word present.
``box``
    IoU of the two boxes at least ``iou_threshold`` (0.5); see
    :mod:`codedance.rewards.boxes`.
``count``
    the same integer; digits or English words ("three").
``number``
    equal within a relative 1e-6 (float noise, not rounding); ``1,000``, ``$5``,
    ``1/2``, ``\\frac{1}{2}``, ``2.5 \\times 10^{3}`` and unit words are read; a
    ``%`` on one side only is read both ways (``50%`` matches ``50`` and ``0.5``).
``text``
    equal after SQuAD normalisation (lowercase; no punctuation, articles or extra
    whitespace); a reference made only of those is compared lowercased instead.

A prediction with no answer in it scores 0.0. A reference that cannot be read as
its type (an empty one, a ``box`` without four numbers, a ``count`` that is not an
integer) raises :class:`InvalidAnswerError`: that is a dataset bug to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from codedance.core.errors import CodedanceError
from codedance.rewards.answers import (
    Extracted,
    clean_answer,
    extract,
    extract_gold,
    normalize_text,
)
from codedance.rewards.boxes import box_iou, parse_box
from codedance.rewards.choices import choice_letter, letter_form, strip_label
from codedance.rewards.math_match import match_math
from codedance.rewards.numbers import Number, numbers_match, parse_number, pick_number

__all__ = [
    "ANSWER_TYPES",
    "AnswerType",
    "InvalidAnswerError",
    "UnknownAnswerTypeError",
    "relaxed_correctness",
    "score_answer",
]

AnswerType = Literal[
    "math", "chartqa", "multiple_choice", "yes_no", "box", "count", "number", "text"
]
#: Every ``answer_type`` that :func:`score_answer` accepts.
ANSWER_TYPES: tuple[str, ...] = get_args(AnswerType)

#: ChartQA's tolerance: 5% relative error, as in the ChartQA paper and pix2struct.
CHARTQA_MAX_RELATIVE_CHANGE = 0.05


class UnknownAnswerTypeError(CodedanceError, ValueError):
    """``answer_type`` is not one of :data:`ANSWER_TYPES`."""

    def __init__(self, answer_type: str) -> None:
        super().__init__(
            f"unknown answer_type {answer_type!r}; valid types: {', '.join(ANSWER_TYPES)}. "
            f"Fix: pass one of them, e.g. score_answer(prediction, answer, 'text')."
        )
        self.answer_type = answer_type


class InvalidAnswerError(CodedanceError, ValueError):
    """A reference answer cannot be read as its ``answer_type`` (a dataset bug)."""

    def __init__(self, answer: str, answer_type: str, expected: str) -> None:
        super().__init__(
            f"reference answer {answer!r} is not a valid {answer_type!r} answer: expected "
            f"{expected}. Fix: correct the reference in the dataset, or score it as 'text'."
        )
        self.answer, self.answer_type = answer, answer_type


@dataclass(frozen=True)
class _Settings:
    options: tuple[str, ...] | None
    iou_threshold: float


_Matcher = Callable[[Extracted, str, _Settings], bool]


def score_answer(
    prediction: str,
    answer: str,
    answer_type: str,
    *,
    options: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
) -> float:
    """1.0 if the model response ``prediction`` gives ``answer``, else 0.0.

    :param prediction: the full model response, or just its answer.
    :param answer: the reference answer (``<answer>``/``\\boxed``/``$`` are unwrapped).
    :param answer_type: one of :data:`ANSWER_TYPES`; it picks the comparison rule.
    :param options: ``multiple_choice`` only: the option texts in order (A, B, ...).
    :param iou_threshold: ``box`` only: the IoU from which a box counts as correct.
    :raises UnknownAnswerTypeError: ``answer_type`` is not a known type.
    :raises InvalidAnswerError: ``answer`` cannot be read as ``answer_type``.
    :raises MissingDependencyError: ``math`` without the ``rewards`` extra installed.
    """
    matcher = _MATCHERS.get(answer_type)
    if matcher is None:
        raise UnknownAnswerTypeError(answer_type)
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    gold = extract_gold(answer)
    if not gold:
        raise InvalidAnswerError(answer, answer_type, "a non-empty answer")
    pred = extract(prediction)
    if not pred.text:
        return 0.0
    settings = _Settings(None if options is None else tuple(options), iou_threshold)
    return 1.0 if any(matcher(pred, form, settings) for form in _gold_forms(gold)) else 0.0


def _gold_forms(gold: str) -> list[str]:
    """The reference, and it cleaned as a prediction is (a trailing full stop dropped).

    A prediction taken from a phrase or a whole response loses its trailing full
    stop (``"The answer is U.S."`` gives ``U.S``); so does the reference here, so an
    answer identical to the reference (ChartQA's ``U.S.``, MathVerse's
    ``\\[g(x)=...\\].``) always scores 1.
    """
    cleaned = clean_answer(gold, drop_full_stop=True)
    return [gold] if not cleaned or cleaned == gold else [gold, cleaned]


def relaxed_correctness(
    target: str, prediction: str, max_relative_change: float = CHARTQA_MAX_RELATIVE_CHANGE
) -> bool:
    """ChartQA's relaxed accuracy for one pair, with pix2struct's exact semantics."""
    prediction_float = _chartqa_float(prediction)
    target_float = _chartqa_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    return prediction.lower() == target.lower()


def _chartqa_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def _match_chartqa(pred: Extracted, gold: str, settings: _Settings) -> bool:
    return relaxed_correctness(gold, pred.text)


def _match_math(pred: Extracted, gold: str, settings: _Settings) -> bool:
    return match_math(pred.text, gold)


def _match_text(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = normalize_text(gold)
    if not wanted:  # the reference is only articles or punctuation: keep them
        return pred.text.strip().lower() == gold.strip().lower()
    return normalize_text(pred.text) == wanted


def _match_number(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = parse_number(gold)
    if wanted is None:
        raise InvalidAnswerError(gold, "number", "one number, e.g. '3.5', '1,000' or '50%'")
    got = pick_number(pred.text, marked=pred.marked)
    return got is not None and numbers_match(got, wanted)


def _match_count(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = _as_count(parse_number(gold))
    if wanted is None:
        raise InvalidAnswerError(gold, "count", "a whole number such as '3' or 'three'")
    return _as_count(pick_number(pred.text, marked=pred.marked)) == wanted


def _as_count(number: Number | None) -> int | None:
    if number is None or number.percent or not number.value.is_integer():
        return None
    return int(number.value)


_POLARITY = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}


def _polarity(text: str) -> str | None:
    words = normalize_text(text).split()
    if words and words[0] in _POLARITY:
        return _POLARITY[words[0]]
    found = {_POLARITY[word] for word in words if word in _POLARITY}
    return found.pop() if len(found) == 1 else None


def _match_yes_no(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = _polarity(gold)
    if wanted is None:
        raise InvalidAnswerError(gold, "yes_no", "yes, no, true or false")
    return _polarity(pred.text) == wanted


def _match_choice(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = letter_form(gold)
    if wanted is None and settings.options:
        wanted = choice_letter(gold, settings.options)
    if wanted is None:  # a reference given as text that is not among the options
        return normalize_text(strip_label(pred.text)) == normalize_text(gold)
    if settings.options is not None and ord(wanted) - ord("A") >= len(settings.options):
        raise InvalidAnswerError(gold, "multiple_choice", f"one of {len(settings.options)} options")
    return choice_letter(pred.text, settings.options) == wanted


def _match_box(pred: Extracted, gold: str, settings: _Settings) -> bool:
    wanted = parse_box(gold)
    if wanted is None:
        raise InvalidAnswerError(gold, "box", "four numbers such as '[x0, y0, x1, y1]'")
    got = parse_box(pred.text)
    return got is not None and box_iou(got, wanted) >= settings.iou_threshold


_MATCHERS: dict[str, _Matcher] = {
    "math": _match_math,
    "chartqa": _match_chartqa,
    "multiple_choice": _match_choice,
    "yes_no": _match_yes_no,
    "box": _match_box,
    "count": _match_count,
    "number": _match_number,
    "text": _match_text,
}
