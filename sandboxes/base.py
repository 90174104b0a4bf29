"""The sandbox contract: backends open stateful sessions; ``run`` returns a record.

A backend is a registered plugin (``register_sandboxes``) subclassing
:class:`SandboxBackend`; it opens :class:`SandboxSession` objects, one per
trajectory. A session keeps variables, imports and files across runs, starts with
the task's input images preloaded, and turns each ``run(code, timeout)`` into one
:class:`ExecutionRecord`. Every method has an async twin for the runtime.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from codedance.core.errors import CodedanceError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from codedance.core.config import SandboxConfig
    from codedance.sandboxes.admission import Admission
    from codedance.sandboxes.tools import ToolBundle

__all__ = [
    "CapturedImage",
    "ErrorInfo",
    "ExecutionRecord",
    "InputFile",
    "OnError",
    "SandboxBackend",
    "SandboxError",
    "SandboxSession",
    "SessionClosedError",
    "SessionSpec",
]

OnError = Literal["keep", "rollback", "reset"]


class SandboxError(CodedanceError):
    """The sandbox framework itself failed (not the model's code)."""


class SessionClosedError(SandboxError):
    """``run`` was called on a session that is closed."""


@dataclass(frozen=True)
class ErrorInfo:
    """The exception model code raised, with the traceback trimmed to its own lines."""

    type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class CapturedImage:
    """An image the code produced, as raw pixels (no encode cost on the hot path)."""

    mode: str  # PIL mode: "RGB", "RGBA" or "L"
    width: int
    height: int
    data: bytes = field(repr=False)
    source: str = "display"  # display | show | figure | last_expression

    def to_pil(self) -> PILImage:
        """The image as a PIL image (needs Pillow)."""
        from PIL import Image

        return Image.frombytes(self.mode, (self.width, self.height), self.data)

    def save(self, path: Path) -> Path:
        """Write the image as PNG to ``path`` and return it."""
        self.to_pil().save(path, format="PNG")
        return path


@dataclass(frozen=True)
class ExecutionRecord:
    """What one ``run`` produced. Model failures are data here, never exceptions."""

    stdout: str = ""
    stderr: str = ""
    truncated: tuple[str, ...] = ()  # the streams that were cut: "stdout", "stderr"
    error: ErrorInfo | None = None
    images: tuple[CapturedImage, ...] = ()
    files: tuple[str, ...] = ()  # workdir-relative paths the run created or changed
    duration_s: float = 0.0
    timed_out: bool = False
    session_died: bool = False  # the state was lost (killed, crashed, out of memory)
    restored: str | None = None  # "rollback" or "reset" when on_error changed the state
    isolation: str = "none"
    #: The framework failed, not the code: the session's worker was lost (killed from
    #: outside, its channel closed) while the code ran. Never the model's fault.
    infrastructure: bool = False

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without an exception."""
        return self.error is None and not self.timed_out and not self.session_died

    def to_json(self, image_paths: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict; images are listed as ``image_paths`` when given."""
        images: list[Any] = (
            list(image_paths)
            if image_paths is not None
            else [
                {"mode": i.mode, "width": i.width, "height": i.height, "source": i.source}
                for i in self.images
            ]
        )
        error = None if self.error is None else vars(self.error).copy()
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "truncated": list(self.truncated),
            "error": error,
            "images": images,
            "files": list(self.files),
            "timed_out": self.timed_out,
            "session_died": self.session_died,
            "restored": self.restored,
            "duration_s": round(self.duration_s, 6),
            "isolation": self.isolation,
            "infrastructure": self.infrastructure,
        }


@dataclass(frozen=True)
class InputFile:
    """A file placed in the session's working directory before the first run."""

    name: str  # a plain file name, no directories
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise SandboxError(
                f"input file name {self.name!r} must be a plain name such as 'input_image.jpg'"
            )


@dataclass(frozen=True)
class SessionSpec:
    """What a new session starts with.

    Every file in ``images`` is written to the working directory and opened as a
    PIL image: ``images`` is the list, ``image`` the first, and each file whose
    stem is an identifier is also bound by that name (``input_image.jpg`` ->
    ``input_image``, as CodeDance's prompts expect). ``files`` are written only.
    ``env`` is the whole environment model code sees besides a minimal PATH.
    ``tools`` (from :func:`codedance.sandboxes.tools.bundle_tools`) are bound by
    name in the namespace; one whose module cannot be imported there is explained
    on the first run's stderr.
    """

    images: Sequence[InputFile] = ()
    files: Sequence[InputFile] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    on_error: OnError = "keep"
    tools: ToolBundle | None = None


_EXECUTOR: Any = None


def _run_blocking(function: Any, *args: Any) -> Any:
    """Await ``function(*args)`` on a pool sized for many sessions, not asyncio's small default."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=512, thread_name_prefix="codedance-sandbox")
    return asyncio.get_running_loop().run_in_executor(_EXECUTOR, function, *args)


class SandboxSession(ABC):
    """One trajectory's stateful execution context."""

    isolation: str = "none"
    #: Set by :meth:`SandboxBackend.aopen_session`: the queue each async run waits in.
    admission: Admission | None = None

    @abstractmethod
    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        """Execute ``code`` in the session's state; never raises for model failures."""

    @abstractmethod
    def restart(self) -> None:
        """Start over with the initial state (inputs reloaded, variables gone)."""

    @abstractmethod
    def close(self) -> None:
        """Free every process, file and connection of the session. Idempotent."""

    async def arun(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        """Async twin of :meth:`run`; waits for a run slot first (its clock starts after)."""
        if self.admission is None:
            record: ExecutionRecord = await _run_blocking(self.run, code, timeout)
        else:
            record = await _run_blocking(self.admission.run, self.run, code, timeout)
        return record

    async def arestart(self) -> None:
        """Async twin of :meth:`restart`."""
        await _run_blocking(self.restart)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await _run_blocking(self.close)

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SandboxSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SandboxBackend(ABC):
    """A registered sandbox backend; ``sandbox.backend`` in registry.yaml picks one."""

    name: ClassVar[str]
    #: False for backends whose code runs on another machine (``admission: auto``
    #: then sets no limit, since this machine's cores are not the bottleneck).
    runs_here: ClassVar[bool] = True

    def __init__(self, config: SandboxConfig | None = None) -> None:
        from codedance.core.config import SandboxConfig

        self.config = config or SandboxConfig(backend=self.name)
        self._admission: Admission | None = None

    @property
    def admission(self) -> Admission:
        """The start and run queues of this backend's async sessions (``sandbox.admission``)."""
        if self._admission is None:
            from codedance.sandboxes.admission import Admission

            limits = self.config.admission
            self._admission = Admission.from_limits(limits.starting, limits.running, self.runs_here)
        return self._admission

    def session_spec(self, spec: SessionSpec | None = None) -> SessionSpec:
        """``spec`` with ``sandbox.threads`` applied: every native thread pool capped.

        The caps go into ``spec.env`` (which every backend passes to model code) under
        the spec's own values, so a caller can still raise one deliberately.
        """
        from codedance.sandboxes.admission import thread_env

        spec = spec or SessionSpec()
        return dataclasses.replace(spec, env={**thread_env(self.config.threads), **spec.env})

    @abstractmethod
    def open_session(self, spec: SessionSpec | None = None) -> SandboxSession:
        """Start a session with ``spec``'s inputs; raises :class:`SandboxError` on failure."""

    async def aopen_session(self, spec: SessionSpec | None = None) -> SandboxSession:
        """Async twin of :meth:`open_session`, for many sessions at once.

        The spec gets the thread caps (:meth:`session_spec`); the start waits for a
        start slot, and the session's runs for run slots (``sandbox.admission``).
        """
        admission = self.admission
        spec = self.session_spec(spec)
        session: SandboxSession = await _run_blocking(admission.start, self.open_session, spec)
        session.admission = admission
        return session

    def close(self) -> None:  # noqa: B027 - optional for backends without shared state
        """Free resources shared by this backend's sessions (worker pools, clients)."""

    @classmethod
    def doctor(cls) -> str | None:
        """None when usable here, else what is missing and how to fix it."""
        return None

    @classmethod
    def describe(cls) -> str:
        """One line on what a session isolates here, shown by ``codedance doctor``.

        Called only when :meth:`doctor` found nothing missing. The default says only
        that the backend is usable; a backend that isolates says how (the local one
        names bubblewrap, namespaces and cgroups).
        """
        return "usable"

    def __enter__(self) -> SandboxBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
