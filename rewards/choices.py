"""Multiple-choice answers: which option a span names, by letter or by text.

A letter is read from these forms, in this order: the whole span is a letter (``B``,
``(B)``, ``B.``, ``b``); the span starts with a label (``B. Paris``, ``(B) Paris``, ``B)
Paris``, or MathVerse's ``D:140°``: a capital and a colon); "option B" or "choice (C)"
anywhere; a single parenthesised capital such as ``(D)`` anywhere. A span holding two
different parenthesised letters names none ("(A) or (B)"). A bare letter inside a
sentence ("I think B is right") is *not* read, because ``A`` and ``I`` are also words;
the answer extraction ("the answer is B") usually isolates the letter first.

With ``options`` (the option texts in order, labels such as ``"A. "`` allowed), a
letter past the last option is rejected and a span that names exactly one option's
text (normalised as in SQuAD) picks that option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from string import ascii_uppercase

from codedance.rewards.answers import normalize_text

__all__ = ["choice_letter", "letter_form", "option_text", "strip_label"]

_LETTER_ONLY = re.compile(r"^\(?\s*([A-Za-z])\s*\)?\s*[.:)]?$")
# "B. Paris", "(B) Paris", "B) Paris", and "D:140°" (MathVerse lists its options so)
_LEADING_LABEL = re.compile(
    r"^(?:\(\s*([A-Za-z])\s*\)|([A-Za-z])[.:)\]])(?=\s|$)|^([A-Z]):(?=[^\s:/\\])"
)
_NAMED = re.compile(r"\b(?i:option|choice)\s*(?:(?i:is)\s*)?:?\s*\(?([A-Z])\)?(?!\w)")
_PARENTHESISED = re.compile(r"\(([A-Z])\)")


def letter_form(text: str) -> str | None:
    """The upper-case letter ``text`` names by its form alone, or ``None``.

    A span that also holds a different parenthesised letter ("(A) or (B)") is a
    hedge and names none.
    """
    letters = set(_PARENTHESISED.findall(text))
    for pattern in (_LETTER_ONLY, _LEADING_LABEL, _NAMED):
        found = pattern.search(text.strip())
        if found is not None:
            letter = next(g for g in found.groups() if g).upper()
            return letter if letters <= {letter} else None
    return letters.pop() if len(letters) == 1 else None


def choice_letter(text: str, options: Sequence[str] | None) -> str | None:
    """The option ``text`` names, as a letter, or ``None`` when it names none or several."""
    letter = letter_form(text)
    if letter is not None:
        return letter if options is None or _index(letter) < len(options) else None
    return option_text(text, options) if options else None


def option_text(text: str, options: Sequence[str]) -> str | None:
    """The letter of the option whose text ``text`` is, or uniquely contains."""
    wanted = normalize_text(strip_label(text))
    texts = [normalize_text(strip_label(option)) for option in options]
    exact = [i for i, option in enumerate(texts) if option and option == wanted]
    if len(exact) == 1:
        return ascii_uppercase[exact[0]]
    inside = [i for i, option in enumerate(texts) if option and _contains(wanted, option)]
    return ascii_uppercase[inside[0]] if len(inside) == 1 else None


def strip_label(text: str) -> str:
    """``text`` without a leading option label: ``"(B) Paris"`` gives ``"Paris"``."""
    found = _LEADING_LABEL.match(text.strip())
    return text.strip()[found.end() :].strip() if found else text.strip()


def _index(letter: str) -> int:
    return ascii_uppercase.index(letter)


def _contains(sentence: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", sentence) is not None
