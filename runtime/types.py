"""The runtime's records: tasks in, messages to the model, trajectories out.

One :class:`Trajectory` type serves inference, evaluation, rewards and training:
it holds every turn (the model's raw text, what the protocol parsed out of it,
the execution record, the observation sent back), token counts and timings.
``to_json``/``from_json`` give the JSONL form; images are written as files and
referenced by path relative to the output folder, never inlined.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.base import ExecutionRecord

__all__ = [
    "Generation",
    "Message",
    "Parsed",
    "Part",
    "StopReason",
    "Task",
    "Trajectory",
    "Turn",
]

Role = Literal["system", "user", "assistant"]
StopReason = Literal["answer", "max_turns", "max_tokens", "no_action", "model_error", "error"]


@dataclass
class Task:
    """One problem: a question about zero or more images, with an optional known answer.

    ``images`` are file paths (relative paths are resolved against the tasks file by
    the loader). ``answer_type`` names the matcher in ``codedance.rewards``.
    """

    id: str
    question: str
    images: list[str] = field(default_factory=list)
    answer: str | None = None
    answer_type: str = "text"
    options: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Part:
    """A piece of a message: text, or an image (in memory, or a saved file's path)."""

    type: Literal["text", "image"]
    text: str = ""
    image: PILImage | None = None
    path: str | None = None

    @classmethod
    def of_text(cls, text: str) -> Part:
        return cls("text", text=text)

    @classmethod
    def of_image(cls, image: PILImage, path: str | None = None) -> Part:
        return cls("image", image=image, path=path)

    def to_json(self) -> dict[str, Any]:
        if self.type == "text":
            return {"type": "text", "text": self.text}
        size = None if self.image is None else list(self.image.size)
        return {"type": "image", "path": self.path, "size": size}


@dataclass
class Message:
    """A chat message as the model backends receive it (images already resized)."""

    role: Role
    parts: list[Part]

    @classmethod
    def text(cls, role: Role, text: str) -> Message:
        return cls(role, [Part.of_text(text)])

    @property
    def images(self) -> list[PILImage]:
        return [p.image for p in self.parts if p.type == "image" and p.image is not None]

    @property
    def content_text(self) -> str:
        return "".join(p.text for p in self.parts if p.type == "text")

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "parts": [p.to_json() for p in self.parts]}


@dataclass
class Generation:
    """What a model backend returns for one assistant turn."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@dataclass
class Parsed:
    """A protocol's reading of one assistant turn.

    Exactly one of ``code`` and ``answer`` is set for a well-formed action; with
    neither, ``problem`` says what was wrong, in words the model can act on.
    ``call_format`` records how the code was written (``code_tag``, ``fence``,
    ``tool_call``, ``schema``) for the format reward.
    """

    thought: str = ""
    code: str | None = None
    answer: str | None = None
    problem: str | None = None
    call_format: str | None = None
    extra_blocks: int = 0


@dataclass
class Turn:
    """One assistant turn and, when it ran code, the execution and the observation."""

    index: int
    assistant: str
    parsed: Parsed
    execution: dict[str, Any] | None = None
    observation: Message | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    model_s: float = 0.0
    sandbox_s: float = 0.0
    #: The sandbox's record while the trajectory is in memory (its images unsaved).
    record: ExecutionRecord | None = field(default=None, repr=False, compare=False)

    @property
    def called_tool(self) -> bool:
        """The model's code ran; a run the framework lost (``infrastructure``) is no call."""
        return self.execution is not None and not self.infrastructure

    @property
    def infrastructure(self) -> bool:
        """The execution failed through the framework's fault, not the code's."""
        return bool(self.execution and self.execution.get("infrastructure"))

    @property
    def tool_failed(self) -> bool:
        """The code raised, timed out or killed the session (never the framework's failures)."""
        execution = self.execution
        if execution is None or self.infrastructure:
            return False
        return bool(execution.get("error") or execution.get("timed_out"))

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "assistant": self.assistant,
            "parsed": dataclasses.asdict(self.parsed),
            "execution": self.execution,
            "observation": None if self.observation is None else self.observation.to_json(),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "model_s": round(self.model_s, 6),
            "sandbox_s": round(self.sandbox_s, 6),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Turn:
        observation = data.get("observation")
        return cls(
            index=int(data["index"]),
            assistant=str(data["assistant"]),
            parsed=Parsed(**data.get("parsed", {})),
            execution=data.get("execution"),
            observation=None if observation is None else _message_from_json(observation),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            finish_reason=str(data.get("finish_reason", "stop")),
            model_s=float(data.get("model_s", 0.0)),
            sandbox_s=float(data.get("sandbox_s", 0.0)),
        )


def _message_from_json(data: Mapping[str, Any]) -> Message:
    parts = [
        Part("text", text=p.get("text", ""))
        if p["type"] == "text"
        else Part("image", path=p.get("path"))
        for p in data.get("parts", [])
    ]
    return Message(data["role"], parts)


@dataclass
class Trajectory:
    """A task solved (or not) turn by turn: the record rewards and the trainer read."""

    task: Task
    system: str
    prompt: Message
    turns: list[Turn] = field(default_factory=list)
    answer: str | None = None
    stop: StopReason = "answer"
    error: str | None = None
    #: When the framework failed this task (not the model): the kind, from
    #: :data:`codedance.runtime.failures.KINDS`. Such a trajectory is never scored.
    failure: str | None = None
    attempts: int = 1  # tries of the task; more than 1 after framework failures
    model: str = ""
    protocol: str = ""
    sandbox: str = ""
    duration_s: float = 0.0
    session_s: float = 0.0  # opening and closing the sandbox session
    input_images: list[str] = field(default_factory=list)
    rewards: dict[str, float] = field(default_factory=dict)

    @property
    def tool_calls(self) -> int:
        return sum(turn.called_tool for turn in self.turns)

    @property
    def failed_calls(self) -> int:
        return sum(turn.tool_failed for turn in self.turns)

    @property
    def successful_calls(self) -> int:
        return self.tool_calls - self.failed_calls

    @property
    def prompt_tokens(self) -> int:
        return sum(turn.prompt_tokens for turn in self.turns)

    @property
    def completion_tokens(self) -> int:
        return sum(turn.completion_tokens for turn in self.turns)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "system": self.system,
            "prompt": self.prompt.to_json(),
            "turns": [turn.to_json() for turn in self.turns],
            "answer": self.answer,
            "stop": self.stop,
            "error": self.error,
            "failure": self.failure,
            "attempts": self.attempts,
            "model": self.model,
            "protocol": self.protocol,
            "sandbox": self.sandbox,
            "duration_s": round(self.duration_s, 6),
            "session_s": round(self.session_s, 6),
            "input_images": self.input_images,
            "tool_calls": self.tool_calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "rewards": self.rewards,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trajectory:
        return cls(
            task=Task.from_json(data["task"]),
            system=str(data.get("system", "")),
            prompt=_message_from_json(data["prompt"]),
            turns=[Turn.from_json(t) for t in data.get("turns", [])],
            answer=data.get("answer"),
            stop=data.get("stop", "answer"),
            error=data.get("error"),
            failure=data.get("failure"),
            attempts=int(data.get("attempts", 1)),
            model=str(data.get("model", "")),
            protocol=str(data.get("protocol", "")),
            sandbox=str(data.get("sandbox", "")),
            duration_s=float(data.get("duration_s", 0.0)),
            session_s=float(data.get("session_s", 0.0)),
            input_images=list(data.get("input_images", [])),
            rewards=dict(data.get("rewards", {})),
        )

    def messages(self) -> list[Message]:
        """The conversation as the model saw it: system, prompt, then turns and observations."""
        history = (
            [Message.text("system", self.system), self.prompt] if self.system else [self.prompt]
        )
        for turn in self.turns:
            history.append(Message.text("assistant", turn.assistant))
            if turn.observation is not None:
                history.append(turn.observation)
        return history
