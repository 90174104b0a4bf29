"""The sandbox conformance suite: what every backend must do, as pytest tests.

Any backend, a third party's included, runs it by subclassing and providing one
fixture::

    from codedance.testing import SandboxConformance

    class TestMyBackend(SandboxConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def sandbox_backend(cls):
            with MyBackend() as backend:
                yield backend

Each test checks one guarantee of docs/sandboxes.md ("The backend contract");
a failure starts with the guarantee's id and its anchor there. Each test runs
under ``time_limit_s``; the tests whose code could end the test process (a crash,
a loop that ignores signals) run in a forked child for a backend that executes
code in-process (see ``conformance_guard``). Every record a test gets is checked
against the field types of the contract.

The image tests need Pillow, numpy and matplotlib inside the sandbox and Pillow
on the host; they skip when the host lacks them.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from codedance.sandboxes.base import (
    ExecutionRecord,
    InputFile,
    SandboxBackend,
    SandboxError,
    SessionClosedError,
)
from codedance.sandboxes.conformance_checks import (
    TRUNCATION_NOTE,
    SessionOpener,
    ToolPackage,
    check_record,
    write_tool_package,
)
from codedance.sandboxes.conformance_guard import guarantee, time_limit
from codedance.sandboxes.tools import bundle_tools

__all__ = ["UNSUPPORTABLE", "SandboxConformance"]

#: Items a backend may declare in ``unsupported`` (item -> the guarantee it waives).
UNSUPPORTABLE = {"rollback": "rollback", "exit_is_error": "exit", "image_sources": "image-sources"}
OpenSession = Callable[..., Any]


def _png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    image_module = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image_module.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _ok(record: ExecutionRecord) -> ExecutionRecord:
    assert record.ok, f"the run failed: {record.error} / stderr: {record.stderr}"
    return record


class SandboxConformance:
    """Behaviour every sandbox backend must show. Subclass and provide ``sandbox_backend``.

    Class attributes a subclass may set:

    - ``unsupported``: item -> reason, for what a backend by its nature cannot
      meet (items: ``rollback``, ``exit_is_error``, ``image_sources``); the
      matching test then skips and prints the reason, so the gap stays visible.
    - ``time_limit_s``: the wall-clock limit of each test (default 60 s).
    """

    unsupported: ClassVar[dict[str, str]] = {}
    time_limit_s: ClassVar[float] = 60.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.unsupported) - set(UNSUPPORTABLE))
        if unknown:
            raise TypeError(
                f"{cls.__name__}.unsupported names {unknown}, which the conformance suite does "
                f"not know; the items a backend may declare are {sorted(UNSUPPORTABLE)} "
                "(docs/sandboxes.md#unsupported)"
            )

    def _require(self, item: str) -> None:
        if item in self.unsupported:
            pytest.skip(f"the backend declares it cannot meet {item!r}: {self.unsupported[item]}")

    @pytest.fixture
    def tool_package(self, tmp_path: Path) -> Iterator[ToolPackage]:
        """A third-party tool package the sandbox has never seen."""
        sys.path.insert(0, str(tmp_path))
        try:
            package = write_tool_package(tmp_path)
            yield package
        finally:
            sys.path.remove(str(tmp_path))
            for module in [m for m in sys.modules if m.startswith("cd_conformance_")]:
                del sys.modules[module]

    @pytest.fixture
    def open_session(self, sandbox_backend: SandboxBackend) -> Iterator[SessionOpener]:
        """``open_session(**spec_fields)``: a session closed after the test."""
        opener = SessionOpener(sandbox_backend)
        yield opener
        with time_limit(self.time_limit_s):
            opener.close_all()

    # -- the backend and its records ------------------------------------------------

    @guarantee("config")
    def test_settings_arrive_as_config(self, sandbox_backend: SandboxBackend) -> None:
        from codedance.core.config import SandboxConfig

        assert isinstance(sandbox_backend.config, SandboxConfig), (
            f"backend.config is {type(sandbox_backend.config).__name__}; call "
            "SandboxBackend.__init__(self, config) from your __init__"
        )

    @guarantee("doctor")
    def test_doctor_says_none_or_what_is_missing(self, sandbox_backend: SandboxBackend) -> None:
        answer = type(sandbox_backend).doctor()
        assert answer is None or (isinstance(answer, str) and answer.strip()), repr(answer)
        if answer is None:
            line = type(sandbox_backend).describe()
            assert isinstance(line, str), f"describe() gave {line!r}"
            assert line.strip(), "describe() gave an empty line"

    @guarantee("record-fields")
    def test_records_have_the_documented_types(self, open_session: OpenSession) -> None:
        session = open_session()
        for code in ("print('a')", "1 / 0", "import sys\nprint('e', file=sys.stderr)", "pass"):
            check_record(session.session.run(code), session.isolation)

    @guarantee("isolation-label")
    def test_isolation_is_named(self, open_session: OpenSession) -> None:
        session = open_session()
        assert isinstance(session.isolation, str)
        assert session.isolation.strip(), "session.isolation says what isolates the code"
        assert session.run("pass").isolation == session.isolation

    # -- state, output, errors ----------------------------------------------------

    @guarantee("state")
    def test_state_persists_across_runs(self, open_session: OpenSession) -> None:
        session = open_session()
        _ok(session.run("import math\ntotal = 40\nopen('kept.txt', 'w').write('k')"))
        code = "total += 2\nprint(total, math.floor(2.5), open('kept.txt').read())"
        assert _ok(session.run(code)).stdout == "42 2 k\n"

    @guarantee("last-expression")
    def test_last_expression_is_shown(self, open_session: OpenSession) -> None:
        session = open_session()
        assert _ok(session.run("x = 6\nx * 7")).stdout == "42\n"
        assert _ok(session.run("print('a')\n[1, 2]")).stdout == "a\n[1, 2]\n"
        assert _ok(session.run("None")).stdout == ""

    @guarantee("capture")
    def test_stdout_stderr_and_child_processes_are_captured(
        self, open_session: OpenSession
    ) -> None:
        code = (
            "import os, sys\nprint('out')\nprint('err', file=sys.stderr)\n"
            "_ = os.system('echo child')"
        )
        record = _ok(open_session().run(code))
        assert record.stdout == "out\nchild\n"
        assert record.stderr == "err\n"

    @guarantee("traceback")
    def test_exception_traceback_shows_only_the_models_code(
        self, open_session: OpenSession
    ) -> None:
        record = open_session().run("def f():\n    return 1 / 0\n\nf()")
        assert record.error is not None
        assert (record.error.type, record.error.message) == (
            "ZeroDivisionError",
            "division by zero",
        )
        assert "line 2, in f" in record.error.traceback
        assert "return 1 / 0" in record.error.traceback
        assert "engine.py" not in record.error.traceback
        assert not record.timed_out
        assert not record.session_died

    @guarantee("syntax-error")
    def test_syntax_error_is_reported(self, open_session: OpenSession) -> None:
        record = open_session().run("def broken(:\n    pass")
        assert record.error is not None
        assert record.error.type == "SyntaxError"

    @guarantee("exit", may_kill_runner=True)
    def test_exit_is_an_error_not_the_end(self, open_session: OpenSession) -> None:
        self._require("exit_is_error")
        session = open_session()
        session.run("kept = 1")
        for code in ("exit(3)", "import sys\nsys.exit('bye')"):
            record = session.run(code)
            assert record.error is not None
            assert record.error.type == "SystemExit"
        assert _ok(session.run("kept")).stdout == "1\n"

    @guarantee("truncation")
    def test_output_is_truncated_and_says_so(
        self, open_session: OpenSession, sandbox_backend: SandboxBackend
    ) -> None:
        record = _ok(open_session().run("print('x' * 5_000_000)"))
        assert record.truncated == ("stdout",)
        note = TRUNCATION_NOTE.search(record.stdout)
        assert note, f"stdout ends with {record.stdout[-80:]!r}, not the truncation note"
        kept = record.stdout[: note.start()].encode()
        assert len(kept) <= 4 * sandbox_backend.config.max_output_chars
        assert len(kept) + int(note.group(1)) == 5_000_001, "kept + cut bytes = all bytes"

    # -- tools --------------------------------------------------------------------

    @guarantee("tools")
    def test_tools_travel_with_their_helpers(
        self, open_session: OpenSession, tool_package: ToolPackage
    ) -> None:
        """A tool from a package the sandbox never saw runs, with its helper module."""
        session = open_session(tools=bundle_tools({"twice": tool_package.twice}))
        assert _ok(session.run("print(twice(21), twice.__module__)")).stdout == (
            f"42 {tool_package.name}.tools\n"
        )

    @guarantee("tool-traceback")
    def test_tool_errors_show_the_tools_source(
        self, open_session: OpenSession, tool_package: ToolPackage
    ) -> None:
        record = open_session(tools=bundle_tools({"twice": tool_package.twice})).run("twice('x')")
        assert record.error is not None
        assert record.error.type == "TypeError"
        assert "tools.py" in record.error.traceback
        assert "raise TypeError" in record.error.traceback

    @guarantee("tool-missing")
    def test_a_tool_missing_its_package_is_explained_once(
        self, open_session: OpenSession, tool_package: ToolPackage
    ) -> None:
        bundle = bundle_tools({"twice": tool_package.twice, "needy": tool_package.needy})
        session = open_session(tools=bundle)
        first = _ok(session.run("print(twice(2), 'needy' in dir())"))
        assert first.stdout == "4 False\n"
        assert "tools needy are unavailable" in first.stderr
        assert f"lacks the package {tool_package.host_only!r}" in first.stderr
        assert _ok(session.run("print(3)")).stderr == ""

    @guarantee("builtin-tools")
    def test_builtin_tool_modules_travel(self, open_session: OpenSession) -> None:
        pytest.importorskip("numpy")
        pytest.importorskip("PIL")
        from codedance.tools._images import resolve_box

        session = open_session(tools=bundle_tools({"resolve_box": resolve_box}))
        assert _ok(session.run("resolve_box((0.5, 0, 1, 0.5), 200, 100)")).stdout == (
            "(100, 0, 200, 50)\n"
        )

    @guarantee("builtin-tools")
    def test_builtin_tool_families_run(self, open_session: OpenSession) -> None:
        """A call from each built-in family, with its modules shipped into the session."""
        for module in ("numpy", "PIL", "cv2", "sympy", "shapely", "matplotlib"):
            pytest.importorskip(module)
        from codedance.tools import charts, geometry, image, plotting

        tools: dict[str, Callable[..., Any]] = {
            "crop": image.crop,
            "find_shapes": image.find_shapes,
            "polygon_area": geometry.polygon_area,
            "solve_equations": geometry.solve_equations,
            "calibrate_axis": charts.calibrate_axis,
            "plot_data": plotting.plot_data,
        }
        session = open_session(
            images=[InputFile("input_image.png", _png(40, 30, (255, 0, 0)))],
            tools=bundle_tools(tools),
        )
        code = (
            "print(crop(input_image, (0, 0, 0.5, 0.5)).size)\n"
            "print(polygon_area([(0, 0), (4, 0), (0, 3)]))\n"
            "print(solve_equations('x + y = 3, x - y = 1'))\n"
            "print(calibrate_axis(0, 0, 100, 50)(40))\n"
            "print(plot_data([1, 2, 3], [3, 1, 2], kind='bar').size)"
        )
        lines = _ok(session.run(code)).stdout.splitlines()
        assert lines[0] == "(20, 15)"
        assert lines[1] == "6"
        assert lines[2] == "[{'x': 2, 'y': 1}]"
        assert float(lines[3]) == 20.0
        assert lines[4] == "(640, 480)"

    # -- inputs, files, images ----------------------------------------------------

    @guarantee("preload")
    def test_input_images_are_preloaded(self, open_session: OpenSession) -> None:
        spec = [
            InputFile("input_image.png", _png(40, 30, (255, 0, 0))),
            InputFile("second.png", _png(8, 8, (0, 0, 255))),
        ]
        session = open_session(images=spec, files=[InputFile("notes.txt", b"n")])
        code = (
            "import os\nprint(image.size, len(images), input_image.size, second.size)\n"
            "print(sorted(f for f in os.listdir('.') if not f.startswith('.')))\n"
            "print(image.convert('RGB').getpixel((0, 0)), input_image_path, second_path)"
        )
        assert _ok(session.run(code)).stdout == (
            "(40, 30) 2 (40, 30) (8, 8)\n['input_image.png', 'notes.txt', 'second.png']\n"
            "(255, 0, 0) input_image.png second.png\n"
        )

    @guarantee("files")
    def test_written_files_are_listed(self, open_session: OpenSession) -> None:
        session = open_session(files=[InputFile("given.txt", b"g")])
        record = _ok(session.run("open('notes.txt', 'w').write('hi')"))
        assert record.files == ("notes.txt",)
        code = "import os\nos.makedirs('out', exist_ok=True)\nopen('out/b.txt', 'w').write('b')"
        assert _ok(session.run(code + "\nopen('given.txt', 'a').write('!')")).files == (
            "given.txt",
            "out/b.txt",
        )
        assert _ok(session.run("print(1)")).files == ()

    @guarantee("image-last-expression")
    def test_pil_image_as_last_expression_comes_back(self, open_session: OpenSession) -> None:
        pytest.importorskip("PIL")
        record = _ok(open_session().run("from PIL import Image\nImage.new('RGB', (64, 32), 'red')"))
        (image,) = record.images
        assert (image.mode, image.width, image.height, image.source) == (
            "RGB",
            64,
            32,
            "last_expression",
        )
        assert image.to_pil().getpixel((5, 5)) == (255, 0, 0)

    @guarantee("image-sources")
    def test_display_show_and_open_figures_come_back(self, open_session: OpenSession) -> None:
        pytest.importorskip("PIL")
        self._require("image_sources")
        code = (
            "import matplotlib.pyplot as plt\nfrom PIL import Image\n"
            "display(Image.new('L', (10, 10)))\n"
            "plt.plot([1, 2]); plt.show()\n"
            "plt.figure(); plt.plot([3, 1])\n"
            "Image.new('RGB', (4, 4)).show()"
        )
        record = _ok(open_session().run(code))
        assert [image.source for image in record.images] == ["display", "show", "show", "figure"]
        assert [image.mode for image in record.images][:2] == ["L", "RGBA"]

    @guarantee("image-arrays")
    def test_three_channel_arrays_are_read_as_bgr(self, open_session: OpenSession) -> None:
        pytest.importorskip("PIL")
        code = "import numpy as np\na = np.zeros((4, 4, 3), np.uint8)\na[..., 0] = 255\na"
        (image,) = _ok(open_session().run(code)).images
        assert image.to_pil().getpixel((0, 0)) == (0, 0, 255)  # OpenCV order, like CodeDance

    @guarantee("image-modes")
    def test_images_are_rgb_rgba_or_l(self, open_session: OpenSession) -> None:
        pytest.importorskip("PIL")
        code = "from PIL import Image\ndisplay(Image.new('P', (3, 2)), Image.new('LA', (2, 2)))"
        record = _ok(open_session().run(code))
        assert [(i.mode, i.width, i.height) for i in record.images] == [
            ("RGB", 3, 2),
            ("RGBA", 2, 2),
        ]

    # -- limits and failures -------------------------------------------------------

    @guarantee("timeout", may_kill_runner=True)
    def test_timeout_interrupts_and_keeps_the_state(self, open_session: OpenSession) -> None:
        session = open_session()
        record = session.run("reached = 1\nimport time\ntime.sleep(30)", timeout=1)
        assert record.timed_out
        assert record.error is not None
        assert record.error.type == "TimeoutError"
        assert _ok(session.run("reached")).stdout == "1\n"

    @guarantee("hard-timeout", may_kill_runner=True)
    def test_code_ignoring_the_timeout_is_killed(self, open_session: OpenSession) -> None:
        session = open_session()
        code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
        record = session.run(code, timeout=1)
        assert record.timed_out
        assert _ok(session.run("print('alive')")).stdout == "alive\n"

    @guarantee("default-timeout", may_kill_runner=True)
    def test_run_without_timeout_uses_the_configured_one(
        self, open_session: OpenSession, sandbox_backend: SandboxBackend
    ) -> None:
        limit = sandbox_backend.config.timeout_s
        if limit > 30:
            pytest.skip(f"sandbox.timeout_s is {limit:g} s; set 30 or less to check it quickly")
        started = time.monotonic()
        record = open_session().run(f"import time\ntime.sleep({limit + 60})")
        assert record.timed_out
        assert time.monotonic() - started < limit + 20

    @guarantee("crash", may_kill_runner=True)
    def test_process_death_is_reported_and_the_session_goes_on(
        self, open_session: OpenSession
    ) -> None:
        session = open_session()
        record = session.run("import os\nos._exit(3)")
        assert not record.ok
        assert record.error is not None
        assert _ok(session.run("print('again')")).stdout == "again\n"

    @guarantee("crash", may_kill_runner=True)
    def test_a_segfault_is_reported_and_the_session_goes_on(
        self, open_session: OpenSession
    ) -> None:
        session = open_session()
        record = session.run("import ctypes\nctypes.string_at(0)")
        assert not record.ok
        assert record.error is not None
        assert _ok(session.run("print('again')")).stdout == "again\n"

    @guarantee("rollback")
    def test_rollback_restores_the_last_good_state(self, open_session: OpenSession) -> None:
        if "rollback" in self.unsupported:
            with pytest.raises(SandboxError):
                open_session(on_error="rollback")
            self._require("rollback")
        session = open_session(on_error="rollback")
        _ok(session.run("x = 1"))
        record = session.run("x = 2\nraise ValueError('no')")
        assert record.restored == "rollback"
        assert _ok(session.run("x")).stdout == "1\n"

    @guarantee("keep")
    def test_keep_keeps_partial_state_like_a_notebook(self, open_session: OpenSession) -> None:
        session = open_session(on_error="keep")
        record = session.run("x = 2\nraise ValueError('no')")
        assert record.restored is None
        assert _ok(session.run("x")).stdout == "2\n"

    @guarantee("reset")
    def test_reset_starts_over_after_a_failure(self, open_session: OpenSession) -> None:
        session = open_session(on_error="reset")
        _ok(session.run("x = 1"))
        assert session.run("raise ValueError('no')").restored == "reset"
        assert session.run("x").error is not None

    @guarantee("restart")
    def test_restart_clears_the_state(self, open_session: OpenSession) -> None:
        session = open_session(images=[InputFile("input_image.png", _png(4, 3, (0, 0, 0)))])
        _ok(session.run("x = 1"))
        session.restart()
        record = session.run("x")
        assert record.error is not None
        assert record.error.type == "NameError"
        assert _ok(session.run("print(image.size, len(images))")).stdout == "(4, 3) 1\n"

    @guarantee("independence")
    def test_sessions_do_not_share_state(self, open_session: OpenSession) -> None:
        first, second = open_session(), open_session()
        _ok(first.run("secret = 'a'\nopen('mine.txt', 'w').write('a')"))
        record = second.run("import os\nprint(os.path.exists('mine.txt'))\nsecret")
        assert record.stdout == "False\n"
        assert record.error is not None

    @guarantee("close")
    def test_closed_session_refuses_to_run(self, open_session: OpenSession) -> None:
        session = open_session()
        session.close()
        session.close()  # idempotent
        with pytest.raises(SessionClosedError):
            session.run("1")
        with pytest.raises(SessionClosedError):
            session.restart()

    @guarantee("async")
    def test_async_twin(self, sandbox_backend: SandboxBackend) -> None:
        async def scenario() -> list[ExecutionRecord]:
            session = await sandbox_backend.aopen_session()
            async with session:
                await session.arun("x = 5")
                await session.arestart()
                await session.arun("x = 6")
                return [await session.arun("x + 1"), await session.arun("x", timeout=5)]

        records = asyncio.run(scenario())
        assert [check_record(r).stdout for r in records] == ["7\n", "6\n"]
