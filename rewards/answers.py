"""Finding the final answer in a full model response, and normalizing answer text.

The CodeDance protocol puts the final answer in ``<answer>...</answer>``; math
models often write ``\\boxed{...}``; others end with "The answer is ..." or
"Answer: ...". :func:`extract_answer` looks for these, most explicit first:

1. the last ``<answer>...</answer>`` pair (an unclosed tag is not an answer); the
   steps below then run inside it, so ``<answer>\\boxed{5}</answer>`` gives ``5``;
2. the last ``\\boxed{...}`` or ``\\fbox{...}``, nested braces included;
3. the last "the (final) answer is ..." or "Answer: ...", up to the end of that line
   or sentence;
4. otherwise the tag's content, or else the whole response.

The span is then cleaned: surrounding whitespace, ``$...$``, ``$$...$$``,
``\\(...\\)``, ``\\[...\\]``, markdown ``**bold**`` and backticks, and a
``\\text{...}`` that wraps the whole span are removed. A trailing full stop is
dropped from spans found by a phrase or taken whole ("The answer is 5." gives
``5``), never from a tag's or a box's exact content.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

__all__ = [
    "Extracted",
    "answer_as_given",
    "clean_answer",
    "extract",
    "extract_answer",
    "extract_gold",
    "last_boxed",
    "normalize_text",
]

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_BOX_MACRO = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PHRASE = re.compile(
    r"\b(?:final\s+)?answer\s*(?:\*\*)?\s*(?:is\b\s*:?|:)\s*(?:\*\*)?[ \t]*\n?[ \t]*(?=([^\n]+))",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`"))
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mbox|textrm)\s*\{")
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


@dataclass(frozen=True)
class Extracted:
    """An answer span; ``marked`` says whether the response marked it as the answer.

    An unmarked span is the whole response, where matchers that pick one number out
    of several take the last, since a response that does not mark its answer tends
    to end with it.
    """

    text: str
    marked: bool


def extract_answer(response: str) -> str:
    """The final answer in a model ``response``, cleaned (see the module docstring)."""
    return extract(response).text


def extract(response: str) -> Extracted:
    """Like :func:`extract_answer`, also telling whether the answer was marked."""
    tagged = _last_answer_tag(response)
    scope = response if tagged is None else tagged
    boxed = last_boxed(scope)
    if boxed is not None:
        return Extracted(clean_answer(boxed), True)
    phrase = _last_phrase(scope)
    if phrase is not None:
        return Extracted(clean_answer(phrase, drop_full_stop=True), True)
    if tagged is not None:
        return Extracted(clean_answer(tagged), True)
    return Extracted(clean_answer(response, drop_full_stop=True), False)


def answer_as_given(response: str) -> str:
    """The answer as the model gave it, for official rules that read raw responses.

    The content of the last complete ``<answer>...</answer>`` (the protocol's answer
    field, whitespace around it dropped), else the whole response unchanged. Nothing
    else is removed: no ``\\boxed``, no "the answer is", no trailing full stop, so an
    official rule (lmms-eval's exact matches, We-Math's letter rule) sees what it
    would see had the model been prompted the benchmark's own way.
    """
    tagged = _last_answer_tag(response)
    return response if tagged is None else tagged.strip()


def extract_gold(answer: str) -> str:
    """A reference answer, unwrapped from ``<answer>``/``\\boxed`` and cleaned.

    Unlike predictions, references are not searched for "the answer is": a
    reference is the answer itself.
    """
    tagged = _last_answer_tag(answer)
    scope = answer if tagged is None else tagged
    boxed = last_boxed(scope)
    return clean_answer(scope if boxed is None else boxed)


def last_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (or ``\\fbox``) in ``text``."""
    for found in reversed(list(_BOX_MACRO.finditer(text))):
        content = _balanced(text, found.end())
        if content is not None:
            return content
    return None


def clean_answer(span: str, *, drop_full_stop: bool = False) -> str:
    """``span`` without delimiters and wrappers that do not change the answer."""
    text = span.strip()
    while True:
        unwrapped = _unwrap_once(text)
        if drop_full_stop and unwrapped.endswith(".") and not unwrapped.endswith(".."):
            unwrapped = unwrapped[:-1].rstrip()
        if unwrapped == text:
            return text
        text = unwrapped


def _last_answer_tag(text: str) -> str | None:
    found = _ANSWER_TAG.findall(text)
    return found[-1] if found else None


def _last_phrase(text: str) -> str | None:
    found = list(_PHRASE.finditer(text))
    if not found:
        return None
    rest = found[-1].group(1)
    return _SENTENCE_END.split(rest, maxsplit=1)[0]


def _balanced(text: str, start: int) -> str | None:
    """The text from ``start`` up to the brace closing the one just before it."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{" and text[index - 1] != "\\":
            depth += 1
        elif char == "}" and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None


def _unwrap_once(text: str) -> str:
    for opening, closing in _WRAPPERS:
        inner = text[len(opening) : -len(closing)]
        if (
            len(text) > len(opening) + len(closing)
            and text.startswith(opening)
            and text.endswith(closing)
            and opening not in inner
        ):
            return inner.strip()
    macro = _TEXT_WRAPPER.match(text)
    if macro is not None and _balanced(text, macro.end()) == text[macro.end() : -1]:
        return text[macro.end() : -1].strip()
    return text


def normalize_text(text: str) -> str:
    """SQuAD's answer normalization: lowercase, no punctuation, articles or extra spaces."""
    lowered = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", lowered).split())
