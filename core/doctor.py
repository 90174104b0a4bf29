"""``codedance doctor``: which extras, system tools and backends are usable here.

Each check returns a :class:`Check` with a status and, when something is missing,
the exact fix. Checks never raise: a broken environment is what doctor reports.
"""

from __future__ import annotations

import importlib.util
import inspect
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from codedance.core.errors import CodedanceError

if TYPE_CHECKING:
    from codedance.core.cli import App

__all__ = ["EXTRAS", "TORCH_PIN", "Check", "run_checks"]

Status = Literal["ok", "warn", "fail"]
_T = TypeVar("_T")

#: extra -> modules it provides (import names), one per package pyproject.toml lists
#: (tests/test_doctor_extras.py keeps the two in step).
EXTRAS: dict[str, tuple[str, ...]] = {
    "tools": ("numpy", "PIL", "cv2", "matplotlib", "sympy", "shapely"),
    "hf": ("torch", "torchvision", "transformers"),
    "vllm": ("vllm",),
    "train": (
        "torch",
        "torchvision",
        "verl",
        "transformers",
        "tensordict",
        "cachetools",
        "uvicorn",
        "fastapi",
        "qwen_vl_utils",
        "pyarrow",
    ),
    "e2b": ("e2b_code_interpreter", "PIL"),
    "docker": ("docker",),
    "ocr": ("rapidocr_onnxruntime",),
    "rewards": ("math_verify", "sympy"),
    "eval": ("pyarrow", "matplotlib"),
}

#: Distributions that each install the ``cv2`` package; only one may be installed.
OPENCV_BUILDS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)

#: The torch pair the Makefile and CI install (README says the same).
TORCH_PIN = "torch==2.14.1 torchvision==0.29.1"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str = ""


def run_checks(app: App) -> list[Check]:
    """Every check, in report order; ``app`` is the CLI's :class:`~codedance.core.cli.App`."""
    checks: list[Check] = [_python()]
    for producer in (_extras, _opencv, _bubblewrap, _gpu):
        checks.extend(producer())
    checks.extend(_configuration(app))
    return checks


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check(
        "system",
        "python",
        "ok" if ok else "fail",
        f"{version} ({sys.executable})",
        "" if ok else "install Python 3.10 or newer",
    )


def _extras() -> Iterator[Check]:
    for extra, modules in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if not missing:
            yield Check("extra", extra, "ok", "installed: " + ", ".join(modules))
            continue
        fix = f"pip install 'codedance[{extra}]'"
        if "torch" in missing:
            fix = f"pip install {TORCH_PIN} (or a CUDA build) first, then " + fix
        yield Check("extra", extra, "warn", "missing: " + ", ".join(missing), fix)


def _opencv(installed: Callable[[str], str | None] | None = None) -> Iterator[Check]:
    """One OpenCV build: rapidocr pulls the GUI one (needs libGL) beside our headless one."""
    version_of = installed or _installed_version
    builds = {name: version_of(name) for name in OPENCV_BUILDS}
    present = {name: v for name, v in builds.items() if v is not None}
    if len(present) <= 1:
        detail = ", ".join(f"{n} {v}" for n, v in present.items()) or "not installed"
        yield Check("extra", "opencv", "ok", detail)
        return
    version = present.get("opencv-python-headless") or next(iter(present.values()))
    fix = (
        f"pip uninstall -y {' '.join(present)} && pip install --no-deps "
        f"opencv-python-headless=={version}"
    )
    detail = "several builds share the cv2 package: " + ", ".join(present)
    yield Check("extra", "opencv", "warn", detail, fix)


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _bubblewrap() -> Iterator[Check]:
    path = shutil.which("bwrap")
    if path is None:
        yield Check(
            "system",
            "bubblewrap",
            "warn",
            "bwrap not found (local sandbox isolation)",
            "apt-get install -y bubblewrap",
        )
        return
    probe = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"]
    result = _run(probe)
    if isinstance(result, str):
        yield Check(
            "system",
            "bubblewrap",
            "warn",
            f"{path} cannot run: {result}",
            "allow unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1",
        )
    else:
        yield Check("system", "bubblewrap", "ok", f"{path} isolates (net, pid, ipc, uts, user)")


def _gpu() -> Iterator[Check]:
    smi = shutil.which("nvidia-smi")
    result = _run([smi, "-L"]) if smi else "nvidia-smi not found"
    if isinstance(result, str):
        yield Check(
            "system",
            "gpu",
            "warn",
            f"no CUDA GPU: {result}",
            "vllm and training need a GPU; hf and the openai backend work without one",
        )
    else:
        yield Check("system", "gpu", "ok", result.stdout.strip().splitlines()[0])


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
    return result


def _configuration(app: App) -> Iterator[Check]:
    from codedance.core.config import check_names

    registry = app.registry
    yield Check(
        "plugins",
        "loaded",
        "ok",
        f"{len(registry.plugins)} plugins, {len(registry.entries())} components",
    )
    for problem in registry.problems:
        yield Check("plugins", problem.plugin, "fail", str(problem))
    try:
        config = app.config
    except CodedanceError as exc:
        yield Check("config", "configuration", "fail", str(exc))
        return
    yield Check("config", "configuration", "ok", " + ".join(app.sources.labels))
    problems = check_names(config, registry)
    for name_problem in problems:
        yield Check("config", "names", "warn", str(name_problem))
    if not any("rewards." in str(p) for p in problems):
        terms = " + ".join(f"{r.weight:g} * {r.name}" for r in config.rewards) or "none"
        yield Check("config", "rewards", "ok", f"total = {terms}; params match each component")
    yield from _backend_checks(app)


def _backend_checks(app: App) -> Iterator[Check]:
    """Registered sandboxes and models that define ``doctor()`` report their own state.

    A usable sandbox also says what it isolates (its classmethod ``describe()``, part of
    the sandbox contract); a model's ``describe()`` names a configured instance, so a
    usable model class is just "usable".
    """
    for kind in ("sandbox", "model"):
        for entry in app.registry.entries(kind):
            if getattr(entry.obj, "doctor", None) is None:
                continue
            problem, detail = _backend_state(entry.obj, app, kind)
            status: Status = "ok" if problem is None else "warn"
            yield Check("backend", f"{kind} {entry.name}", status, problem or detail)


def _backend_state(backend: Any, app: App, kind: str) -> tuple[str | None, str]:
    """(what is missing or None, the line to show when usable); a raising check is a problem."""
    method = "doctor"
    try:
        problem = _with_config(backend.doctor, app, kind)()
        if problem is not None or kind != "sandbox" or not hasattr(backend, "describe"):
            return problem, "usable"
        method = "describe"
        return None, str(_with_config(backend.describe, app, kind)())
    except Exception as exc:
        return f"{method}() raised {type(exc).__name__}: {exc}", ""


def _with_config(function: Callable[..., _T], app: App, kind: str) -> Callable[[], _T]:
    """``function`` given the sandbox settings when it takes ``config`` (the Docker image row)."""
    if kind == "sandbox" and "config" in inspect.signature(function).parameters:
        return lambda: function(config=app.config.sandbox)
    return function
