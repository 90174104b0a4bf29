"""MATH-Vision's official answer check (``evaluation/evaluate.py`` and ``utils.py``), ported.

Re-implemented from reading github.com/mathllm/MATH-V (commit a1f5cc3): the rules, and
their quirks, not the code. :func:`official_answer` turns a response into the string
``evaluate.py`` compares; :func:`official_equal` is ``is_equal``:

* both lowercased; empty is wrong; equal after ``strip()`` is right;
* a tuple ``(a,b)`` or list ``[a,b]`` of two or more items has each item's value
  rounded to 2 decimals, and the rewritten strings are compared;
* otherwise both are read as numbers and compared **rounded to 2 decimals**
  (``0.33`` is right for ``1/3``; ``1.004`` for ``1``). Officially latex2sympy reads
  them; here math-verify's LaTeX parser does (``\\frac``, ``\\sqrt``, ``\\pi``), then
  codedance's number reader. An expression that is not a number (``x+1``) is right
  only when equal as text, as officially (``eval`` of a symbol fails there).

A multiple-choice problem is right when the answer equals the letter or the text of
the right option. The response is first reduced by codedance's answer extraction
(``<answer>``, ``\\boxed``), then by the official string rules.
"""

from __future__ import annotations

import re
import signal
import threading

__all__ = ["official_answer", "official_equal", "strip_string"]

_FLAGS = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")
_BOXED = re.compile(r"oxed\{(.*)\}", re.DOTALL)
_REMOVED = (
    (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"),
    ("\n", ""), ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""),
    ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""),
    ("{units}", ""), ("units", ""), ("{km}", ""), ("km", ""),
)  # fmt: skip
_PARSE_TIMEOUT_S = 5
_UNGUARDED_CHARS = 200
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_LETTER = re.compile(r"[A-Za-z]")
_LABELS = tuple((f"({c})", c) for c in "abcde") + tuple((f"{{{c}}}", c) for c in "abcde")


def official_answer(response: str) -> str:
    """The answer string ``evaluate.py`` reads from a (codedance-extracted) response."""
    answer = _letter_or_number(response.strip())
    if "oxed{" not in answer:
        answer = _after_flags(answer)
    elif answer.count("oxed{") > 1:
        answer = "\\boxed{" + answer.split("oxed{")[-1]
    answer = find_math_answer(answer)
    for label, letter in _LABELS:
        answer = answer.replace(label, letter)
    return answer.rstrip(".").lstrip(":").strip()


def _letter_or_number(answer: str) -> str:
    for c in "ABCDE":
        ends = answer.endswith((f" {c}.", f" ({c})."))
        starts = answer.startswith((f"{c}\n", f"({c})\n", f"({c}) {c}\n"))
        if ends or starts:
            answer = c
    tail = answer.split("is ")[-1].rstrip(".")
    return tail if _is_float(tail) else answer


def _after_flags(answer: str) -> str:
    for flag in _FLAGS:
        for spelled in (flag, flag.replace("the", "The")):
            had = spelled in answer
            answer = answer.split(spelled)[-1].strip()
            if had:
                answer = answer.split("\n")[0].split(". ")[0]
    return answer


def find_math_answer(text: str) -> str:
    """The official ``find_math_answer``: the last box, after ``=``, LaTeX cleaned."""
    text = text.lower().replace("{}", "")
    boxed = _BOXED.findall(text)
    answer = boxed[-1] if boxed else text
    close, open_ = answer.find("}"), answer.find("{")
    if close != -1 and (open_ == -1 or close < open_):
        answer = answer.split("}")[0]
    answer = answer.split("=")[-1].split("\\approx")[-1]
    for old, new in _REMOVED:
        answer = answer.replace(old, new)
    return strip_string(answer)


def strip_string(text: str) -> str:
    """MATH's ``_strip_string`` as MATH-V's utils.py has it."""
    for old, new in (
        ("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
        ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""),
        ("$", ""),
    ):  # fmt: skip
        text = text.replace(old, new)
    text = text.split("\\text{ ")[0].replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    text = "0" + text if text[0] == "." else text
    for sign in ("=", "\\approx"):
        if len(text.split(sign)) == 2:
            text = text.split(sign)[-1]
    text = _fix_sqrt(text).replace(" ", "") if "sqrt" in text else text.replace(" ", "")
    if "sqrt" in text:
        text = _fix_fracs(text)
    return _fix_a_slash_b("\\frac{1}{2}" if text == "0.5" else text)


def _fix_sqrt(text: str) -> str:
    head, *parts = text.split("\\sqrt")
    fixed = [p if not p or p[0] == "{" else "{" + p[0] + "}" + p[1:] for p in parts]
    return head + "".join("\\sqrt" + p for p in fixed)


def _fix_fracs(text: str) -> str:
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part.startswith("{"):
            out += part
        elif len(part) < 2:
            return text
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2 or not all(re.fullmatch(r"-?\d+", p) for p in parts):
        return text
    if text != f"{int(parts[0])}/{int(parts[1])}":
        return text
    return f"\\frac{{{int(parts[0])}}}{{{int(parts[1])}}}"


# -- is_equal -------------------------------------------------------------------------


def official_equal(answer: str, gold: str) -> bool:
    """``is_equal(answer, gold)``: text, then rounded tuples, then values to 2 decimals."""
    answer, gold = answer.lower(), gold.lower()
    if not answer.replace(" ", "") or not gold.replace(" ", ""):
        return False
    if answer.strip() == gold.strip():
        return True
    answer, gold = _rounded_tuple(answer), _rounded_tuple(gold)
    if answer == gold:
        return True
    got, wanted = _value(answer), _value(gold)
    return got is not None and wanted is not None and round(got, 2) == round(wanted, 2)


def _rounded_tuple(text: str) -> str:
    """``eval_tuple``: a ``(a,b,...)`` or ``[a,b,...]`` with each value rounded to 2."""
    if len(text) < 2 or (text[0], text[-1]) not in (("(", ")"), ("[", "]")):
        return text
    items = text[1:-1].split(",")
    if len(items) < 2:
        return text
    rounded = []
    for item in items:
        if "infty" in item or item in ("a", "-a"):
            rounded.append(item)
            continue
        value = _value(item)
        if value is None:
            return text  # officially any failure returns the string unchanged
        rounded.append(str(round(value, 2)))
    return text[0] + ",".join(rounded) + text[-1]


def _value(text: str) -> float | None:
    """The number a LaTeX span denotes, or ``None`` (a symbol, text, a set)."""
    from codedance.rewards.numbers import parse_number

    if _LETTER.search(_LATEX_COMMAND.sub("", text)):
        return None  # "60apples" is a product of symbols to latex2sympy, not 60
    number = parse_number(text)
    if number is not None and not number.percent:
        return number.value
    return _sympy_value(text)


def _sympy_value(text: str) -> float | None:
    try:
        import math_verify
    except ImportError:  # the rewards extra is missing: numbers only
        return None
    config = (math_verify.LatexExtractionConfig(),)
    timeout = _timeout()
    if timeout is None and len(text) > _UNGUARDED_CHARS:
        return None  # no alarm can stop a slow parse here: long spans are not numbers
    try:
        parsed = math_verify.parse(f"${text}$", extraction_config=config, parsing_timeout=timeout)
    except Exception:  # math-verify raises many kinds on odd LaTeX: not a number
        return None
    for expression in parsed:
        if getattr(expression, "is_number", False) and getattr(expression, "is_real", False):
            try:
                return float(expression.evalf())
            except (TypeError, ValueError):
                return None
    return None


def _timeout() -> int | None:
    """Seconds for math-verify's SIGALRM guard, where one can be used (main thread)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        return None
    return None if signal.getitimer(signal.ITIMER_REAL)[0] > 0 else _PARSE_TIMEOUT_S


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
