"""Sandbox benchmark, real Docker engine: the docker backend beside local, subprocess, Jupyter.

Measured with ``bench/sandbox.py``'s own steps (session ready, ``run("1")`` round trip,
512 crop of the 1024 input, 16 and 64 concurrent sessions, idle USS), on the engine at
``DOCKER_HOST`` with the sandbox image (``codedance sandbox build-image``):

- warm-pool rows: the default settings, a pool of 2 containers (``sandbox.options.pool_size``),
  session ready timed with the pool full, as a runtime opening sessions one at a time sees;
- cold rows: ``pool_size: 0``, every session boots a container and preloads the stack.

``bench/sandbox.py`` calls :func:`add` after its own systems, so one run fills both tables;
``python bench/sandbox_docker.py [--quick]`` measures local and Docker only. The table goes
between the ``sandbox-docker`` markers in docs/benchmarks.md. Without an engine or the image,
the section says why and nothing is measured. 256 sessions are not run: each container holds
its own interpreter with the stack (see the USS row), a few GB for 256.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import psutil

from codedance.core.config import SandboxConfig
from codedance.sandboxes.base import InputFile, SessionSpec

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- sandbox-docker:begin -->", "<!-- sandbox-docker:end -->"
SECTION = f"""
## Sandbox on a real Docker engine

`python bench/sandbox_docker.py [--quick]` (also run by `bench/sandbox.py`). The docker
backend on a real engine, with and without its warm container pool, beside the systems of
the table above measured in the same run; the script's docstring says what each column is.

{BEGIN}
{END}
"""
SIZES = (16, 64)
BUDGET_S = 300.0
COLUMNS = ("docker", "local", "subprocess", "jupyter")


class DockerSystem:
    """The docker backend as a system of bench/sandbox.py (duck-typed like its System)."""

    crop_code = "image.crop((0, 0, 512, 512))"
    counts: ClassVar[dict[str, int]] = {"ready": 20, "run": 300, "crop": 30, "idle": 8}
    uss_mb: float | None = None

    def __init__(self, pool_size: int, base: ModuleType) -> None:
        from codedance.sandboxes.docker import DockerSandbox

        self.base, self.pool_size = base, pool_size
        self.name = "docker (pool)" if pool_size else "docker (no pool)"
        problem = engine_problem()
        if problem is not None:
            raise base.Unavailable(problem)
        config = SandboxConfig(backend="docker", options={"pool_size": pool_size})
        self.backend = DockerSandbox(config)
        start = time.perf_counter()
        self.close_session(self.open())
        self.start_ms = (time.perf_counter() - start) * 1000
        self.isolation = ""

    def open(self, images: Sequence[InputFile] = ()) -> Any:
        session = self.backend.open_session(SessionSpec(images=list(images)))
        self.isolation = session.isolation
        return session

    def run(self, session: Any, code: str) -> Any:
        return self.base._local_outcome(session.run(code))

    def close_session(self, session: Any) -> None:
        session.close()

    def time_ready(self) -> tuple[float, float]:
        """Ms until a session runs code; with a pool, timed once the pool is full again."""
        self._await_full_pool()
        start = time.perf_counter()
        session = self.open()
        elapsed = (time.perf_counter() - start) * 1000
        self.close_session(session)
        return elapsed, elapsed  # the relay preloads the stack before any session

    def _await_full_pool(self) -> None:
        pool = self.backend.pool()
        if pool is not None:
            pool.fill()
        deadline = time.monotonic() + 60
        while pool is not None and len(pool.ready) < self.pool_size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pool did not refill: {pool.last_error}")
            time.sleep(0.05)

    def guess_s(self, cells: dict[str, Any]) -> float | None:
        return None  # measure_load runs the first level and extrapolates from it

    def idle_uss_mb(self, n: int) -> float:
        """Mean USS of the processes of ``n`` containers (relay, init, holder) on the host."""
        sessions = [self.open() for _ in range(n)]
        try:
            for session in sessions:
                self.base._check(self.run(session, "1"))
            api = self.backend.client().api
            pids = [api.inspect_container(s.container.id)["State"]["Pid"] for s in sessions]
            return float(self.base._mean_tree_uss([psutil.Process(pid) for pid in pids]))
        finally:
            for session in sessions:
                session.close()

    def notes(self) -> list[str]:
        return [
            f"{self.name}: backend start (engine connect, first container boot) "
            f"{self.start_ms:.0f} ms; pool_size {self.pool_size}.",
            f"{self.name} isolation: {self.isolation}.",
        ]

    def close(self) -> None:
        self.backend.close()


def engine_problem() -> str | None:
    """Why Docker cannot be measured here, or None."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is missing: pip install 'codedance[docker]'"
    from codedance.sandboxes.docker_options import DEFAULT_IMAGE

    try:
        with contextlib.closing(docker.from_env(timeout=5)) as client:
            client.ping()
            client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        return f"the image {DEFAULT_IMAGE} is missing: codedance sandbox build-image"
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    return None


def measure(
    system: DockerSystem, quick: bool, image: InputFile, base: ModuleType
) -> dict[str, Any]:
    """bench/sandbox.py's steps for one Docker system; the no-pool one only opens sessions."""
    counts = {k: max(3, v // 4) if quick else v for k, v in system.counts.items()}
    steps = {"ready": lambda: base.measure_ready(system, counts["ready"])}
    if system.pool_size:
        steps.update(
            {
                "round trip": lambda: base.measure_runs(system, counts["run"]),
                "crop": lambda: base.measure_crop(system, counts["crop"], image),
                "idle memory": lambda: base.measure_idle(system, counts["idle"]),
                "concurrency": lambda: base.measure_load(system, SIZES, BUDGET_S, None),
            }
        )
    cells: dict[str, Any] = {}
    for what, step in steps.items():
        start = time.perf_counter()
        try:
            cells.update(step())
        except Exception as exc:
            cells[f"error {what}"] = base.Cell(None, f"{system.name}: {what} failed: {exc}")
        print(f"{system.name}: {what} took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return cells


def add(base: ModuleType, results: dict[str, Any], quick: bool, image: InputFile) -> None:
    """Measure Docker (when reachable) and write its table beside ``results``' systems.

    One ``docker`` column: the warm-pool rows from the default backend, the cold rows
    from one with ``pool_size: 0``, as the local column reads.
    """
    notes: list[str] = []
    cells: dict[str, Any] = {}
    for pool_size in (2, 0):
        try:
            system = DockerSystem(pool_size, base)
        except base.Unavailable as exc:
            notes.append(f"Docker not measured: {exc}.")
            break
        try:
            measured = measure(system, quick, image, base)
            cells.update(_as_pool_rows(measured) if pool_size else measured)
            notes += system.notes()
        finally:
            system.close()
    if cells:
        results["docker"] = cells
    write_doc(render(base, results, notes, quick))


def _as_pool_rows(cells: dict[str, Any]) -> dict[str, Any]:
    """The pooled system's ready times are the warm-pool rows."""
    renamed = {"ready50": "pool50", "ready90": "pool90"}
    return {renamed.get(k, k): v for k, v in cells.items() if k != "stack50"}


def render(base: ModuleType, results: dict[str, Any], notes: list[str], quick: bool) -> str:
    """The table: one column per measured system, bench/sandbox.py's rows but 256."""
    names = [name for name in COLUMNS if name in results]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in base.ROWS:
        if row.key == "tp256":
            continue
        cells = [results[name].get(row.key) for name in names]
        lines.append(f"| {row.label} | " + " | ".join(c.text if c else "-" for c in cells) + " |")
    for name in names:
        notes += [c.text for k, c in results[name].items() if k.startswith("error")]
    notes.append(
        "docker ready = open_session until the session answers: a spawn in a warm container "
        "(pool rows) or a container boot that preloads the vision stack (cold rows)."
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    notes.append(f"Load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores.")
    mode = "--quick" if quick else "default"
    head = f"{base.machine()} Docker {server_version()}. Mode: {mode}."
    return "\n".join([head, "", *lines, "", *(f"- {note}" for note in notes)])


def server_version() -> str:
    with contextlib.suppress(Exception):
        import docker

        with contextlib.closing(docker.from_env(timeout=5)) as client:
            return str(client.version().get("Version", "?"))
    return "(none)"


def write_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text:
        text = text.rstrip("\n") + "\n" + SECTION
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    quick = parser.parse_args().quick
    sys.path.insert(0, str(HERE))
    import sandbox as base

    image = base.input_image()
    results: dict[str, Any] = {}
    local = base.LocalSystem()
    try:
        results["local"] = base.measure(local, quick, image, base.Background())
    finally:
        local.close()
    add(base, results, quick, image)


if __name__ == "__main__":
    main()
