"""Built-in plugin: the ``tagged-code`` protocol, Thyme/PyVision-style code in tags or fences.

Code is a fenced python block or a ``<code>...</code>`` tag (with or without a
fence inside); the first block of a turn runs and any others are reported back.
The final answer is ``<answer>...</answer>`` or ``\\boxed{...}``, the last one in
the turn. Observations are plain text (output, stderr, the error with its type and
a trimmed traceback) and the images, without a ``<tool_response>`` wrapper, as
PyVision returns them, so models prompted in that style need no adaptation.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from codedance import hookimpl
from codedance.core.errors import ConfigError
from codedance.core.hookspecs import Register
from codedance.runtime.protocol import Protocol, execution_notes, thought_before
from codedance.runtime.types import Message, Parsed, Part, Task

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.base import ExecutionRecord

__all__ = [
    "ANSWER_STYLES",
    "TaggedCodeProtocol",
    "message_of",
    "question_text",
    "register_protocols",
]

#: How the prompt asks for the final answer, and the form each style shows.
ANSWER_STYLES = {
    "tag": "<answer>...</answer>",
    "boxed": "\\boxed{...}",
    "tag_boxed": "<answer>\\boxed{...}</answer>",
}
NO_OUTPUT = "The code ran without output: print() values or display() images to see them."

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_CODE_TAG = re.compile(r"<code>(.*?)</code>", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL)
_INNER_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_BOXED = "\\boxed{"


class TaggedCodeProtocol(Protocol):
    """Code in python fences or ``<code>`` tags; answers in ``<answer>`` or ``\\boxed{}``.

    Options (``protocol.options``): ``answer_style`` (``tag`` (default), ``boxed``
    or ``tag_boxed``) is the form the prompt asks for; ``strict_answer`` (bool,
    default false) accepts only that form, any other becomes a problem; ``think``
    (bool, default true) asks for reasoning in ``<think></think>``;
    ``traceback_lines`` (int, default 8, 0 for none) bounds the traceback shown.
    """

    name: ClassVar[str] = "tagged-code"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.answer_style = str(self.options.get("answer_style", "tag"))
        if self.answer_style not in ANSWER_STYLES:
            raise ConfigError(
                f"protocol.options.answer_style {self.answer_style!r} is not one of "
                f"{', '.join(ANSWER_STYLES)}; set it in registry.yaml"
            )
        self.strict_answer = bool(self.options.get("strict_answer", False))
        lines = self.options.get("traceback_lines", 8)
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
            raise ConfigError(
                f"protocol.options.traceback_lines {lines!r} must be a whole number >= 0 "
                "(0 hides tracebacks); set it in registry.yaml"
            )
        self.traceback_lines = lines

    def system_prompt(self, tools_section: str) -> str:
        form = ANSWER_STYLES[self.answer_style]
        lines = [
            "You are a helpful assistant. Solve the problem step by step; when it helps, write "
            "Python code and read its results before you go on.",
            "- Code: one block per turn, as ```python\n...\n``` or <code>...</code>. It runs in a "
            "persistent session: variables and imports carry over between turns; numpy, PIL, "
            "cv2 and matplotlib are installed.",
            "- Images: the input images are preloaded as PIL images: `image` (the first, also "
            "`input_image`), `images` (all, in order), `input_image_2`, ... for the others. "
            "Coordinates are pixels of the image as you see it.",
            "- Results: print() shows values; display(img) or plt.show() shows you an image. "
            "After each block you get its output, then continue.",
            f"- Answer: when you are done, write the final answer as {form}, without code.",
        ]
        if self.options.get("think", True):
            lines.insert(1, "- Reasoning: think inside <think></think> before you act.")
        prompt = "\n".join(lines)
        return f"{prompt}\n\n{tools_section}" if tools_section else prompt

    def user_message(self, task: Task, images: Sequence[PILImage]) -> Message:
        return Message(
            "user", [*(Part.of_image(i) for i in images), Part.of_text(question_text(task))]
        )

    def parse(self, text: str) -> Parsed:
        if not text.strip():
            return Parsed(problem=f"Your turn was empty. {self._format_hint()}")
        blocks = _code_blocks(text)
        if blocks:
            start, code, call_format = blocks[0]
            thought = thought_before(text, start)
            if not code.strip():
                return Parsed(
                    thought=thought, problem=f"Your code block is empty. {self._format_hint()}"
                )
            return Parsed(
                thought=thought, code=code, call_format=call_format, extra_blocks=len(blocks) - 1
            )
        answers = _answers(_prose(text))
        if answers:
            start, kind, answer = answers[-1]
            return self._answer(text, start, kind, answer)
        return Parsed(thought=thought_before(text, len(text)), problem=self._missing_action(text))

    def observation(
        self,
        record: ExecutionRecord,
        images: Sequence[PILImage],
        *,
        turns_left: int,
        parsed: Parsed | None = None,
    ) -> Message:
        chunks: list[str | PILImage] = [self._report(record)]
        for index, image in enumerate(images, start=1):
            chunks += [f"Image {index}:", image]
        notes = "\n".join(f"[{n}]" for n in execution_notes(record, len(images), parsed))
        if notes:
            chunks.append(notes)
        if turns_left <= 1:
            chunks.append(self.answer_now())
        return message_of(chunks)

    def answer_now(self) -> str:
        return (
            "This is your last turn: give your final answer now as "
            f"{ANSWER_STYLES[self.answer_style]}, without more code."
        )

    def _answer(self, text: str, start: int, kind: str, answer: str) -> Parsed:
        thought, form = thought_before(text, start), ANSWER_STYLES[self.answer_style]
        accepted = {"tag": ("tag", "tag_boxed"), "boxed": ("boxed", "tag_boxed")}
        if self.strict_answer and kind not in accepted.get(self.answer_style, (self.answer_style,)):
            return Parsed(thought=thought, problem=f"Write the final answer exactly as {form}.")
        if not answer:
            return Parsed(thought=thought, problem=f"Your answer is empty: write it as {form}.")
        return Parsed(thought=thought, answer=answer)

    def _report(self, record: ExecutionRecord) -> str:
        pieces = []
        if record.stdout.strip():
            pieces.append(f"Output:\n{record.stdout.strip()}")
        if record.stderr.strip():
            pieces.append(f"Stderr:\n{record.stderr.strip()}")
        error = self._error(record)
        if error:
            pieces.append(error)
        if not pieces and not record.images:
            pieces.append(NO_OUTPUT)
        return "\n".join(pieces)

    def _error(self, record: ExecutionRecord) -> str:
        error = record.error
        if error is None:
            return (
                "Error: TimeoutError: the code did not finish in time." if record.timed_out else ""
            )
        headline = f"{error.type}: {error.message}"
        lines = error.traceback.rstrip().splitlines() if self.traceback_lines > 0 else []
        if lines and lines[-1].strip() == headline.strip():
            lines.pop()  # the headline already says it
        if len(lines) > self.traceback_lines:
            lines = [lines[0], "  ...", *lines[len(lines) - self.traceback_lines + 1 :]]
        return "\n".join([f"Error: {headline}", *lines])

    def _format_hint(self) -> str:
        form = ANSWER_STYLES[self.answer_style]
        return f"Write one code block as ```python\n...\n```, or give the final answer as {form}."

    def _missing_action(self, text: str) -> str:
        """Why a turn that neither runs code nor answers did neither, and how to fix it."""
        if text.count("<code>") > text.count("</code>") or text.count("```") % 2 == 1:
            return (
                "Your code block is not closed, so nothing ran. End it with ``` (and </code> "
                "when you opened <code>), and keep each turn short enough to finish."
            )
        if "```" in text:
            return f"Only ```python blocks run; your block names no language. {self._format_hint()}"
        if "<answer>" in text:
            return "Your <answer> is not closed: write the final answer as <answer>...</answer>."
        if _BOXED in text:
            return "Your \\boxed{ is not closed: balance its braces, as in \\boxed{42}."
        return f"Your turn had no code to run and no final answer. {self._format_hint()}"


def question_text(task: Task) -> str:
    """The question without ``<image>`` placeholders, then lettered options when it has any."""
    question = task.question.replace("<image>", "").strip()
    if task.options:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        question += "\n" + "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(task.options))
    return question


def message_of(chunks: Sequence[str | PILImage]) -> Message:
    """A user message from text and images in order; adjacent texts joined by newlines."""
    parts: list[Part] = []
    for chunk in chunks:
        if isinstance(chunk, str) and not chunk:
            continue
        if not isinstance(chunk, str):
            parts.append(Part.of_image(chunk))
        elif parts and parts[-1].type == "text":
            parts[-1] = Part.of_text(f"{parts[-1].text}\n{chunk}")
        else:
            parts.append(Part.of_text(chunk))
    return Message("user", parts)


def _code_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(start, code, call_format)`` of each complete block, in order of appearance."""
    tags = list(_CODE_TAG.finditer(text))
    blocks = [(m.start(), _unfence(m.group(1)), "code_tag") for m in tags]
    rest = _blank(text, [m.span() for m in tags])
    blocks += [(m.start(), _tidy(m.group(1)), "fence") for m in _FENCE.finditer(rest)]
    return sorted(blocks)


def _unfence(body: str) -> str:
    """The code inside a ``<code>`` tag: the fence's content when it holds one."""
    fenced = _INNER_FENCE.search(body)
    return _tidy(fenced.group(1) if fenced and not body[: fenced.start()].strip() else body)


def _tidy(code: str) -> str:
    code = textwrap.dedent(code).strip("\n")
    return f"{code}\n" if code.strip() else ""


def _blank(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with ``spans`` replaced by spaces, so later searches keep their positions."""
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _prose(text: str) -> str:
    """``text`` with ``<code>`` tags and an unclosed trailing code block blanked out.

    An answer-like string inside code (``print("\\boxed{1}")``) is not an answer.
    """
    text = _blank(text, [m.span() for m in _CODE_TAG.finditer(text)])
    opened = text.find("<code>")
    if opened >= 0:
        text = text[:opened]
    if text.count("```") % 2 == 1:
        text = text[: text.rfind("```")]
    return text


def _answers(text: str) -> list[tuple[int, str, str]]:
    """``(start, kind, answer)`` of each complete answer; kind is tag, boxed or tag_boxed."""
    found = []
    tags = list(_ANSWER.finditer(text))
    for match in tags:
        boxed = _boxed(match.group(1))
        kind, answer = ("tag_boxed", boxed[-1][1]) if boxed else ("tag", match.group(1))
        found.append((match.start(), kind, answer.strip()))
    rest = _blank(text, [m.span() for m in tags])
    found += [(start, "boxed", answer.strip()) for start, answer in _boxed(rest)]
    return sorted(found)


def _boxed(text: str) -> list[tuple[int, str]]:
    """``(start, content)`` of each ``\\boxed{...}`` whose braces balance."""
    found, start = [], text.find(_BOXED)
    while start >= 0:
        depth, at = 1, start + len(_BOXED)
        while at < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        if depth == 0:
            found.append((start, text[start + len(_BOXED) : at - 1]))
        start = text.find(_BOXED, at if depth == 0 else start + 1)
    return found


@hookimpl
def register_protocols(register: Register) -> None:
    register(TaggedCodeProtocol)
