"""The multi-turn loop: model turn, parse, execute, observe, until an answer or a limit.

:class:`Runner` solves one task per call of :meth:`Runner.solve`, each with its own
conversation and its own sandbox session, opened lazily on the first code turn (a
task answered without code never starts a sandbox). :meth:`Runner.solve_all` runs
many at once under a concurrency bound and hands each finished trajectory to a
callback as soon as it is done, so a killed run loses only the unfinished ones.
The trajectory in progress is visible to model backends through
:data:`current_trajectory` (the replay backend reads the task id and the last
execution from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codedance.core.errors import CodedanceError
from codedance.runtime.failures import InfrastructureError
from codedance.runtime.images import ImagePolicy, png_bytes
from codedance.runtime.model import ModelBackend, ModelError
from codedance.runtime.protocol import Protocol
from codedance.runtime.types import Message, Part, Task, Trajectory, Turn
from codedance.sandboxes.base import (
    InputFile,
    OnError,
    SandboxBackend,
    SandboxError,
    SandboxSession,
    SessionSpec,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.sandboxes.tools import ToolBundle

__all__ = ["Limits", "Runner", "current_trajectory", "execute_turn"]

#: The trajectory being generated in this asyncio task (None outside the loop).
current_trajectory: contextvars.ContextVar[Trajectory | None] = contextvars.ContextVar(
    "codedance_current_trajectory", default=None
)

REMOVED_IMAGE = "[an earlier image was removed to keep the context within its image limit]"


@dataclass(frozen=True)
class Limits:
    """Per-trajectory limits: turns, tokens (prompt + completion), images in context."""

    max_turns: int = 10
    max_tokens: int = 32768
    max_images: int = 32
    images: ImagePolicy = field(default_factory=ImagePolicy)


class Runner:
    """Turns tasks into trajectories with one model, one protocol and one sandbox backend."""

    def __init__(
        self,
        *,
        model: ModelBackend,
        protocol: Protocol,
        sandbox: SandboxBackend,
        tools: ToolBundle | None = None,
        tools_section: str = "",
        limits: Limits | None = None,
        on_error: OnError = "keep",
        infra_retries: int = 2,
    ) -> None:
        self.model, self.protocol, self.sandbox = model, protocol, sandbox
        self.tools, self.tools_section = tools, tools_section
        self.limits = limits or Limits()
        self.on_error: OnError = on_error
        self.infra_retries = infra_retries
        self.system = protocol.system_prompt(tools_section)

    async def solve(self, task: Task) -> Trajectory:
        """One trajectory for ``task``; problems end it with a stop reason, never raise.

        When the framework fails it (a session that did not start, a worker lost
        while code ran), the task starts over with a fresh session, up to
        ``infra_retries`` more times, after a short pause; the last attempt's
        trajectory says how many there were and, if they all failed, ``failure``.
        """
        attempt = 1
        while True:
            trajectory = await self._attempt(task)
            trajectory.attempts = attempt
            if trajectory.failure is None or attempt > self.infra_retries:
                return trajectory
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))  # let the machine catch up
            attempt += 1

    async def _attempt(self, task: Task) -> Trajectory:
        started = time.perf_counter()
        try:
            images = await asyncio.to_thread(self._load_images, task)
        except (OSError, ValueError) as exc:
            return self._failed(task, f"could not read the task's images: {exc}", started)
        trajectory = Trajectory(
            task=task,
            system=self.system,
            prompt=self.protocol.user_message(task, images),
            model=self.model.describe(),
            protocol=self.protocol.name,
            sandbox=self.sandbox.name,
        )
        token = current_trajectory.set(trajectory)
        conversation = _Conversation(self, trajectory, images)
        try:
            await conversation.run()
        except InfrastructureError as exc:
            trajectory.stop, trajectory.error, trajectory.failure = "error", str(exc), exc.kind
        except (CodedanceError, OSError) as exc:
            trajectory.stop, trajectory.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            current_trajectory.reset(token)
            await conversation.close()
        trajectory.duration_s = time.perf_counter() - started
        return trajectory

    async def solve_all(
        self,
        tasks: Iterable[Task],
        concurrency: int,
        on_done: Callable[[Trajectory], Awaitable[None] | None] | None = None,
    ) -> list[Trajectory]:
        """Solve ``tasks``, at most ``concurrency`` at once; ``on_done`` sees each as it ends."""
        finished: list[Trajectory] = []
        async for trajectory in self.iter_solved(tasks, concurrency):
            finished.append(trajectory)
            if on_done is not None:
                result = on_done(trajectory)
                if result is not None:
                    await result
        return finished

    async def iter_solved(
        self, tasks: Iterable[Task], concurrency: int
    ) -> AsyncIterator[Trajectory]:
        """Trajectories in completion order; at most ``concurrency`` tasks are started ahead."""
        pending: set[asyncio.Task[Trajectory]] = set()
        iterator = iter(tasks)
        while True:
            while len(pending) < max(1, concurrency):
                task = next(iterator, None)
                if task is None:
                    break
                pending.add(asyncio.ensure_future(self.solve(task)))
            if not pending:
                return
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def _load_images(self, task: Task) -> list[PILImage]:
        from PIL import Image

        loaded = []
        for path in task.images:
            with Image.open(path) as image:
                image.load()
                loaded.append(self.limits.images.fit(image))
        return loaded

    def _failed(self, task: Task, error: str, started: float) -> Trajectory:
        prompt = Message.text("user", task.question)
        trajectory = Trajectory(task, self.system, prompt, stop="error", error=error)
        trajectory.model, trajectory.protocol = self.model.describe(), self.protocol.name
        trajectory.duration_s = time.perf_counter() - started
        return trajectory


async def execute_turn(
    turn: Turn,
    session: SandboxSession,
    protocol: Protocol,
    policy: ImagePolicy,
    *,
    turns_left: int,
    room: int | None = None,
) -> Message:
    """Run ``turn``'s code in ``session``, record it on the turn, and word the observation.

    Images go through ``policy`` (a sliver is left out); at most ``room`` of them are
    shown. ``turn.execution["shown_images"]`` says which of the record's images the
    model saw. Shared by this loop and the verl agent loop.
    """
    assert turn.parsed.code is not None
    started = time.perf_counter()
    record = await session.arun(turn.parsed.code)
    turn.sandbox_s = time.perf_counter() - started
    turn.record, turn.execution = record, record.to_json()
    shown = [policy.observation(image.to_pil()) for image in record.images]
    kept = [(i, image) for i, image in enumerate(shown) if image is not None][:room]
    turn.execution["shown_images"] = [i for i, _ in kept]
    images = [image for _, image in kept]
    return protocol.observation(record, images, turns_left=turns_left, parsed=turn.parsed)


def _start_failure(exc: Exception) -> str:
    """The reason a session did not start, said once (backends often say it themselves)."""
    text = str(exc)
    if "did not start" in text or "failed to start" in text:
        return text
    return f"the sandbox session did not start: {type(exc).__name__}: {text}"


class _Conversation:
    """The state of one trajectory in flight: history, the lazy session, the turn count."""

    def __init__(self, runner: Runner, trajectory: Trajectory, images: Sequence[PILImage]) -> None:
        self.runner, self.trajectory, self.images = runner, trajectory, images
        self.history: list[Message] = [trajectory.prompt]
        if trajectory.system:
            self.history.insert(0, Message.text("system", trajectory.system))
        self.session: SandboxSession | None = None

    async def run(self) -> None:
        limits, trajectory = self.runner.limits, self.trajectory
        for index in range(limits.max_turns):
            turns_left = limits.max_turns - index - 1  # model turns after this one
            turn = await self._model_turn(index)
            if turn is None:
                return
            if turn.parsed.answer is not None and turn.parsed.code is None:
                trajectory.answer, trajectory.stop = turn.parsed.answer, "answer"
                return
            if turn.prompt_tokens + turn.completion_tokens >= limits.max_tokens:
                trajectory.stop = "max_tokens"
                return
            if turns_left == 0:
                break
            turn.observation = await self._observe(turn, turns_left)
            self.history.append(turn.observation)
        trajectory.stop = "max_turns"

    async def _model_turn(self, index: int) -> Turn | None:
        runner, started = self.runner, time.perf_counter()
        try:
            generation = await runner.model.generate(self._context(), stop=runner.protocol.stop)
        except ModelError as exc:
            self.trajectory.stop, self.trajectory.error = "model_error", str(exc)
            return None
        turn = Turn(
            index=index,
            assistant=generation.text,
            parsed=runner.protocol.parse(generation.text),
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            finish_reason=generation.finish_reason,
            model_s=time.perf_counter() - started,
        )
        self.trajectory.turns.append(turn)
        self.history.append(Message.text("assistant", generation.text))
        return turn

    async def _observe(self, turn: Turn, turns_left: int) -> Message:
        protocol = self.runner.protocol
        if turn.parsed.code is None:
            return protocol.problem_message(turn.parsed, turns_left=turns_left)
        session = await self._session()
        observation = await execute_turn(
            turn, session, protocol, self.runner.limits.images, turns_left=turns_left
        )
        if turn.record is not None and turn.record.infrastructure:
            error = turn.record.error
            detail = error.message if error is not None else "the session was lost"
            raise InfrastructureError("sandbox_lost", f"the sandbox worker was lost: {detail}")
        return observation

    async def _session(self) -> SandboxSession:
        if self.session is None:
            runner = self.runner
            names = runner.protocol.input_names(self.trajectory.task)
            inputs = [InputFile(n, png_bytes(i)) for n, i in zip(names, self.images, strict=False)]
            spec = SessionSpec(images=inputs, tools=runner.tools, on_error=runner.on_error)
            started = time.perf_counter()
            try:
                self.session = await runner.sandbox.aopen_session(spec)
            except (SandboxError, OSError) as exc:
                raise InfrastructureError("sandbox_start", _start_failure(exc)) from exc
            finally:
                self.trajectory.session_s += time.perf_counter() - started
        return self.session

    def _context(self) -> list[Message]:
        """The history, with the oldest observation images dropped beyond the image limit."""
        limit = self.runner.limits.max_images
        total = sum(len(message.images) for message in self.history)
        if total <= limit:
            return self.history
        excess, trimmed = total - limit, []
        for position, message in enumerate(self.history):
            if excess and position > 1 and message.role == "user" and message.images:
                parts = []
                for part in message.parts:
                    if part.type == "image" and excess:
                        parts.append(Part.of_text(REMOVED_IMAGE))
                        excess -= 1
                    else:
                        parts.append(part)
                message = Message(message.role, parts)
            trimmed.append(message)
        return trimmed

    async def close(self) -> None:
        if self.session is not None:
            started = time.perf_counter()
            with contextlib.suppress(SandboxError):
                await self.session.aclose()
            self.trajectory.session_s += time.perf_counter() - started
