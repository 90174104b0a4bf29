"""Sandbox benchmark: codedance's local sandbox against a subprocess and a Jupyter kernel.

Measures, side by side on this machine: session-ready time, the trivial ``run("1")``
round trip, a 512x512 crop of a 1024x1024 input image returned as an image,
throughput with 16, 64 and 256 concurrent sessions, and the unique memory (USS) of
an idle session. The table is printed and written between the ``sandbox`` markers
in docs/benchmarks.md.

Usage: ``python bench/sandbox.py [--quick]``; --quick runs fewer iterations and
skips 256 concurrent sessions for the baselines. The default run takes a few
minutes on a 2-core machine.

The systems:

- ``local``: :class:`codedance.sandboxes.local.LocalSandbox` with its default config.
- ``subprocess``: a fresh ``python -c`` per call that imports numpy, PIL, cv2, sympy,
  shapely and matplotlib (Agg) and then runs the code; nothing persists between calls.
- ``jupyter``: one ipykernel per session, driven by jupyter_client, with the same
  modules imported after start. Needs ``pip install jupyter_client ipykernel``
  (not a codedance dependency); without them this column is skipped with a message.

Numbers from the task, for scale: a fresh interpreter importing the heavy modules
~610 ms; a Jupyter kernel ~450 ms to start and 3.6 ms per trivial execute; fork
from a warm parent ~3 ms; a pipe round trip 0.07 ms; ``bwrap true`` ~4 ms.
Targets for the local sandbox (issue 13, with per-session cgroups, tmpfs workdir,
unique uid and the record relay through init all on): trivial round trip
<= 0.3 ms p50, session ready <= 5 ms p50 from the warm pool of pre-forked
sessions and <= 20 ms cold (pool off), 512 crop <= 5 ms, 256 concurrent sessions
without failure, idle session USS <= 30 MB.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any, ClassVar

import numpy as np
import psutil
from PIL import Image

from codedance.sandboxes.base import InputFile, SessionSpec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- sandbox:begin -->", "<!-- sandbox:end -->"
SECTION = f"""
## Sandbox

`python bench/sandbox.py [--quick]`. The local sandbox (a warm zygote inside
bubblewrap, one forked session per trajectory) against two baselines: a fresh
`python -c` per call that imports the same vision stack, and a Jupyter kernel per
session. Every system runs the same code on the same machine in one run; the
script's docstring lists the targets and the reference numbers behind them.

{BEGIN}
{END}
"""

STACK = (
    "import numpy, PIL.Image, cv2, sympy, shapely, matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot\n"
)
CROP = "image.crop((0, 0, 512, 512))"
WORKLOAD = (
    "import numpy as np\n"
    "x = np.random.default_rng({i}).random((128, 128))\n"
    "print((x @ x.T).trace())"
)
RUNS_PER_SESSION = 5
SIZES = (16, 64, 256)
HANG_S = 180.0  # a session that has not answered by then is counted as hung
BUDGET_S = 60.0  # a baseline skips a level estimated to take longer (--quick: a third)
ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Cell:
    """One measured value and how it is shown; ``value`` is None when not measured."""

    value: float | None
    text: str
    failed: int = 0


@dataclass
class Outcome:
    """What one run produced, reduced to what the benchmark checks."""

    ok: bool
    sizes: tuple[tuple[int, int], ...] = ()
    detail: str = ""


class Unavailable(Exception):
    """A baseline cannot run here; the message says what to install."""


# -- the systems ----------------------------------------------------------------------


class System:
    """One system under test: sessions that open, run code and close."""

    name = "?"
    crop_code = CROP
    counts: ClassVar[dict[str, int]] = {"ready": 100, "run": 300, "crop": 30, "idle": 16}
    uss_mb: float | None = None  # set once measured; sizes the concurrency levels

    def open(self, images: Sequence[InputFile] = ()) -> Any:
        """A new session with ``images`` in its working directory."""
        raise NotImplementedError

    def run(self, session: Any, code: str) -> Outcome:
        """Run ``code`` in ``session``."""
        raise NotImplementedError

    def close_session(self, session: Any) -> None:
        """Free everything ``session`` holds."""
        raise NotImplementedError

    def time_ready(self) -> tuple[float, float]:
        """Ms until a fresh session can run code: (bare, with the vision stack imported)."""
        start = time.perf_counter()
        session = self.open()
        elapsed = (time.perf_counter() - start) * 1000
        self.close_session(session)
        return elapsed, elapsed

    def idle_uss_mb(self, n: int) -> float:
        """Mean USS of ``n`` idle sessions that each ran one trivial cell."""
        raise NotImplementedError

    def guess_s(self, cells: dict[str, Cell]) -> float | None:
        """Seconds per session when many share the cores, from one session's timings."""
        ready, run = cells.get("stack50"), cells.get("run50")
        if ready is None or run is None or ready.value is None or run.value is None:
            return None
        return (ready.value + RUNS_PER_SESSION * run.value) / 1000 / (os.cpu_count() or 1)

    def notes(self) -> list[str]:
        """Lines to print under the table."""
        return []

    def close(self) -> None:
        """Free what the system shares between sessions."""


class LocalSystem(System):
    """codedance's LocalSandbox, default config (warm pool on); cold = pool off."""

    name = "local"

    def __init__(self) -> None:
        from codedance.core.config import SandboxConfig
        from codedance.sandboxes.local import LocalSandbox

        self.factory = LocalSandbox
        self.backend = LocalSandbox()
        self.cold_config = SandboxConfig(local={"pool_size": 0})
        self.cold = LocalSandbox(self.cold_config)
        self.zygote_rss_mb = 0.0
        self.isolation = ""
        start = time.perf_counter()
        self.close_session(self.open())
        self.zygote_ms = (time.perf_counter() - start) * 1000
        self.close_session(self.open())  # the second session starts the pool filling
        self.cold.open_session().close()

    def time_ready(self) -> tuple[float, float]:
        """Cold: every step of a session start (fork, cgroup, namespaces, mounts, uid)."""
        start = time.perf_counter()
        session = self.cold.open_session()
        elapsed = (time.perf_counter() - start) * 1000
        session.close()
        return elapsed, elapsed

    def time_pool_ready(self) -> float:
        """From the warm pool: the pool is given time to refill first, as between tasks."""
        deadline = time.monotonic() + 5
        while not self.backend.pool.ready and time.monotonic() < deadline:
            time.sleep(0.002)
        start = time.perf_counter()
        session = self.open()
        elapsed = (time.perf_counter() - start) * 1000
        session.close()
        return elapsed

    def open(self, images: Sequence[InputFile] = ()) -> Any:
        session = self.backend.open_session(SessionSpec(images=list(images)))
        self.isolation = session.isolation
        return session

    def run(self, session: Any, code: str) -> Outcome:
        return _local_outcome(session.run(code))

    def close_session(self, session: Any) -> None:
        session.close()

    def idle_uss_mb(self, n: int) -> float:
        with self.factory(self.cold_config) as backend:  # no pooled sessions in the mean
            sessions = [backend.open_session() for _ in range(n)]
            try:
                for session in sessions:
                    _check(_local_outcome(session.run("1")))
                # Sessions' inits are children of bubblewrap's init, beside the zygote
                # (the oldest child).
                top = _zygote_process(backend.ensure_zygote().process.pid)
                zygote, *inits = sorted(top.children(), key=lambda p: p.create_time())
                self.zygote_rss_mb = zygote.memory_info().rss / 2**20
                return _mean_tree_uss(inits)
            finally:
                for session in sessions:
                    session.close()

    def notes(self) -> list[str]:
        return [
            f"local: backend start (zygote boot, first session) {self.zygote_ms:.0f} ms; "
            f"zygote RSS {self.zygote_rss_mb:.0f} MB, shared copy-on-write by all sessions.",
            f"local isolation: {self.isolation}.",
        ]

    def close(self) -> None:
        self.backend.close()
        self.cold.close()


def measure_pool(system: LocalSystem, n: int) -> dict[str, Cell]:
    """Session-ready p50 from the local backend's warm pool."""
    system.time_pool_ready()
    times = [system.time_pool_ready() for _ in range(n)]
    return {"pool50": ms(pct(times, 50)), "pool90": ms(pct(times, 90))}


def _local_outcome(record: Any) -> Outcome:
    sizes = tuple((image.width, image.height) for image in record.images)
    detail = "" if record.error is None else f"{record.error.type}: {record.error.message}"
    return Outcome(record.ok, sizes, detail)


def _zygote_process(pid: int) -> psutil.Process:
    """Under bwrap's pid, the last process with one child: the zygote's parent once sessions
    run (bubblewrap's init), the zygote itself otherwise."""
    process = psutil.Process(pid)
    while process.name() == "bwrap" and len(process.children()) == 1:
        process = process.children()[0]
    return process


class SubprocessSystem(System):
    """A fresh interpreter per call; the session is only a working directory."""

    name = "subprocess"
    crop_code = (
        "import sys\nfrom PIL import Image\n"
        "Image.open('input_image.png').crop((0, 0, 512, 512)).save(sys.stdout.buffer, 'PNG')"
    )
    counts: ClassVar[dict[str, int]] = {"ready": 10, "run": 15, "crop": 10, "idle": 8}

    def open(self, images: Sequence[InputFile] = ()) -> Any:
        return _workdir(images)

    def guess_s(self, cells: dict[str, Cell]) -> float | None:
        run = cells.get("run50")  # opening is free: every run starts its own interpreter
        if run is None or run.value is None:
            return None
        return RUNS_PER_SESSION * run.value / 1000 / (os.cpu_count() or 1)

    def run(self, session: Any, code: str) -> Outcome:
        argv = [sys.executable, "-c", STACK + code]
        done = subprocess.run(argv, cwd=session, env=_env(), capture_output=True, timeout=300)
        sizes = (_png_size(done.stdout),) if done.stdout.startswith(b"\x89PNG") else ()
        return Outcome(done.returncode == 0, sizes, done.stderr.decode(errors="replace")[-300:])

    def close_session(self, session: Any) -> None:
        shutil.rmtree(session, ignore_errors=True)

    def time_ready(self) -> tuple[float, float]:
        argv = [sys.executable, "-c", STACK + "import time\nprint(time.monotonic())"]
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for the whole machine
        done = subprocess.run(argv, env=_env(), capture_output=True, check=True)
        elapsed = (float(done.stdout) - start) * 1000
        return elapsed, elapsed

    def idle_uss_mb(self, n: int) -> float:
        argv = [sys.executable, "-c", STACK + "print('ready', flush=True)\ninput()"]
        procs = [subprocess.Popen(argv, env=_env(), stdin=PIPE, stdout=PIPE) for _ in range(n)]
        try:
            for proc in procs:
                if proc.stdout is None or proc.stdout.readline() != b"ready\n":
                    raise RuntimeError("an idle interpreter did not start")
            return _mean_tree_uss([psutil.Process(proc.pid) for proc in procs])
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


@dataclass
class Kernel:
    """One Jupyter session: the kernel, its client and its working directory."""

    manager: Any
    client: Any  # None until the kernel started
    workdir: Path
    bare_ms: float
    ready_ms: float


class JupyterSystem(System):
    """One ipykernel per session, started by jupyter_client, the vision stack imported."""

    name = "jupyter"
    counts: ClassVar[dict[str, int]] = {"ready": 8, "run": 300, "crop": 30, "idle": 8}

    def __init__(self) -> None:
        try:
            import ipykernel  # noqa: F401
            from jupyter_client.manager import KernelManager
        except ImportError as exc:
            raise Unavailable(
                f"{exc.name} is missing: pip install jupyter_client ipykernel"
            ) from None
        self.manager_class = KernelManager

    def open(self, images: Sequence[InputFile] = ()) -> Kernel:
        start = time.perf_counter()
        kernel = Kernel(self.manager_class(kernel_name="python3"), None, _workdir(images), 0, 0)
        try:
            with open(kernel.workdir / "kernel.log", "wb") as log:
                kernel.manager.start_kernel(cwd=str(kernel.workdir), env=_env(), stderr=log)
            kernel.client = kernel.manager.client()
            kernel.client.start_channels()
            kernel.client.wait_for_ready(timeout=60)
            kernel.bare_ms = (time.perf_counter() - start) * 1000
            setup = STACK + ("image = PIL.Image.open('input_image.png')" if images else "")
            _check(self.run(kernel, setup))
        except Exception as exc:
            why = _last_line(kernel.workdir / "kernel.log")
            self.close_session(kernel)
            raise RuntimeError(f"{_why(exc)} (kernel's last words: {why})") from None
        kernel.ready_ms = (time.perf_counter() - start) * 1000
        return kernel

    def run(self, session: Any, code: str) -> Outcome:
        messages: list[dict[str, Any]] = []
        reply = session.client.execute_interactive(
            code, output_hook=messages.append, timeout=60, allow_stdin=False
        )
        content = reply["content"]
        sizes = tuple(_png_size(base64.b64decode(png)) for png in _pngs(messages))
        detail = f"{content.get('ename')}: {content.get('evalue')}"
        return Outcome(content["status"] == "ok", sizes, detail)

    def close_session(self, session: Any) -> None:
        if session.client is not None:
            session.client.stop_channels()
        if session.manager.has_kernel:
            session.manager.shutdown_kernel(now=True)
        shutil.rmtree(session.workdir, ignore_errors=True)

    def time_ready(self) -> tuple[float, float]:
        kernel = self.open()
        self.close_session(kernel)
        return kernel.bare_ms, kernel.ready_ms

    def idle_uss_mb(self, n: int) -> float:
        kernels: list[Kernel] = []
        try:
            for _ in range(n):
                kernels.append(self.open())
                _check(self.run(kernels[-1], "1"))
            pids = [kernel.manager.provisioner.pid for kernel in kernels]
            return _mean_tree_uss([psutil.Process(pid) for pid in pids])
        finally:
            for kernel in kernels:
                self.close_session(kernel)


def _last_line(path: Path) -> str:
    """The last line of ``path`` that is not the kernel's TCP warning."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    lines = [line for line in lines if line.strip() and "without encryption" not in line]
    return lines[-1][:300] if lines else "nothing"


def _pngs(messages: list[dict[str, Any]]) -> list[str]:
    kinds = ("display_data", "execute_result")
    return [
        m["content"]["data"]["image/png"]
        for m in messages
        if m["header"]["msg_type"] in kinds and "image/png" in m["content"].get("data", {})
    ]


# -- helpers ----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, **ENV}


def _workdir(images: Sequence[InputFile]) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    for item in images:
        (workdir / item.name).write_bytes(item.data)
    return workdir


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = Image.open(io.BytesIO(data)).size  # reads the header only
    return width, height


def _check(outcome: Outcome) -> Outcome:
    if not outcome.ok:
        raise RuntimeError(f"run failed: {outcome.detail}")
    return outcome


def _tree_uss(process: psutil.Process) -> int:
    """Unique memory of ``process`` and all its descendants, in bytes."""
    tree = [process, *process.children(recursive=True)]
    return sum(p.memory_full_info().uss for p in tree)


def _mean_tree_uss(roots: Sequence[psutil.Process]) -> float:
    if not roots:
        raise RuntimeError("no session processes found")
    return statistics.fmean(_tree_uss(root) for root in roots) / 2**20


def input_image() -> InputFile:
    """A 1024x1024 RGB PNG of random pixels (random so PNG cannot compress it away)."""
    pixels = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return InputFile("input_image.png", buffer.getvalue())


def pct(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (q in 1..99)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(value: float) -> Cell:
    """A time in ms, with precision that suits its size."""
    return Cell(value, f"{value:.2f}" if value < 10 else f"{value:.0f}")


# -- the measurements ---------------------------------------------------------------------


def measure_ready(system: System, n: int) -> dict[str, Cell]:
    """Session-ready p50/p90, and p50 with the vision stack imported."""
    system.time_ready()  # warm caches and the backend
    bare, full = zip(*(system.time_ready() for _ in range(n)), strict=True)
    return {
        "ready50": ms(pct(bare, 50)),
        "ready90": ms(pct(bare, 90)),
        "stack50": ms(pct(full, 50)),
    }


def measure_runs(system: System, n: int) -> dict[str, Cell]:
    """Round trip of ``run("1")`` in one session, p50 and p90."""
    session = system.open()
    try:
        for _ in range(3):
            _check(system.run(session, "1"))
        times = [_timed(lambda: _check(system.run(session, "1"))) for _ in range(n)]
    finally:
        system.close_session(session)
    return {"run50": ms(pct(times, 50)), "run90": ms(pct(times, 90))}


def measure_crop(system: System, n: int, image: InputFile) -> dict[str, Cell]:
    """The first crop in a fresh session, then the p50 of ``n`` more."""
    session = system.open([image])
    try:
        times = [
            _timed(lambda: _check_crop(system.run(session, system.crop_code))) for _ in range(n)
        ]
    finally:
        system.close_session(session)
    return {"crop_first": ms(times[0]), "crop50": ms(pct(times[1:], 50))}


def _check_crop(outcome: Outcome) -> None:
    if _check(outcome).sizes != ((512, 512),):
        raise RuntimeError(f"expected one 512x512 image back, got {outcome.sizes}")


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure_idle(system: System, n: int) -> dict[str, Cell]:
    """Mean USS of ``n`` idle sessions."""
    value = system.uss_mb = system.idle_uss_mb(n)
    return {"uss": Cell(value, f"{value:.1f}")}


@dataclass
class Load:
    """One concurrency level: N sessions opened together, then each runs the workload."""

    n: int
    open_s: float
    run_s: float
    runs_ok: int
    failures: list[str]

    @property
    def per_s(self) -> float:
        """Successful runs per second of the whole phase (opening included)."""
        return self.runs_ok / (self.open_s + self.run_s)

    def cell(self) -> Cell:
        text = f"{self.per_s:.0f} runs/s (open {self.open_s:.1f} s + runs {self.run_s:.1f} s)"
        failed = f", **{len(self.failures)} failed**" if self.failures else ", 0 failed"
        return Cell(self.per_s, text + failed, len(self.failures))


class _Tally:
    """A counter that threads bump and the main thread waits on."""

    def __init__(self) -> None:
        self.count, self.cond = 0, threading.Condition()

    def add(self) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_for(self, target: int, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.count >= target, timeout)


def _load(system: System, n: int) -> Load:
    """N threads open a session each; once all are open, each runs the workload.

    A thread that hangs (a kernel client blocked forever) is given up on after
    HANG_S and counted as a failure; threads are daemons so it cannot block exit.
    """
    opened, done, go, finish = _Tally(), _Tally(), threading.Event(), threading.Event()
    results: list[tuple[int, list[str]] | None] = [None] * n

    def one(i: int) -> None:
        session = _attempt(system.open)
        opened.add()
        if isinstance(session, str):
            results[i] = (0, [session])
        else:
            go.wait()
            results[i] = _workload(system, session)
        done.add()
        finish.wait()
        if not isinstance(session, str):
            system.close_session(session)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    opened.wait_for(n, HANG_S)
    middle = time.perf_counter()
    go.set()
    done.wait_for(opened.count, HANG_S)
    end = time.perf_counter()
    finish.set()
    for thread in threads:
        thread.join(timeout=max(1.0, HANG_S - (time.perf_counter() - end)))
    hung = f"no answer within {HANG_S:.0f} s (hung)"
    failures = [f for r in results for f in (r[1] if r else [hung])]
    return Load(n, middle - start, end - middle, sum(r[0] for r in results if r), failures)


def _workload(system: System, session: Any) -> tuple[int, list[str]]:
    ok, failures = 0, []
    for i in range(RUNS_PER_SESSION):
        outcome = _attempt(functools.partial(system.run, session, WORKLOAD.format(i=i)))
        if isinstance(outcome, Outcome) and outcome.ok:
            ok += 1
        else:
            failures.append(outcome.detail or "not ok" if isinstance(outcome, Outcome) else outcome)
    return ok, failures


def _attempt(call: Callable[[], Any]) -> Any:
    """``call()``, or the exception it raised as a string."""
    try:
        return call()
    except Exception as exc:
        return _why(exc)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def measure_load(
    system: System, sizes: Sequence[int], budget_s: float, guess_s: float | None
) -> dict[str, Cell]:
    """Throughput at each size; a baseline skips sizes estimated over time or memory."""
    cells: dict[str, Cell] = {}
    rate = guess_s  # seconds per session: guessed at first, then as last measured
    for n in SIZES:
        skip = "--quick" if n not in sizes else _over_budget(system, n, rate, budget_s)
        if skip:
            cells[f"tp{n}"] = Cell(None, f"skipped: {skip}")
            continue
        load = _load(system, n)
        rate = (load.open_s + load.run_s) / n
        cells[f"tp{n}"] = load.cell()
        for failure in sorted(set(load.failures))[:3]:
            print(f"  {system.name} at {n}: {failure}", file=sys.stderr)
    return cells


def _over_budget(system: System, n: int, rate: float | None, budget_s: float) -> str:
    """Why a baseline skips ``n`` sessions ("" to run it); local attempts every level."""
    if isinstance(system, LocalSystem):
        return ""
    if rate is not None and rate * n > budget_s:
        return f"~{rate * n:.0f} s estimated > {budget_s:.0f} s budget"
    free_mb = psutil.virtual_memory().available / 2**20
    if system.uss_mb is not None and system.uss_mb * n > free_mb / 2:
        return f"~{system.uss_mb * n / 1024:.0f} GB estimated > half the free memory"
    return ""


NOTES = (
    f"Concurrency: N threads open a session each; once all are open, each runs "
    f"{RUNS_PER_SESSION} small numpy cells. runs/s counts the whole phase, opening included.",
    f"A baseline skips a level estimated (from the level before) to take over {BUDGET_S:.0f} s "
    "or half the free memory; --quick also guesses the first level from one session.",
    "subprocess: ready = time to the first statement after the imports; each run is a new "
    "interpreter, so its crop reads, crops and writes a PNG to stdout.",
    "jupyter: ready = kernel start to idle; the next row adds importing the same stack; "
    "crops come back as PNG (IPython encodes them).",
    "Idle USS: mean over 16 local sessions and 8 of each baseline (fewer under --quick), each "
    "after one trivial cell; a local session is 2 processes (init and holder), a baseline "
    "one interpreter or kernel holding the stack.",
    "local: every session joins its own cgroup (memory, pids, cpu), works in a sized tmpfs, "
    "runs as a uid no other live session has, and its records pass through its init; "
    "warm pool: sessions pre-forked up to sandbox.local.pool_size (default 2), refilled "
    "in the background; cold: pool_size 0.",
)


# -- running it all -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One metric: its label, target, and which direction is better."""

    key: str
    label: str
    target: str = ""
    limit: float | None = None  # the local value must be at most this
    higher_is_better: bool = False


ROWS = (
    Row("pool50", "session ready from the warm pool, p50 (ms)", "≤ 5", 5),
    Row("pool90", "session ready from the warm pool, p90 (ms)"),
    Row("ready50", "session ready cold (pool off) p50 (ms)", "≤ 20", 20),
    Row("ready90", "session ready cold (pool off) p90 (ms)"),
    Row("stack50", "ready with numpy/PIL/cv2/... imported, p50 (ms)"),
    Row("run50", '`run("1")` round trip p50 (ms)', "≤ 0.3", 0.3),
    Row("run90", '`run("1")` round trip p90 (ms)'),
    Row("crop_first", "first 512 crop of the 1024 input (ms)"),
    Row("crop50", "512 crop of the 1024 input, p50 (ms)", "≤ 5", 5),
    Row("tp16", "16 concurrent sessions", higher_is_better=True),
    Row("tp64", "64 concurrent sessions", higher_is_better=True),
    Row("tp256", "256 concurrent sessions", "no failures", higher_is_better=True),
    Row("uss", "idle session USS (MB)", "≤ 30", 30),
)


class Background:
    """Samples how much CPU other processes use, since it skews every number here."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self, window_s: float = 0.5) -> None:
        """Add the % of one core used by processes outside this benchmark's tree."""
        ours = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
        others = [p for p in psutil.process_iter() if p.pid not in ours]
        for process in others:
            _cpu_percent(process)
        time.sleep(window_s)
        self.samples.append(sum(_cpu_percent(process) for process in others))

    def note(self) -> str:
        """One line on the other load, for the notes under the table."""
        mean, peak = statistics.fmean(self.samples), max(self.samples)
        quiet = "quiet" if peak < 20 else "**busy: treat the numbers as noisy**"
        return (
            f"Other processes on the machine, sampled between steps: mean {mean:.0f}%, "
            f"peak {peak:.0f}% of one core ({quiet})."
        )


def _cpu_percent(process: psutil.Process) -> float:
    try:
        return float(process.cpu_percent(None))
    except psutil.Error:
        return 0.0


def measure(
    system: System, quick: bool, image: InputFile, background: Background
) -> dict[str, Cell]:
    """Every metric for one system; a metric that fails shows its error in its cell."""
    counts = {k: max(3, v // 4) if quick else v for k, v in system.counts.items()}
    sizes = SIZES[:2] if quick and system.name != "local" else SIZES
    budget_s = BUDGET_S / 3 if quick else BUDGET_S
    steps: dict[str, Callable[[], dict[str, Cell]]] = {
        "ready": lambda: measure_ready(system, counts["ready"]),
        **(
            {"pool": lambda: measure_pool(system, counts["ready"])}
            if isinstance(system, LocalSystem)
            else {}
        ),
        "round trip": lambda: measure_runs(system, counts["run"]),
        "crop": lambda: measure_crop(system, counts["crop"], image),
        "idle memory": lambda: measure_idle(system, counts["idle"]),
        # by default the first level always runs; --quick may skip it on a guess
        "concurrency": lambda: measure_load(
            system, sizes, budget_s, system.guess_s(cells) if quick else None
        ),
    }
    cells: dict[str, Cell] = {}
    for what, step in steps.items():
        background.sample()
        start = time.perf_counter()
        try:
            cells.update(step())
        except Exception as exc:
            traceback.print_exc()
            cells[f"error {what}"] = Cell(None, f"{system.name}: {what} failed: {_why(exc)}")
        took = time.perf_counter() - start
        print(f"{system.name}: {what} took {took:.1f} s", file=sys.stderr, flush=True)
    return cells


def meets(row: Row, cell: Cell | None) -> str:
    """Whether the local value meets the row's target ("" when the row has none)."""
    if not row.target or cell is None:
        return ""
    good = cell.value is not None and (cell.value <= row.limit if row.limit else not cell.failed)
    return "yes" if good else "**no**"


def gain(row: Row, local: Cell | None, other: Cell | None) -> str:
    """How many times better local is than ``other`` on this row ("" when unmeasured)."""
    if not local or not other or not local.value or not other.value:
        return ""
    ratio = local.value / other.value if row.higher_is_better else other.value / local.value
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def render(results: dict[str, dict[str, Cell]], notes: list[str]) -> str:
    """The markdown table, with the notes under it."""
    names = ("local", "subprocess", "jupyter")
    lines = [
        "| metric | target | local | meets | subprocess | jupyter "
        "| local gain vs subprocess | vs jupyter |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        local, *others = (results.get(name, {}).get(row.key) for name in names)
        texts = [cell.text if cell else "n/a" for cell in (local, *others)]
        ratios = [gain(row, local, other) for other in others]
        cols = [row.label, row.target, texts[0], meets(row, local), *texts[1:], *ratios]
        lines.append("| " + " | ".join(cols) + " |")
    for name in names:
        notes += [c.text for k, c in results.get(name, {}).items() if k.startswith("error")]
    return "\n".join([*lines, "", *(f"- {note}" for note in notes)])


def machine() -> str:
    """One line about where the numbers come from."""
    bwrap = "yes" if shutil.which("bwrap") else "no"
    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {python}, bubblewrap: {bwrap}."


def write_doc(table: str) -> None:
    """Put ``table`` between the markers, adding the Sandbox section if it is missing."""
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text:
        text = text.rstrip("\n") + "\n" + SECTION
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer iterations, no 256 for baselines"
    )
    args = parser.parse_args()
    image = input_image()
    results: dict[str, dict[str, Cell]] = {}
    notes = list(NOTES)
    background = Background()
    for factory in (LocalSystem, SubprocessSystem, JupyterSystem):
        try:
            system = factory()
        except Unavailable as exc:
            print(f"skipping {factory.name}: {exc}", file=sys.stderr)
            notes.append(f"{factory.name} skipped: {exc}")
            continue
        try:
            results[system.name] = measure(system, args.quick, image, background)
            notes += system.notes()
        finally:
            system.close()
    sys.path.insert(0, str(ROOT / "bench"))
    import sandbox_docker  # the docker backend on a real engine, when one answers: own table

    sandbox_docker.add(sys.modules[__name__], results, args.quick, image)
    background.sample()
    notes.append(background.note())
    mode = "--quick" if args.quick else "default"
    table = f"{machine()} Mode: {mode}.\n\n" + render(results, notes)
    write_doc(table)
    print(table)


if __name__ == "__main__":
    main()
