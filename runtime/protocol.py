"""The protocol contract: the system prompt, parsing a turn, and observations.

A protocol decides everything about the *text* of the conversation: what the
model is told, how its output is read (reasoning, code, final answer) and how an
execution record becomes the next user message. The loop never looks inside
model text itself, so a new output format is one registered class. Malformed
output is never an exception: :meth:`Protocol.parse` returns a :class:`Parsed`
with a ``problem``, and :meth:`Protocol.problem_message` turns it into an
instructive observation.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from codedance.runtime.types import Message, Parsed, Part, Task

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.base import ExecutionRecord

__all__ = ["Protocol", "execution_notes", "question_with_options", "think_text", "thought_before"]

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def question_with_options(task: Task) -> str:
    """The question without ``<image>`` placeholders, then ``A. option`` lines."""
    question = task.question.replace("<image>", "").strip()
    options = task.options or []
    return "\n".join([question, *(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))])


class Protocol(ABC):
    """Subclass, set ``name``, implement the three abstract methods, register it.

    ``options`` comes from ``protocol.options`` in registry.yaml.
    """

    name: ClassVar[str] = ""
    #: Strings at which generation should stop (empty: the model's own end of turn).
    stop: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @abstractmethod
    def system_prompt(self, tools_section: str) -> str:
        """The system message; ``tools_section`` is the rendered tool docs ('' when none)."""

    @abstractmethod
    def parse(self, text: str) -> Parsed:
        """Read one assistant turn: code to run, a final answer, or a problem."""

    @abstractmethod
    def observation(
        self,
        record: ExecutionRecord,
        images: Sequence[PILImage],
        *,
        turns_left: int,
        parsed: Parsed | None = None,
    ) -> Message:
        """The user message that reports an execution; ``images`` are already resized.

        ``parsed`` is the turn that ran (for notes such as ignored extra code blocks).
        """

    def input_names(self, task: Task) -> list[str]:
        """File names the task's images get inside the sandbox (first one ``input_image``)."""
        names = []
        for index, path in enumerate(task.images):
            suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path[-6:] else ".png"
            names.append(("input_image" if index == 0 else f"input_image_{index + 1}") + suffix)
        return names

    def user_message(self, task: Task, images: Sequence[PILImage]) -> Message:
        """The first user message: the images, then the question and its lettered options."""
        parts = [Part.of_image(image) for image in images]
        return Message("user", [*parts, Part.of_text(question_with_options(task))])

    def problem_message(self, parsed: Parsed, *, turns_left: int) -> Message:
        """The observation for a turn that neither ran code nor answered."""
        text = parsed.problem or "Your turn had no code to run and no final answer."
        return Message.text("user", self.with_deadline(text, turns_left))

    def with_deadline(self, text: str, turns_left: int) -> str:
        """``text`` plus, on the last turn, the instruction to answer now."""
        return text if turns_left > 1 else f"{text}\n\n{self.answer_now()}"

    def answer_now(self) -> str:
        return "This is your last turn: give your final answer now, without more code."


def execution_notes(record: ExecutionRecord, shown_images: int, parsed: Parsed | None) -> list[str]:
    """What an observation should point out besides the output, in words for the model."""
    notes = []
    if parsed is not None and parsed.extra_blocks:
        notes.append(
            f"Only the first code block ran; the other {parsed.extra_blocks} in your turn did "
            "not. Write one code block per turn."
        )
    if record.session_died:
        notes.append("The Python process died; variables from earlier turns are gone.")
    if record.restored:
        notes.append("The session was restored to its state before this code ran.")
    if len(record.images) > shown_images:
        hidden = len(record.images) - shown_images
        notes.append(f"{hidden} more image(s) were produced but not shown.")
    return notes


def think_text(text: str) -> str:
    """Every ``<think>...</think>`` block of a turn, stripped, one per line ("" if none)."""
    return "\n".join(m.strip() for m in _THINK.findall(text))


def thought_before(text: str, end: int) -> str:
    """The ``<think>`` text when there is some, else the prose before the action at ``end``."""
    return think_text(text) or text[:end].strip()
