"""Turn the worker's ``result`` message into an :class:`ExecutionRecord`.

Shared by every backend that runs codedance's worker (local, Docker): the
message comes from the sandbox, so every field is checked, not trusted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from codedance.sandboxes.base import CapturedImage, ErrorInfo, ExecutionRecord
from codedance.sandboxes.worker.protocol import ProtocolError, recv_message

__all__ = ["died_record", "record_from_message", "request_restart", "request_run"]

_CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1}
#: Default for ``max_chars``: ``sandbox.max_output_chars``'s default.
DEFAULT_MAX_CHARS = 8000
MAX_FILES = 2000
_RESTORED = (None, "rollback", "reset")


class _Capper:
    """Cut every text field at its limit, with a closing note, and remember which."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max(1, max_chars)
        self.cut: list[str] = []

    def __call__(self, value: Any, name: str, limit: int | None = None) -> str:
        text = value if isinstance(value, str) else str(value)
        limit = self.max_chars if limit is None else limit
        if len(text) <= limit:
            return text
        self.cut.append(name)
        return text[:limit] + f"\n[{name} truncated: {len(text) - limit} more characters were cut]"


def record_from_message(
    header: dict[str, Any],
    blobs: list[bytes],
    isolation: str,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ExecutionRecord:
    """The record in ``header`` and ``blobs``; ValueError, KeyError or TypeError if malformed.

    Every text field is capped here, whatever the sandbox sent: stdout and stderr at
    the worker's own byte cap (4 x ``max_chars``, plus its note), the error's message
    and traceback at ``max_chars``, its type at 200; at most 2,000 listed files. A
    cut field is named in ``truncated`` and ends with a note.
    """
    if header.get("op") != "result":
        raise ValueError(f"expected a result, got {header.get('op')!r}")
    specs = header["images"]
    if len(specs) != len(blobs):
        raise ValueError("image count does not match the attached data")
    images = tuple(_image(spec, blob) for spec, blob in zip(specs, blobs, strict=False))
    cap = _Capper(max_chars)
    stream_limit = 4 * cap.max_chars + 200
    error = header.get("error")
    error_info = None
    if error is not None:
        error_info = ErrorInfo(
            cap(error["type"], "error.type", 200),
            cap(error["message"], "error.message"),
            cap(error["traceback"], "error.traceback"),
        )
    files = [cap(f, "files", 4096) for f in list(header.get("files", []))[:MAX_FILES]]
    truncated = [str(s)[:50] for s in list(header.get("truncated", []))[:8]]
    restored = header.get("restored")
    return ExecutionRecord(
        stdout=cap(header["stdout"], "stdout", stream_limit),
        stderr=cap(header["stderr"], "stderr", stream_limit),
        truncated=tuple(dict.fromkeys([*truncated, *cap.cut])),
        error=error_info,
        images=images,
        files=tuple(files),
        duration_s=float(header.get("duration_s", 0.0)),
        timed_out=bool(header.get("timed_out", False)),
        session_died=bool(header.get("session_died", False)),
        restored=restored if restored in _RESTORED else "reset",
        isolation=isolation,
    )


def _image(spec: dict[str, Any], blob: bytes) -> CapturedImage:
    mode, width, height = str(spec["mode"]), int(spec["width"]), int(spec["height"])
    if (
        mode not in _CHANNELS
        or width < 1
        or height < 1
        or len(blob) != width * height * _CHANNELS[mode]
    ):
        raise ValueError(f"image {mode} {width}x{height} does not match {len(blob)} bytes")
    return CapturedImage(mode, width, height, blob, str(spec.get("source", "display")))


def request_run(
    send: Callable[[dict[str, Any]], None],
    reader: socket.socket,
    code: str,
    limit: float,
    isolation: str,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ExecutionRecord | str:
    """Send one ``run`` request and read its record; a string says why the channel failed.

    The worker enforces ``limit`` itself; the read allows 30 s more as a backstop
    against a worker that stopped answering.
    """
    try:
        send({"op": "run", "code": code, "timeout": limit})
        if reader.gettimeout() != limit + 30:  # settimeout costs syscalls: only on change
            reader.settimeout(limit + 30)
        header, blobs = recv_message(reader)
    except (ProtocolError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        return record_from_message(header, blobs, isolation, max_chars)
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed result ({exc})"


def request_restart(
    send: Callable[[dict[str, Any]], None], reader: socket.socket, timeout: float = 60.0
) -> bool:
    """Ask the session to start over in place; False when it did not answer ``ready``."""
    try:
        send({"op": "restart"})
        reader.settimeout(timeout)
        header, _ = recv_message(reader)
    except (ProtocolError, OSError):
        return False
    return header.get("op") == "ready"


def died_record(
    message: str, duration: float, isolation: str, *, infrastructure: bool | None = None
) -> ExecutionRecord:
    """The record of a run whose session stopped answering.

    ``infrastructure`` says the framework lost the session, not the code: by default,
    when its channel closed (the worker was killed from outside; a crash of the code
    itself is reported by the session's init as ``ProcessDied``). A channel that only
    went silent past the backstop may be code that defeated its own time limit, so it
    stays the code's failure: excusing it would reward the model for hanging.
    """
    if infrastructure is None:
        infrastructure = "TimeoutError" not in message and "timed out" not in message
    return ExecutionRecord(
        error=ErrorInfo("SessionDied", message, ""),
        duration_s=duration,
        session_died=True,
        isolation=isolation,
        infrastructure=infrastructure,
    )
