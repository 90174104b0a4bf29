"""What the conformance suite checks on every record, and the sessions its tests open.

:func:`check_record` holds a record to the field types of the contract
(docs/sandboxes.md#record-fields); :class:`SessionOpener` is the suite's
``open_session`` fixture, whose sessions check every record they return.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance.sandboxes.base import (
    CapturedImage,
    ErrorInfo,
    ExecutionRecord,
    SandboxBackend,
    SandboxSession,
    SessionSpec,
)
from codedance.sandboxes.conformance_guard import GuaranteeBroken

__all__ = [
    "TRUNCATION_NOTE",
    "CheckedSession",
    "SessionOpener",
    "ToolPackage",
    "check_record",
    "write_tool_package",
]

IMAGE_SOURCES = ("display", "show", "figure", "last_expression")
CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1}
TRUNCATION_NOTE = re.compile(r"\n\[output truncated: (\d+) more bytes were cut\]\Z")


def _broken(gid: str, condition: bool, detail: str) -> None:
    if not condition:
        raise GuaranteeBroken(gid, detail)


def check_record(record: object, isolation: str | None = None) -> ExecutionRecord:
    """Raise :class:`GuaranteeBroken` unless ``record`` has the contract's types and values."""
    _broken("record-fields", isinstance(record, ExecutionRecord), f"run returned {record!r}")
    assert isinstance(record, ExecutionRecord)
    r = record
    _broken("record-fields", isinstance(r.stdout, str) and isinstance(r.stderr, str), repr(r))
    streams_ok = isinstance(r.truncated, tuple) and set(r.truncated) <= {"stdout", "stderr"}
    _broken(
        "record-fields",
        streams_ok and len(set(r.truncated)) == len(r.truncated),
        f"truncated={r.truncated!r}: a tuple naming 'stdout' and/or 'stderr'",
    )
    _check_error(r.error)
    _broken("record-fields", isinstance(r.images, tuple), f"images={type(r.images).__name__}")
    for image in r.images:
        _check_image(image)
    files_ok = isinstance(r.files, tuple) and all(
        isinstance(f, str) and f and not f.startswith("/") and ".." not in f.split("/")
        for f in r.files
    )
    _broken("record-fields", files_ok, f"files={r.files!r}: workdir-relative path strings")
    _broken(
        "record-fields",
        isinstance(r.duration_s, float) and r.duration_s >= 0,
        f"duration_s={r.duration_s!r}: a float >= 0",
    )
    flags = (r.timed_out, r.session_died)
    _broken("record-fields", all(isinstance(f, bool) for f in flags), f"flags {flags!r}")
    _broken(
        "record-fields",
        r.restored in (None, "rollback", "reset"),
        f"restored={r.restored!r}: None, 'rollback' or 'reset'",
    )
    _broken(
        "record-fields",
        not r.timed_out or r.error is not None,
        "a timed-out run has an error (type 'TimeoutError')",
    )
    _broken(
        "isolation-label",
        isinstance(r.isolation, str) and bool(r.isolation.strip()),
        f"isolation={r.isolation!r}",
    )
    if isolation is not None:
        _broken(
            "isolation-label",
            r.isolation == isolation,
            f"record.isolation {r.isolation!r} != session.isolation {isolation!r}",
        )
    return r


def _check_error(error: object) -> None:
    if error is None:
        return
    fields_ok = isinstance(error, ErrorInfo) and all(
        isinstance(getattr(error, name), str) for name in ("type", "message", "traceback")
    )
    _broken("record-fields", fields_ok, f"error={error!r}: an ErrorInfo of three strings")
    assert isinstance(error, ErrorInfo)
    _broken("record-fields", bool(error.type), "error.type names the exception")


def _check_image(image: object) -> None:
    _broken("record-fields", isinstance(image, CapturedImage), f"image {image!r}")
    assert isinstance(image, CapturedImage)
    size_ok = isinstance(image.width, int) and isinstance(image.height, int)
    _broken(
        "image-modes",
        image.mode in CHANNELS and size_ok and min(image.width, image.height) > 0,
        f"mode {image.mode!r}, {image.width!r}x{image.height!r}",
    )
    expected = image.width * image.height * CHANNELS[image.mode]
    _broken(
        "image-modes",
        isinstance(image.data, bytes) and len(image.data) == expected,
        f"{image.mode} {image.width}x{image.height} needs {expected} bytes",
    )
    _broken("record-fields", image.source in IMAGE_SOURCES, f"source {image.source!r}")


class CheckedSession:
    """A session whose every record is checked against the contract's field types."""

    def __init__(self, session: SandboxSession) -> None:
        self.session = session

    def run(self, code: str, timeout: float | None = None) -> ExecutionRecord:
        return check_record(self.session.run(code, timeout), self.session.isolation)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


class SessionOpener:
    """``open_session(**spec_fields)``: sessions closed when the test ends."""

    def __init__(self, backend: SandboxBackend) -> None:
        self.backend = backend
        self.opened: list[SandboxSession] = []

    def __call__(self, **fields: Any) -> Any:
        session = self.backend.open_session(SessionSpec(**fields))
        self.opened.append(session)
        return CheckedSession(session)

    def close_all(self) -> None:
        for session in self.opened:
            session.close()
        self.opened.clear()


# -- a tool package the sandbox has never seen -------------------------------------------

_PACKAGE_FILES = {
    "__init__.py": "from codedance import hookimpl  # the plugin side: never sent\n",
    "_helpers.py": "def double(x):\n    return x * 2\n",
    "tools.py": (
        "from ._helpers import double\n\n\n"
        "def twice(x: int) -> int:\n"
        '    """Twice ``x``."""\n'
        "    if not isinstance(x, int):\n"
        "        raise TypeError(f'twice wants an int, got {x!r}')\n"
        "    return double(x)\n"
    ),
    "needy.py": "import {host_only}\n\n\ndef needy() -> int:\n    return {host_only}.VALUE\n",
}
_PACKAGES = itertools.count()


@dataclass(frozen=True)
class ToolPackage:
    """A tool plugin written to a temporary folder, importable only on the host."""

    name: str
    host_only: str
    twice: Callable[[int], int]
    needy: Callable[[], int]


def write_tool_package(root: Path) -> ToolPackage:
    index = next(_PACKAGES)
    name, host_only = f"cd_conformance_pkg{index}", f"cd_conformance_hostonly{index}"
    (root / name).mkdir()
    for file, text in _PACKAGE_FILES.items():
        (root / name / file).write_text(text.replace("{host_only}", host_only))
    (root / f"{host_only}.py").write_text("VALUE = 1\n")
    tools: Any = importlib.import_module(f"{name}.tools")
    needy: Any = importlib.import_module(f"{name}.needy")
    return ToolPackage(name, host_only, tools.twice, needy.needy)
