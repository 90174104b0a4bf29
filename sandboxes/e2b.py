"""The e2b sandbox backend: each session is an E2B code-interpreter sandbox, a remote microVM.

A session's inputs are written to ``/home/user/workspace`` with ``files.write``; a
setup cell in the sandbox's IPython kernel binds them as the local backend does
(``images``, ``image``, ``<stem>``, ``<stem>_path``, ``plt``), shows ``Image.show()``
and numpy arrays (BGR, as local reads them) as images, and installs hooks that
report the files each run changed. ``run`` is one ``run_code`` call.

``on_error``: ``keep`` is native (E2B interrupts code at its time limit and the
state stays; code that ignores the interrupt gets its kernel restarted).
``reset`` restarts the kernel (``restart_code_context``) and prepares it again;
files stay, as the VM is kept. ``rollback`` is refused: the SDK can only snapshot
a whole VM (``create_snapshot``, ``fork``), seconds per run. A sandbox that is lost
(killed, past its lifetime, unreachable) is reported as ``session_died`` and
replaced, inputs included, on the next run.

The API key comes from the variable named by ``sandbox.options.api_key_env``
(default ``E2B_API_KEY``), never from registry.yaml, and goes only to the SDK.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib
import importlib.util
import io
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from codedance.core.errors import ConfigError, MissingDependencyError
from codedance.sandboxes.base import (
    CapturedImage,
    ErrorInfo,
    ExecutionRecord,
    SandboxBackend,
    SandboxError,
    SandboxSession,
    SessionClosedError,
    SessionSpec,
)
from codedance.sandboxes.e2b_setup import FILES_MIME, setup_code

if TYPE_CHECKING:
    from codedance.core.config import SandboxConfig

__all__ = ["E2BOptions", "E2BSandbox", "E2BSession", "parse_options", "record_from_execution"]

#: The session's working directory, relative to the sandbox user's home, which is where
#: envd puts relative paths and where E2B starts the kernel: /home/user/workspace.
WORKDIR = "workspace"
ISOLATION = "e2b (remote microVM; network as configured by E2B)"
MAX_IMAGES = 16
SETUP_TIMEOUT_S = 120.0  # a cold sandbox imports matplotlib in the setup cell
DEFAULT_KEY_ENV = "E2B_API_KEY"
#: Errors E2B's server reports when the kernel restarted or the link to it broke.
_KERNEL_LOST = frozenset({"ContextRestarting", "UnexpectedEndOfExecution", "WebSocketError"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BANNER = re.compile(r"^-{20,}\n?")
_HEADER = re.compile(r"(Traceback \(most recent call last\))(?!\n)")
TIMEOUT_MESSAGE = (
    "the code was interrupted at its time limit; the session keeps the state it had reached"
)
TIMEOUT_RESET_MESSAGE = "the code was stopped at its time limit; the session was reset"
TIMEOUT_KILLED_MESSAGE = (
    "the code did not stop at its time limit (it ignored the interrupt or its kernel died); "
    "the kernel was restarted and its state is lost"
)
ROLLBACK_REFUSED = (
    "sandbox.on_error: rollback is not available on the e2b backend: E2B can only "
    "snapshot a whole VM (seconds per run), so the state after the last successful run "
    "cannot be restored. Fix: set sandbox.on_error to keep or reset in registry.yaml "
    "(or -o sandbox.on_error=keep), or use the local backend for rollback"
)
API_KEY_IN_CONFIG = (
    "sandbox.options.api_key: the E2B API key is never read from registry.yaml (it would "
    "end up in files, logs and `codedance config show`). Fix: remove it and export it in "
    "the environment variable named by sandbox.options.api_key_env (default E2B_API_KEY)"
)


# -- options -------------------------------------------------------------------------


@dataclass(frozen=True)
class E2BOptions:
    """``sandbox.options`` of the e2b backend."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    template: str | None = None  # E2B template; None: the SDK's code-interpreter template
    api_key_env: str = DEFAULT_KEY_ENV  # the variable holding the API key
    domain: str | None = None  # E2B domain; None: E2B_DOMAIN or the SDK's default
    request_timeout: float | None = None  # seconds per API request; None: the SDK's 60
    sandbox_timeout: int | None = None  # seconds a sandbox lives; None: the SDK's 300
    interrupt_grace_s: float = 10.0  # after a timeout, how long E2B may take to interrupt


def parse_options(options: Mapping[str, Any]) -> E2BOptions:
    """Validate ``sandbox.options``; ConfigError naming each bad ``sandbox.options.<key>``."""
    if "api_key" in options:
        raise ConfigError(API_KEY_IN_CONFIG)
    from pydantic import TypeAdapter, ValidationError  # loaded only when the backend is used

    try:
        parsed = TypeAdapter(E2BOptions).validate_python(dict(options))
    except ValidationError as exc:
        problems = [
            _problem(".".join(str(p) for p in e["loc"]), e.get("input"), e["msg"])
            for e in exc.errors()
        ]
        raise _options_error(problems) from None
    problems = _range_problems(parsed)
    if problems:
        raise _options_error(problems)
    return parsed


def _range_problems(options: E2BOptions) -> list[str]:
    """What pydantic's type check leaves: positive numbers and a variable name."""
    problems = []
    for key in ("request_timeout", "sandbox_timeout", "interrupt_grace_s"):
        value = getattr(options, key)
        if value is not None and value <= 0:
            problems.append(_problem(key, value, "must be greater than 0"))
    if not _ENV_NAME.match(options.api_key_env):
        problems.append(
            _problem("api_key_env", options.api_key_env, "must be an environment variable name")
        )
    return problems


def _problem(key: str, value: Any, message: str) -> str:
    return f"sandbox.options.{key}={value!r}: {message}"


def _options_error(problems: list[str]) -> ConfigError:
    known = ", ".join(f.name for f in fields(E2BOptions))
    return ConfigError(f"invalid e2b sandbox options: {'; '.join(problems)} (known: {known})")


# -- the backend -----------------------------------------------------------------------


def _import_sdk() -> ModuleType:
    """The e2b_code_interpreter SDK, imported on first use (never at codedance's import)."""
    try:
        return importlib.import_module("e2b_code_interpreter")
    except ImportError:
        raise MissingDependencyError.for_extra(
            "e2b_code_interpreter", "e2b", "the e2b sandbox backend"
        ) from None


def _require_pillow() -> None:
    """Pillow decodes the PNGs E2B sends back into raw pixels."""
    if importlib.util.find_spec("PIL") is None:
        raise MissingDependencyError.for_extra(
            "PIL", "e2b", "decoding the images of the e2b sandbox backend"
        )


class E2BSandbox(SandboxBackend):
    """Sessions in E2B code-interpreter sandboxes, one sandbox per session."""

    name = "e2b"
    runs_here = False  # code runs in E2B's cloud: admission "auto" queues nothing here

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self.options = parse_options(self.config.options)

    @classmethod
    def doctor(cls) -> str | None:
        if importlib.util.find_spec("e2b_code_interpreter") is None:
            return "e2b-code-interpreter is not installed. Fix: pip install 'codedance[e2b]'"
        if not os.environ.get(DEFAULT_KEY_ENV):
            return (
                f"{DEFAULT_KEY_ENV} is not set. Fix: export {DEFAULT_KEY_ENV}=<key from "
                "https://e2b.dev/dashboard> (sandbox.options.api_key_env names another variable)"
            )
        return None

    def open_session(self, spec: SessionSpec | None = None) -> E2BSession:
        spec = spec or SessionSpec()
        if spec.on_error == "rollback":
            raise SandboxError(ROLLBACK_REFUSED)
        sdk = _import_sdk()
        _require_pillow()
        return E2BSession(self, sdk, spec)

    def create_sandbox(self, sdk: ModuleType, spec: SessionSpec) -> Any:
        """A new E2B sandbox with the session's environment (the SDK's exceptions pass)."""
        key_env = self.options.api_key_env
        key = os.environ.get(key_env)
        if not key:
            raise SandboxError(
                f"the e2b sandbox backend needs an API key in ${key_env}, which is not set. "
                f"Fix: export {key_env}=<key from https://e2b.dev/dashboard> (the variable is "
                "named by sandbox.options.api_key_env; registry.yaml never holds the key)"
            )
        opts = self.options
        given = {
            "template": opts.template,
            "timeout": opts.sandbox_timeout,
            "domain": opts.domain,
            "request_timeout": opts.request_timeout,
        }
        kwargs = {name: value for name, value in given.items() if value is not None}
        return sdk.Sandbox.create(api_key=key, envs=self._env(spec), **kwargs)

    def redact(self, text: str) -> str:
        """``text`` without the API key, should an SDK message ever echo it."""
        key = os.environ.get(self.options.api_key_env)
        return text.replace(key, "<api key>") if key else text

    def _env(self, spec: SessionSpec) -> dict[str, str]:
        """The sandbox's variables: those ``sandbox.env`` names, then the session's own."""
        env = {name: os.environ[name] for name in self.config.env if name in os.environ}
        env.update(spec.env)
        return env


# -- sessions --------------------------------------------------------------------------


class E2BSession(SandboxSession):
    """One trajectory's E2B sandbox; replaced by a new one when it is lost."""

    isolation = ISOLATION

    def __init__(self, backend: E2BSandbox, sdk: ModuleType, spec: SessionSpec) -> None:
        self.backend, self.sdk, self.spec = backend, sdk, spec
        self.closed = False
        self._sandbox: Any = None
        self._context: Any = None  # the Python context, once looked up for a restart
        self._workdir = WORKDIR  # made absolute by the first setup cell
        self._state = "ready"  # "stale": restart the kernel first; "gone": new sandbox first
        self._open()

    @property
    def sandbox_id(self) -> str | None:
        """The current E2B sandbox's id (it changes when a lost sandbox is replaced)."""
        return None if self._sandbox is None else str(self._sandbox.sandbox_id)

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        if self.closed:
            raise SessionClosedError("run() on a closed session; open a new one")
        self._recover()
        limit = float(timeout if timeout is not None else self.backend.config.timeout_s)
        start = time.perf_counter()
        try:
            execution = self._run_code(code, limit)
        except self.sdk.TimeoutException:
            return self._timed_out(time.perf_counter() - start)
        except Exception as exc:  # httpx, e2b and OS errors alike mean the link is gone
            return self._lost(self.backend.redact(_describe(exc)), time.perf_counter() - start)
        duration = time.perf_counter() - start
        limit_chars = self.backend.config.max_output_chars
        return self._after(record_from_execution(execution, limit_chars, duration))

    def restart(self) -> None:
        if self.closed:
            raise SessionClosedError("restart() on a closed session; open a new one")
        if self._state != "gone":
            self._reset()
        if self._state == "gone":
            self._replace()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._discard()

    # -- lifecycle -------------------------------------------------------------------

    def _open(self) -> None:
        """Create and prepare a sandbox; SandboxError, with nothing left running, if not."""
        try:
            self._sandbox = self.backend.create_sandbox(self.sdk, self.spec)
            self._context, self._workdir = None, WORKDIR
            self._prepare()
        except SandboxError:
            self._discard()
            raise
        except Exception as exc:  # the SDK raises e2b, httpx and OS errors
            self._discard()
            why = self.backend.redact(_describe(exc))
            raise SandboxError(f"could not start an E2B sandbox: {why}") from None
        self._state = "ready"

    def _prepare(self) -> None:
        """Write the inputs and run the setup cell (after a start or a kernel restart)."""
        for item in (*self.spec.images, *self.spec.files):
            self._sandbox.files.write(f"{WORKDIR}/{item.name}", item.data)
        names = [image.name for image in self.spec.images]
        cell = setup_code(names, self._workdir, self.spec.tools)
        execution = self._run_code(cell, SETUP_TIMEOUT_S)
        if execution.error is not None or not execution.text:
            error = execution.error
            why = "no working directory" if error is None else f"{error.name}: {error.value}"
            raise SandboxError(f"the e2b session's setup cell failed: {why}")
        self._workdir = str(execution.text).strip("'\"")  # absolute from now on

    def _run_code(self, code: str, seconds: float) -> Any:
        """``run_code`` in the known context, given up after ``seconds`` of wall time."""
        timeout = seconds / _deadline_factor()
        return self._sandbox.run_code(code, context=self._context, timeout=timeout)

    def _recover(self) -> None:
        """Before a run: restart a kernel whose state is unknown, replace a lost sandbox."""
        if self._state == "stale":
            self._reset()
        if self._state == "gone":
            self._replace()

    def _reset(self) -> None:
        """Restart the kernel and prepare it again; if that fails the sandbox is replaced."""
        try:
            self._sandbox.restart_code_context(self._python_context())
            self._prepare()
        except Exception:  # any failure here means the sandbox cannot be trusted
            self._state = "gone"
        else:
            self._state = "ready"

    def _replace(self) -> None:
        self._discard()
        self._open()

    def _discard(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            with contextlib.suppress(Exception):  # gone already is as good as killed
                sandbox.kill()

    def _python_context(self) -> Any:
        """The sandbox's default Python context; run_code targets it once it is known."""
        if self._context is None:
            contexts = self._sandbox.list_code_contexts()
            self._context = next(c for c in contexts if c.language == "python")
        return self._context

    # -- outcomes ----------------------------------------------------------------------

    def _after(self, record: ExecutionRecord) -> ExecutionRecord:
        """Apply what a failed run means: a lost kernel, or ``on_error: reset``."""
        error = record.error
        if error is not None and error.type in _KERNEL_LOST:
            self._state = "stale"
            message = f"{error.message}; the sandbox's kernel restarted and its state is lost"
            return replace(record, error=replace(error, message=message), session_died=True)
        if error is not None and self.spec.on_error == "reset":
            self._reset()
            return replace(record, restored="reset")
        return record

    def _timed_out(self, duration: float) -> ExecutionRecord:
        """The run hit its limit: E2B interrupts the code; make sure the kernel is free."""
        if not self._is_running():
            return self._lost("the sandbox stopped: killed or past its lifetime", duration)
        message, restored, died = TIMEOUT_MESSAGE, None, False
        if self.spec.on_error == "reset":
            self._reset()
            message, restored = TIMEOUT_RESET_MESSAGE, "reset"
        elif not self._kernel_answers():
            self._reset()
            message, restored, died = TIMEOUT_KILLED_MESSAGE, "reset", True
        return ExecutionRecord(
            error=ErrorInfo("TimeoutError", message, ""),
            duration_s=duration,
            timed_out=True,
            session_died=died,
            restored=restored,
            isolation=ISOLATION,
        )

    def _kernel_answers(self) -> bool:
        """Whether the kernel, still alive, takes new code after a timeout.

        Two tries: E2B interrupts the kernel once it notices the client left, and a
        request that reaches the kernel while it handles that interrupt is aborted by
        the kernel's stop-on-error and never answered; the second try comes after.
        """
        grace = self.backend.options.interrupt_grace_s
        for _ in range(2):
            with contextlib.suppress(Exception):
                probe = self._run_code("pass", grace)
                return probe.error is None or probe.error.name not in _KERNEL_LOST
        return False

    def _is_running(self) -> bool:
        try:
            return bool(self._sandbox.is_running(request_timeout=10))
        except Exception:  # unreachable counts as gone
            return False

    def _lost(self, why: str, duration: float) -> ExecutionRecord:
        self._state = "gone"
        message = f"the E2B sandbox was lost ({why}); a new one starts on the next run"
        return ExecutionRecord(
            error=ErrorInfo("SessionDied", message, ""),
            duration_s=duration,
            session_died=True,
            isolation=ISOLATION,
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@functools.cache
def _deadline_factor() -> float:
    """How many times its ``timeout`` the SDK's ``run_code`` waits before giving up.

    The SDK sends ``run_code`` through pyqwest, whose httpx adapter turns httpx's
    per-phase timeouts into one deadline, the sum of read and write (pyqwest 0.12
    with e2b 2.63), so ``timeout=t`` lasts 2t. Asked of pyqwest itself; 1 without it.
    """
    try:
        module = importlib.import_module("pyqwest.httpx._transport")
        phases = {"connect": 1.0, "read": 1.0, "write": 1.0, "pool": 1.0}
        factor = module.convert_timeout({"timeout": phases})
    except Exception:  # absent, moved or changed: assume the SDK honours the timeout
        return 1.0
    return float(factor) if isinstance(factor, (int, float)) and factor >= 1 else 1.0


# -- mapping an Execution to a record ---------------------------------------------------


def record_from_execution(execution: Any, max_chars: int, duration: float) -> ExecutionRecord:
    """The record of an SDK ``Execution``: logs, the error, images, changed files.

    Image results (PNG, else JPEG) become raw pixels; the text of a cell's value that
    is not an image is appended to stdout like a notebook's ``Out``.
    """
    stdout, notes = list(execution.logs.stdout), []
    images: list[CapturedImage] = []
    files: list[str] = []
    for result in execution.results:
        extra = result.extra or {}
        if FILES_MIME in extra:
            files = [str(path) for path in extra[FILES_MIME]]
            continue
        image = _image(result)
        if image is not None and len(images) < MAX_IMAGES:
            images.append(image)
        elif image is not None:
            notes.append(f"[image not shown: at most {MAX_IMAGES} images per run]\n")
        elif result.is_main_result and result.text is not None:
            stdout.append(f"{result.text}\n")
    out, out_cut = _truncate("".join(stdout), max_chars)
    err, err_cut = _truncate("".join(execution.logs.stderr) + "".join(notes), max_chars)
    return ExecutionRecord(
        stdout=out,
        stderr=err,
        truncated=tuple(name for name, cut in (("stdout", out_cut), ("stderr", err_cut)) if cut),
        error=_error_info(execution.error),
        images=tuple(images),
        files=tuple(files),
        duration_s=duration,
        isolation=ISOLATION,
    )


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut at ``limit`` characters with the local backend's closing note."""
    if len(text) <= limit:
        return text, False
    dropped = len(text[limit:].encode("utf-8", errors="replace"))
    return f"{text[:limit]}\n[output truncated: {dropped} more bytes were cut]", True


def _error_info(error: Any) -> ErrorInfo | None:
    if error is None:
        return None
    return ErrorInfo(str(error.name), str(error.value), _clean_traceback(str(error.traceback)))


def _clean_traceback(text: str) -> str:
    """IPython's traceback as E2B joins it: colours and the dashed banner removed."""
    text = _BANNER.sub("", _ANSI.sub("", text))
    return _HEADER.sub(r"\1\n", text)


def _image(result: Any) -> CapturedImage | None:
    """The result's PNG or JPEG as raw RGB, RGBA or L pixels; None if it has none."""
    encoded = result.png or result.jpeg
    if not encoded:
        return None
    from PIL import Image

    source = "last_expression" if result.is_main_result else "display"
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as opened:
            image = opened
            if image.mode not in ("RGB", "RGBA", "L"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            return CapturedImage(image.mode, image.width, image.height, image.tobytes(), source)
    except (ValueError, OSError):  # bad base64 or an undecodable image: show the text
        return None
