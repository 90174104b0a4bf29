"""Built-in plugin: the ``codedance`` protocol, the released CodeDance model's own format.

Reasoning in ``<think>``, code as ``<code>`` around a fenced python block (the
first block runs; one execution per turn), the final answer in ``<answer>``.
Hermes-style ``<tool_call>`` JSON for ``execute_python_code``, which the
release's RL rollouts used, is read first. Observations go back as a user turn in
``<tool_response>``: the output, stderr, each image after "Output image:", and an
error with its type. The system prompt and the format instruction keep the
release's wording, so a released checkpoint served by vLLM needs no extra
configuration; the tools section (when tools are enabled) follows the system text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.runtime.protocol import (
    Protocol,
    execution_notes,
    question_with_options,
    think_text,
)
from codedance.runtime.types import Message, Parsed, Part, Task

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.base import ExecutionRecord

__all__ = ["CodeDanceProtocol", "register_protocols"]

SYSTEM = (
    "You are a helpful assistant.\n\nSolve the following problem step by step. You may write "
    "Python code to assist with the user query. When an image is supplied, you can either use "
    "the preloaded PIL Image object `input_image` or access the image file directly via the "
    "**relative path** `'input_image.jpg'`."
)
INSTRUCTION = (
    "Think step-by-step within <think></think>. You now have the ability to selectively write "
    "executable Python code to enhance your reasoning process. The Python code should be "
    "complete scripts, including necessary imports. \nEach code snippet is wrapped with "
    "`<code>\n```python\ncode snippet\n```\n</code>`. You must provide your final answer in "
    "<answer></answer>."
)
NO_OUTPUT = "Code executed successfully. No explicit output or figures produced."
FUNCTION = "execute_python_code"

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_CODE_TAG = re.compile(r"<code>\s*```(?:python|py)?[ \t]*\n(.*?)```\s*</code>", re.DOTALL)
_FENCE = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL)
_FORMAT_HINT = (
    "Write code as <code>\n```python\n...\n```\n</code>, or give the final answer in "
    "<answer></answer>."
)


class CodeDanceProtocol(Protocol):
    """The CodeDance release's prompts, turn format and observation format.

    Options (``protocol.options``): ``instruction`` (bool, default true) appends the
    release's format instruction to the question; ``traceback`` (bool, default
    true) adds the trimmed traceback to errors; ``nudge`` (str) is appended to
    every observation, as the release's RL rollouts did.
    """

    name: ClassVar[str] = "codedance"

    def system_prompt(self, tools_section: str) -> str:
        return f"{SYSTEM}\n\n{tools_section}" if tools_section else SYSTEM

    def input_names(self, task: Task) -> list[str]:
        """``input_image.jpg`` (as the prompt promises), then ``input_image_2.jpg``, ..."""
        return [
            "input_image.jpg" if i == 0 else f"input_image_{i + 1}.jpg"
            for i in range(len(task.images))
        ]

    def user_message(self, task: Task, images: Sequence[PILImage]) -> Message:
        question = question_with_options(task)
        if self.options.get("instruction", True):
            question = f"{question}\n{INSTRUCTION}"
        return Message(
            "user", [*(Part.of_image(image) for image in images), Part.of_text(question)]
        )

    def parse(self, text: str) -> Parsed:
        thought = think_text(text)
        if not text.strip():
            return Parsed(problem=f"Your turn was empty. {_FORMAT_HINT}")
        parsed = _parse_tool_call(text) or _parse_code(text)
        if parsed is not None:
            parsed.thought = thought
            return parsed
        answers = _ANSWER.findall(text)
        if answers:
            return Parsed(thought=thought, answer=answers[-1].strip())
        return Parsed(thought=thought or text.strip(), problem=_missing_action(text))

    def observation(
        self,
        record: ExecutionRecord,
        images: Sequence[PILImage],
        *,
        turns_left: int,
        parsed: Parsed | None = None,
    ) -> Message:
        parts = [Part.of_text("<tool_response>\n" + _outputs(record))]
        for image in images:
            parts += [Part.of_text("Output image:"), Part.of_image(image)]
        notes = execution_notes(record, len(images), parsed)
        closing = self._error(record) + "".join(f"\n[{note}]" for note in notes)
        if self.options.get("nudge"):
            closing += f"\n{self.options['nudge']}"
        parts.append(Part.of_text(closing.lstrip("\n") + "\n</tool_response>"))
        if turns_left <= 1:
            parts.append(Part.of_text("\n" + self.answer_now()))
        return Message("user", _merge_text(parts))

    def answer_now(self) -> str:
        return (
            "You have reached the turn limit. Give your final answer now: reason within "
            "<think></think> and put the final answer in <answer></answer>, without more code."
        )

    def _error(self, record: ExecutionRecord) -> str:
        error = record.error
        if record.timed_out:
            took = f"Code execution timed out after {record.duration_s:.0f} seconds"
            return f"\n--- Execution Error (TimeoutError) ---\n{took}"
        if error is None:
            return ""
        text = f"\n--- Execution Error ({error.type}) ---\n{error.type}: {error.message}"
        if self.options.get("traceback", True) and error.traceback:
            text += f"\n{error.traceback.rstrip()}"
        return text


def _outputs(record: ExecutionRecord) -> str:
    pieces = []
    if record.stdout.strip():
        pieces.append(f"Output:\n{record.stdout.strip()}")
    if record.stderr.strip():
        pieces.append(f"Stderr output:\n```\n{record.stderr.strip()}\n```")
    if not pieces and record.ok and not record.images:
        pieces.append(NO_OUTPUT)
    return "\n".join(pieces)


def _merge_text(parts: list[Part]) -> list[Part]:
    """Adjacent text parts joined by newlines: the chat template puts nothing between them."""
    merged: list[Part] = []
    for part in parts:
        if part.type == "text" and merged and merged[-1].type == "text":
            merged[-1] = Part.of_text(f"{merged[-1].text}\n{part.text}".replace("\n\n\n", "\n\n"))
        else:
            merged.append(part)
    return merged


def _parse_tool_call(text: str) -> Parsed | None:
    """The first ``<tool_call>`` JSON, or None when the turn has none."""
    calls = _TOOL_CALL.findall(text)
    if not calls:
        return None
    extra = len(calls) - 1
    try:
        call = json.loads(calls[0])
        arguments: Any = call.get("arguments", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
    except (json.JSONDecodeError, AttributeError) as exc:
        return Parsed(problem=f"Your <tool_call> is not valid JSON ({exc}). {_call_example()}")
    if call.get("name") != FUNCTION or not isinstance(arguments.get("code"), str):
        got = call.get("name")
        return Parsed(problem=f"Unknown tool {got!r} or missing 'code' argument. {_call_example()}")
    return Parsed(code=arguments["code"], call_format="tool_call", extra_blocks=extra)


def _call_example() -> str:
    example = json.dumps({"name": FUNCTION, "arguments": {"code": "print(1 + 1)"}})
    hint = _FORMAT_HINT[0].lower() + _FORMAT_HINT[1:]
    return f"Call it as <tool_call>{example}</tool_call>, or {hint}"


def _parse_code(text: str) -> Parsed | None:
    """The first ``<code>`` block, else the first bare python fence, else None."""
    tagged = _CODE_TAG.findall(text)
    if tagged:
        extra = len(tagged) - 1 + len(_FENCE.findall(_CODE_TAG.sub("", text)))
        return Parsed(code=tagged[0], call_format="code_tag", extra_blocks=extra)
    fenced = _FENCE.findall(text)
    if fenced:
        return Parsed(code=fenced[0], call_format="fence", extra_blocks=len(fenced) - 1)
    return None


def _missing_action(text: str) -> str:
    """Why a turn that neither runs code nor answers did neither, and how to fix it."""
    if ("<code>" in text and "</code>" not in text) or text.count("```") % 2 == 1:
        return (
            "Your code block is not closed, so nothing ran. End the code with ``` and then "
            "</code>, and keep each turn short enough to finish."
        )
    if "<answer>" in text:
        return "Your <answer> is not closed: write the final answer as <answer>...</answer>."
    if "<tool_call>" in text:
        return f"Your <tool_call> is not closed. {_call_example()}"
    return f"Your turn had no code to run and no final answer. {_FORMAT_HINT}"


@hookimpl
def register_protocols(register: Register) -> None:
    register(CodeDanceProtocol)
