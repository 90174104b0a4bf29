"""Built-in plugin: the ``schema`` protocol, the fixed-JSON-tool baseline (DeepEyes style).

The model cannot run code: it may only call fixed tools with JSON arguments,
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, documented in the
system prompt as a Hermes/Qwen ``<tools>`` block: ``image_zoom_in_tool`` (crop to
``bbox_2d``) and, when enabled, ``image_rotate_tool``. Because the runtime runs
*code* in the sandbox, :meth:`SchemaProtocol.parse` turns a valid call into a
short fixed snippet on the preloaded ``input_image``; only validated numbers are
written into it, never a string the model wrote. Code the model writes itself is
not run: it becomes an instructive problem. Answers go in ``<answer>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.plugins.protocols.tagged import message_of, question_text
from codedance.runtime.protocol import Protocol, thought_before
from codedance.runtime.types import Message, Parsed, Part, Task

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.base import ExecutionRecord

__all__ = ["ROTATE", "TOOL_SCHEMAS", "ZOOM", "SchemaProtocol", "register_protocols"]

ZOOM = "image_zoom_in_tool"
ROTATE = "image_rotate_tool"
#: A crop thinner than this (long side / short side) is refused, as DeepEyes does.
MAX_ASPECT = 100
TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    ZOOM: {
        "type": "function",
        "function": {
            "name": ZOOM,
            "description": "Zoom in on a region of the image: crop it to a bounding box and "
            "return the crop as a new image.",
            "parameters": {
                "type": "object",
                "properties": {
                    "bbox_2d": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": "[x1, y1, x2, y2]: left, top, right, bottom in pixels "
                        "of the image as you see it (origin at the top left).",
                    },
                    "label": {"type": "string", "description": "what the region shows"},
                },
                "required": ["bbox_2d"],
            },
        },
    },
    ROTATE: {
        "type": "function",
        "function": {
            "name": ROTATE,
            "description": "Rotate the image counter-clockwise by an angle in degrees and "
            "return the rotated image (enlarged to fit, nothing cut off).",
            "parameters": {
                "type": "object",
                "properties": {"angle": {"type": "number", "description": "degrees"}},
                "required": ["angle"],
            },
        },
    },
}
SYSTEM = "You are a helpful assistant."
TOOLS_PROMPT = """# Tools

You may call one function per turn to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{schemas}
</tools>

For the function call, return a json object with the function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>

The tools act on the first input image. You cannot run code. Think inside <think></think>, \
then either call one tool and wait for its result, or give the final answer inside \
<answer></answer>."""

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_JSON_FENCE = re.compile(r"\s*```(?:json)?\s*\n?(.*?)```\s*$", re.DOTALL)
_CODE = re.compile(r"```[ \t]*(?:python3?|py)\b|<code>")
# Only integers the parser computed are formatted into these; the braces the
# sandbox must see are doubled.
_ZOOM_CODE = (
    "_w, _h = input_image.size\n"
    "_box = (min(max({x1}, 0), _w), min(max({y1}, 0), _h), min(max({x2}, 0), _w), "
    "min(max({y2}, 0), _h))\n"
    "if _box[0] >= _box[2] or _box[1] >= _box[3]:\n"
    '    raise ValueError(f"bbox_2d [{x1}, {y1}, {x2}, {y2}] lies outside the {{_w}}x{{_h}} '
    'image; use pixel coordinates inside it")\n'
    'print(f"Zoomed in on bbox_2d {{list(_box)}} of the {{_w}}x{{_h}} image.")\n'
    "display(input_image.crop(_box))\n"
)
_ROTATE_CODE = (
    'print("Rotated the image by {angle} degrees counter-clockwise.")\n'
    "display(input_image.rotate({angle}, expand=True))\n"
)


class _BadCall(ValueError):
    """A tool call the model must fix; the message is written for the model."""


class SchemaProtocol(Protocol):
    """Fixed JSON tools in ``<tool_call>``, answers in ``<answer>``; no code execution.

    Options (``protocol.options``): ``rotate`` (bool, default false) also offers
    ``image_rotate_tool``. The rendered sandbox tools section is not shown: the
    model cannot write the code that would call those functions.
    """

    name: ClassVar[str] = "schema"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.tools: dict[str, Callable[[Mapping[str, Any]], str]] = {ZOOM: _zoom_code}
        if self.options.get("rotate", False):
            self.tools[ROTATE] = _rotate_code

    def system_prompt(self, tools_section: str) -> str:
        schemas = "\n".join(json.dumps(TOOL_SCHEMAS[name]) for name in self.tools)
        return f"{SYSTEM}\n\n{TOOLS_PROMPT.format(schemas=schemas)}"

    def user_message(self, task: Task, images: Sequence[PILImage]) -> Message:
        return Message(
            "user", [*(Part.of_image(i) for i in images), Part.of_text(question_text(task))]
        )

    def parse(self, text: str) -> Parsed:
        if not text.strip():
            return Parsed(problem=f"Your turn was empty. {self._format_hint()}")
        calls = list(_TOOL_CALL.finditer(text))
        if len(calls) > 1:
            return Parsed(
                thought=thought_before(text, calls[0].start()),
                problem=f"You made {len(calls)} tool calls in one turn, so none ran. Make "
                "exactly one call per turn and wait for its result.",
            )
        if calls:
            return self._parse_call(calls[0].group(1), thought_before(text, calls[0].start()))
        answers = list(_ANSWER.finditer(text))
        if answers:
            return Parsed(
                thought=thought_before(text, answers[-1].start()),
                answer=answers[-1].group(1).strip(),
            )
        return Parsed(thought=thought_before(text, len(text)), problem=self._missing_action(text))

    def observation(
        self,
        record: ExecutionRecord,
        images: Sequence[PILImage],
        *,
        turns_left: int,
        parsed: Parsed | None = None,
    ) -> Message:
        chunks: list[str | PILImage] = ["<tool_response>", record.stdout.strip(), *images]
        chunks.append(_error(record))
        if len(record.images) > len(images):
            chunks.append("[The resulting image is too thin to show; choose a larger box.]")
        chunks.append("</tool_response>")
        if turns_left <= 1:
            chunks.append(self.answer_now())
        return message_of(chunks)

    def answer_now(self) -> str:
        return (
            "This is your last turn: give your final answer now inside <answer></answer>, "
            "without calling a tool."
        )

    def _parse_call(self, body: str, thought: str) -> Parsed:
        try:
            name, arguments = _read_call(body)
            if name not in self.tools:
                raise _BadCall(f"There is no tool {name!r}. {self._tool_list()}")
            code = self.tools[name](arguments)
        except _BadCall as exc:
            return Parsed(
                thought=thought, problem=f"{exc} Nothing ran; fix the call and try again."
            )
        return Parsed(thought=thought, code=code, call_format="schema")

    def _tool_list(self) -> str:
        return f"The tools are: {', '.join(self.tools)}."

    def _format_hint(self) -> str:
        example = json.dumps(
            {"name": ZOOM, "arguments": {"bbox_2d": [10, 20, 110, 120], "label": "cat"}}
        )
        return (
            f"Call one tool as <tool_call>{example}</tool_call>, or give the final answer "
            "as <answer>...</answer>."
        )

    def _missing_action(self, text: str) -> str:
        """Why a turn that neither calls a tool nor answers did neither, and how to fix it."""
        if _CODE.search(text):
            return (
                "Code cannot run here, so nothing ran. You can only call the tools "
                f"({', '.join(self.tools)}). {self._format_hint()}"
            )
        if "<tool_call>" in text:
            return f"Your <tool_call> is not closed. {self._format_hint()}"
        if "<answer>" in text:
            return "Your <answer> is not closed: write the final answer as <answer>...</answer>."
        return f"Your turn had no tool call and no final answer. {self._format_hint()}"


def _read_call(body: str) -> tuple[str, Mapping[str, Any]]:
    """The name and arguments of one ``<tool_call>`` body; :class:`_BadCall` when malformed."""
    fenced = _JSON_FENCE.fullmatch(body)
    try:
        call = json.loads(fenced.group(1) if fenced else body)
        arguments = call.get("arguments", {}) if isinstance(call, dict) else None
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise _BadCall(f"Your <tool_call> is not valid JSON ({exc}).") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise _BadCall('A tool call is a JSON object {"name": ..., "arguments": {...}}.')
    if not isinstance(arguments, dict):
        raise _BadCall(f"The arguments of {call['name']!r} must be a JSON object.")
    return call["name"], arguments


def _zoom_code(arguments: Mapping[str, Any]) -> str:
    """The crop snippet for a valid ``bbox_2d``; the sandbox clamps it to the image."""
    _check_keys(ZOOM, arguments, {"bbox_2d", "label"})
    box = arguments.get("bbox_2d")
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise _BadCall(
            f"bbox_2d must be 4 numbers [x1, y1, x2, y2] in pixels, got {json.dumps(box)}; "
            'for example "bbox_2d": [10, 20, 110, 120].'
        )
    if not isinstance(arguments.get("label", ""), str):
        raise _BadCall(f"label must be a string, got {json.dumps(arguments['label'])}.")
    x1, y1, x2, y2 = math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3])
    if x2 <= x1 or y2 <= y1:
        raise _BadCall(
            f"bbox_2d {json.dumps(box)} is empty: it needs x1 < x2 and y1 < y2 "
            "(left, top, right, bottom)."
        )
    if max(x2 - x1, y2 - y1) > MAX_ASPECT * min(x2 - x1, y2 - y1):
        raise _BadCall(f"bbox_2d {json.dumps(box)} is too thin to show; make the box squarer.")
    return _ZOOM_CODE.format(x1=x1, y1=y1, x2=x2, y2=y2)


def _rotate_code(arguments: Mapping[str, Any]) -> str:
    """The rotation snippet for a finite ``angle``."""
    _check_keys(ROTATE, arguments, {"angle"})
    angle = arguments.get("angle")
    if not _is_number(angle):
        raise _BadCall(
            f'angle must be a number of degrees, got {json.dumps(angle)}; e.g. "angle": 90.'
        )
    return _ROTATE_CODE.format(angle=repr(float(angle) % 360))


def _check_keys(tool: str, arguments: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise _BadCall(
            f"{tool} takes only {', '.join(sorted(allowed))}; remove {', '.join(unknown)}."
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    """A finite JSON number (booleans are not numbers here)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _error(record: ExecutionRecord) -> str:
    """The failure in the tool's words: the message only, since the model wrote no code."""
    if record.error is not None:
        return f"Error: {record.error.message}"
    if record.timed_out or record.session_died:
        return "Error: the tool did not finish; try again or answer."
    return ""


@hookimpl
def register_protocols(register: Register) -> None:
    register(SchemaProtocol)
