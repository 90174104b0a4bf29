"""Reading numbers out of answer text, shared by the number, count and math matchers.

Two entry points. :func:`parse_number` reads a whole span as *one* quantity and
returns ``None`` when anything else is left over, so ``"2x"`` or ``"2\\sqrt{2}"`` are
never mistaken for ``2``. :func:`pick_number` chooses one number out of a sentence
such as ``"There are 12 apples"``.

What a quantity may look like: a sign (``-``, ``+`` or the Unicode minus), thousands
separators (``1,000``, ``1{,}000``), decimals, ``1e3``, ``2.5 \\times 10^{3}``,
fractions (``1/2``, ``\\frac{1}{2}``, ``\\dfrac12``), powers (``10^2``, ``10^-1``,
``10^{-2}``), English number words up to ninety-nine (``"three"``, ``"twenty-one"``), a
leading currency sign (``$5``, ``\\$5``, ``€5``), and a tail of percent (``%``, ``\\%``,
``percent``), degrees (``°``, ``^\\circ``) or unit words (``cm``, ``\\text{ apples}``,
``m^2``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Number", "find_numbers", "numbers_match", "parse_number", "pick_number"]

#: Relative tolerance of :func:`numbers_match`: equal up to float noise, not "close".
REL_TOL = 1e-6
#: Absolute tolerance of :func:`numbers_match`, which matters only near zero.
ABS_TOL = 1e-9

_DIGITS = r"(?:\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_SIGN = r"(?:(?<![\w).])[-+\u2212])?"
_TIMES_TEN = r"(?:\s*(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*\{?\s*(?P<pow>[-+\u2212]?\d+)\s*\}?)"
_PLAIN = rf"(?P<sign>{_SIGN})\s*(?P<digits>{_DIGITS})(?P<exp>[eE][-+]?\d+)?{_TIMES_TEN}?"
_FRAC_TEX = (
    rf"(?P<fsign>{_SIGN})\s*\\[dt]?frac\s*(?:\{{\s*(?P<fn>{_DIGITS})\s*\}}|(?P<fn1>\d))"
    rf"\s*(?:\{{\s*(?P<fd>{_DIGITS})\s*\}}|(?P<fd1>\d))"
)
_FRAC_SLASH = rf"(?P<ssign>{_SIGN})\s*(?P<sn>{_DIGITS})\s*/\s*(?P<sd>{_DIGITS})(?![\d.])"
# a power of a number written with ^: 10^2, 10^-1, 10^{-2}, 2.5^{3} (not units like m^2)
_POWER = (
    rf"(?P<psign>{_SIGN})\s*(?P<base>{_DIGITS})\s*\^\s*"
    r"(?:\{\s*(?P<pexp>[-+\u2212]?\d+(?:\.\d+)?)\s*\}|(?P<pexp1>[-+\u2212]?\d+(?:\.\d+)?))"
)
_NUMBER = re.compile(rf"{_FRAC_TEX}|{_FRAC_SLASH}|{_POWER}|{_PLAIN}")

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
]  # fmt: skip
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUES = {w: i for i, w in enumerate(_ONES)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_WORD = re.compile(
    rf"\b(?P<tens>{'|'.join(_TENS)})(?:[\s-]+(?P<unit>{'|'.join(_ONES[1:10])}))?\b"
    rf"|\b(?P<one>{'|'.join(_ONES)})\b",
    re.IGNORECASE,
)

_CURRENCY = re.compile(r"^(?:\\\$|\$|€|£|¥|\\euro\s*|usd\s*|us\$)\s*", re.IGNORECASE)
_PERCENT = re.compile(r"\\%|%|\bper\s*cents?\b", re.IGNORECASE)
_TEXT_MACRO = re.compile(r"\\(?:text|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_TAIL = re.compile(
    r"^(?:\s|\\[,;:! ]|%|\\%|°|\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|"
    r"[A-Za-z]{2,}\.?|[mgsL]\b|[/·]|\^\s*\{?\s*[23]\s*\}?)*$"
)


@dataclass(frozen=True)
class Number:
    """A number read from text; ``percent`` is true when it was written with ``%``."""

    value: float
    percent: bool = False


def parse_number(text: str) -> Number | None:
    """``text`` as one quantity (see the module docstring), or ``None`` if it is not one."""
    body = _TEXT_MACRO.sub(r" \1", text).strip().strip("$").strip()
    body = _CURRENCY.sub("", body)
    found = _NUMBER.match(body) or _WORD.match(body)
    if found is None:
        return None
    tail = body[found.end() :]
    if not _UNIT_TAIL.match(tail):
        return None
    value = _value(found)
    return None if value is None else Number(value, bool(_PERCENT.search(tail)))


def find_numbers(text: str) -> list[Number]:
    """Every number written with digits in ``text``, in order; number words if none are."""
    numbers = [_number_at(m, text) for m in _NUMBER.finditer(text)]
    found = [n for n in numbers if n is not None]
    if found:
        return found
    words = [_word_value(m) for m in _WORD.finditer(text)]
    return [Number(float(w)) for w in words if w is not None]


def pick_number(text: str, *, marked: bool) -> Number | None:
    """The one number ``text`` most plausibly answers with.

    A span that is a quantity is read whole. Otherwise, of the numbers it contains:
    the only one; else the first after the last ``=`` (``"6 x 7 = 42"``); else the
    first when ``text`` was marked as the answer (``<answer>``, ``\\boxed``, "the
    answer is"), and the last of an unmarked response, where answers come at the end.
    """
    whole = parse_number(text)
    if whole is not None:
        return whole
    numbers = find_numbers(text)
    if len(numbers) <= 1:
        return numbers[0] if numbers else None
    if "=" in text:
        after = find_numbers(text.rsplit("=", 1)[1])
        if after:
            return after[0]
    return numbers[0] if marked else numbers[-1]


def numbers_match(pred: Number, gold: Number, rel_tol: float = REL_TOL) -> bool:
    """Equal within ``rel_tol`` (relative) or :data:`ABS_TOL` (absolute).

    When exactly one side carries ``%`` it is read both ways, so ``50%`` matches
    ``50`` and ``0.5``; when both do, their written values are compared.
    """
    if pred.percent == gold.percent:
        return _close(pred.value, gold.value, rel_tol)
    return any(_close(p, g, rel_tol) for p in _readings(pred) for g in _readings(gold))


def _readings(number: Number) -> tuple[float, ...]:
    return (number.value, number.value / 100) if number.percent else (number.value,)


def _close(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=ABS_TOL)


def _number_at(found: re.Match[str], text: str) -> Number | None:
    value = _value(found)
    after = text[found.end() :].lstrip()
    return None if value is None else Number(value, bool(_PERCENT.match(after)))


def _value(found: re.Match[str]) -> float | None:
    groups = found.groupdict()
    if groups.get("tens") or groups.get("one"):
        word = _word_value(found)
        return None if word is None else float(word)
    if groups.get("fn") or groups.get("fn1"):
        return _ratio(groups["fsign"], groups["fn"] or groups["fn1"], groups["fd"] or groups["fd1"])
    if groups.get("sn"):
        return _ratio(groups["ssign"], groups["sn"], groups["sd"])
    if groups.get("base"):
        return _power(groups["psign"], groups["base"], groups["pexp"] or groups["pexp1"])
    return _plain(found)


def _power(sign: str, base: str, exponent: str) -> float | None:
    try:
        value: float | complex = float(_digits(base)) ** float(exponent.replace("\u2212", "-"))
    except (OverflowError, ZeroDivisionError):
        return None
    if isinstance(value, complex) or math.isinf(value):
        return None
    return -value if _negative(sign) else value


def _plain(found: re.Match[str]) -> float:
    value = float(_digits(found["digits"]) + (found["exp"] or ""))
    if found["pow"]:
        value *= 10.0 ** int(found["pow"].replace("\u2212", "-"))
    return -value if _negative(found["sign"]) else value


def _ratio(sign: str, numerator: str, denominator: str) -> float | None:
    bottom = float(_digits(denominator))
    if bottom == 0:
        return None
    value = float(_digits(numerator)) / bottom
    return -value if _negative(sign) else value


def _negative(sign: str | None) -> bool:
    return sign is not None and sign.strip() in ("-", "\u2212")


def _digits(text: str) -> str:
    return text.replace("{,}", "").replace("\\,", "").replace(",", "")


def _word_value(found: re.Match[str]) -> int | None:
    groups = found.groupdict()
    if groups.get("one"):
        return _WORD_VALUES[groups["one"].lower()]
    if groups.get("tens"):
        unit = groups.get("unit")
        return _WORD_VALUES[groups["tens"].lower()] + (_WORD_VALUES[unit.lower()] if unit else 0)
    return None
