"""The e2b backend, driven through the real e2b SDK against a local stand-in of E2B.

What is stood in: E2B's HTTP services. ``tests/standins/e2b_server.py`` is a real
HTTP/1.1 server on 127.0.0.1 that the SDK is pointed at with its own variables
``E2B_API_URL`` (control plane: create and kill sandboxes, ``X-API-KEY`` checked)
and ``E2B_SANDBOX_URL`` (every request to a sandbox: envd's ``/health`` and
multipart ``/files`` upload, the code interpreter's streamed ``/execute`` and its
``/contexts`` list and restart). Each sandbox runs a real IPython kernel
(ipykernel through jupyter_client), whose messages become E2B's stream lines as
E2B's own server makes them, including what E2B does on a timeout (the kernel is
interrupted when the client leaves) and when a kernel dies (``ContextRestarting``).
It also reproduces E2B's race after a timeout: a request that reaches the kernel
while it handles the interrupt is aborted and never answered, which the backend's
second probe absorbs. Nothing of the SDK is mocked: ``Sandbox.create``,
``files.write``, ``run_code``, ``list_code_contexts``, ``restart_code_context``,
``is_running`` and ``kill`` run as shipped, over HTTP. The stand-in needs
jupyter_client and ipykernel; without them these tests skip.

Not stood in: the microVM (kernels run on this machine, so isolation is not
tested here), E2B's IPython startup scripts, templates, sandbox lifetimes and
network settings, and the 5 s keepalive (0.25 s here). JPEG results and ANSI
colours in tracebacks, which the stand-in's kernel does not produce, are checked
by feeding E2B wire lines to the SDK's own ``parse_output``. The last test runs
against the real E2B when ``E2B_API_KEY`` is set and is skipped otherwise.

``TestE2BConformance`` runs the shared conformance suite, declaring the items E2B
cannot meet (their tests skip with the reason); the tests below cover E2B's own
behaviour. What it cannot meet: ``rollback``
(refused: E2B can only snapshot a whole VM); ``exit()`` is no error (IPython asks
the front end to exit, which E2B ignores); ``plt.show()``, figures left open and
``Image.show()`` all come back as ``display``, in the kernel's order (open figures
last); a string value comes back without its quotes (E2B's server strips them);
``os._exit`` kills the kernel, so the state is lost (reported as
``session_died``); files the code wrote survive ``restart`` and ``reset``, which
restart the kernel, not the VM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from codedance.core.config import SandboxConfig
from codedance.core.errors import ConfigError, MissingDependencyError
from codedance.sandboxes.base import InputFile, SandboxError, SessionClosedError, SessionSpec
from codedance.sandboxes.e2b import (
    FILES_MIME,
    ISOLATION,
    E2BSandbox,
    E2BSession,
    record_from_execution,
)
from codedance.testing import SandboxConformance

KEY = "e2b_0123456789abcdef_not_a_real_key"
KEY_ENV = "CODEDANCE_TEST_E2B_KEY"

OpenSession = Callable[..., E2BSession]


def _png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def standin() -> Iterator[Any]:
    """The stand-in E2B, with real kernels; skipped without the SDK or Jupyter."""
    pytest.importorskip("e2b_code_interpreter")
    pytest.importorskip("PIL")
    pytest.importorskip("jupyter_client", reason="the stand-in's kernels need jupyter_client")
    pytest.importorskip("ipykernel", reason="the stand-in's kernels need ipykernel")
    from tests.standins.e2b_server import E2BStandIn

    with E2BStandIn(KEY) as server:
        yield server


@contextlib.contextmanager
def _pointed_at(standin: Any, **settings: Any) -> Iterator[E2BSandbox]:
    """The backend pointed at the stand-in, its key in a variable named by the options."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in standin.environ.items():
            patch.setenv(name, value)
        patch.setenv(KEY_ENV, KEY)
        patch.delenv("E2B_API_KEY", raising=False)
        options = {"api_key_env": KEY_ENV, "interrupt_grace_s": 2}
        with E2BSandbox(SandboxConfig(backend="e2b", options=options, **settings)) as opened:
            yield opened


@pytest.fixture
def backend(standin: Any) -> Iterator[E2BSandbox]:
    with _pointed_at(standin, max_output_chars=1000) as opened:
        yield opened


@pytest.fixture
def open_session(backend: E2BSandbox) -> Iterator[OpenSession]:
    """``open_session(**spec_fields)``: a session closed after the test."""
    opened: list[E2BSession] = []

    def open_one(**fields: Any) -> E2BSession:
        session = backend.open_session(SessionSpec(**fields))
        opened.append(session)
        return session

    yield open_one
    for session in opened:
        session.close()


class TestE2BConformance(SandboxConformance):
    """The shared suite against the stand-in E2B (see the module docstring)."""

    unsupported: ClassVar[dict[str, str]] = {
        "rollback": "E2B can only snapshot a whole VM, so open_session refuses it",
        "exit_is_error": "IPython asks the front end to exit and E2B ignores it",
        "image_sources": "every image comes back as E2B display data",
    }

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls, standin: Any) -> Iterator[E2BSandbox]:
        with _pointed_at(standin, timeout_s=10) as opened:
            yield opened


# -- state, output, errors ------------------------------------------------------------


def test_state_persists_and_output_is_captured(open_session: OpenSession) -> None:
    session = open_session()
    assert session.run("import math\ntotal = 40").ok
    assert session.run("total += 2\nprint(total, math.floor(2.5))").stdout == "42 2\n"
    assert session.run("x = 6\nx * 7").stdout == "42\n"  # the value, like a notebook's Out
    code = "import os, sys\nprint('out')\nprint('err', file=sys.stderr)\n"
    code += "_ = os.system('echo child')"
    record = session.run(code)
    assert (record.stdout, record.stderr, record.isolation) == ("out\nchild\n", "err\n", ISOLATION)


def test_exception_becomes_error_info_with_the_models_traceback(
    open_session: OpenSession,
) -> None:
    session = open_session()
    record = session.run("def f():\n    return 1 / 0\n\nf()")
    assert record.error is not None
    assert (record.error.type, record.error.message) == ("ZeroDivisionError", "division by zero")
    assert "line 2, in f" in record.error.traceback
    assert "return 1 / 0" in record.error.traceback
    assert "---" not in record.error.traceback.splitlines()[0]
    assert not record.timed_out
    assert not record.session_died
    syntax = session.run("def broken(:\n    pass").error
    assert syntax is not None
    assert syntax.type == "SyntaxError"


def test_output_is_truncated_and_says_so(open_session: OpenSession) -> None:
    record = open_session().run("print('x' * 5000)")
    assert record.truncated == ("stdout",)
    assert record.stdout.startswith("x" * 1000 + "\n[output truncated: ")
    assert record.stdout.endswith("more bytes were cut]")


# -- inputs, files, images ------------------------------------------------------------


def test_inputs_are_preloaded_and_written_files_listed(open_session: OpenSession) -> None:
    images = [
        InputFile("input_image.png", _png(40, 30, (255, 0, 0))),
        InputFile("second.png", _png(8, 8, (0, 0, 255))),
    ]
    session = open_session(images=images, env={"GREETING": "hi"})
    code = (
        "import os\nprint(image.size, len(images), input_image.size, second.size)\n"
        "print(sorted(f for f in os.listdir('.') if f.endswith('.png')), input_image_path)\n"
        "print(image.convert('RGB').getpixel((0, 0)), os.environ['GREETING'])"
    )
    assert session.run(code).stdout == (
        "(40, 30) 2 (40, 30) (8, 8)\n['input_image.png', 'second.png'] input_image.png\n"
        "(255, 0, 0) hi\n"
    )
    assert session.run("open('notes.txt', 'w').write('hi')").files == ("notes.txt",)
    assert session.run("print('no files')").files == ()


def test_images_come_back_as_raw_pixels(open_session: OpenSession) -> None:
    session = open_session()
    (last,) = session.run("from PIL import Image\nImage.new('RGB', (64, 32), 'red')").images
    assert (last.mode, last.width, last.height, last.source) == ("RGB", 64, 32, "last_expression")
    assert last.to_pil().getpixel((5, 5)) == (255, 0, 0)
    shown = session.run("display(Image.new('L', (10, 10)))\nplt.plot([1, 2]); plt.show()").images
    sources = [(image.mode, image.source) for image in shown]
    assert sources == [("L", "display"), ("RGBA", "display")]  # plt.show() is a display here
    code = "import numpy as np\na = np.zeros((4, 4, 3), np.uint8)\na[..., 0] = 255\na"
    (array,) = session.run(code).images
    assert array.to_pil().getpixel((0, 0)) == (0, 0, 255)  # OpenCV's order, like local


def test_sessions_do_not_share_state(open_session: OpenSession) -> None:
    first, second = open_session(), open_session()
    assert first.run("secret = 'a'\nopen('mine.txt', 'w').write('a')").ok
    record = second.run("import os\nprint(os.path.exists('mine.txt'))\nsecret")
    assert record.stdout == "False\n"
    assert record.error is not None
    assert first.sandbox_id != second.sandbox_id


# -- limits and failures ----------------------------------------------------------------


def test_timeout_interrupts_and_keeps_the_state(open_session: OpenSession) -> None:
    session = open_session()
    record = session.run("reached = 1\nimport time\ntime.sleep(30)", timeout=1)
    assert record.timed_out
    assert record.duration_s < 1.75  # the SDK's own deadline would be 2 s (read + write)
    assert record.error is not None
    assert record.error.type == "TimeoutError"
    assert not record.session_died
    assert session.run("reached").stdout == "1\n"


def test_code_ignoring_the_interrupt_gets_its_kernel_restarted(
    open_session: OpenSession,
) -> None:
    session = open_session(images=[InputFile("input_image.png", _png(8, 8, (0, 255, 0)))])
    session.run("kept = 1")
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    record = session.run(code, timeout=1)
    assert (record.timed_out, record.session_died, record.restored) == (True, True, "reset")
    after = session.run("print(image.size, 'kept' in globals())")
    assert after.stdout == "(8, 8) False\n"


def test_dead_kernel_is_reported_and_the_session_goes_on(open_session: OpenSession) -> None:
    session = open_session(images=[InputFile("input_image.png", _png(8, 8, (0, 255, 0)))])
    record = session.run("import os\nos._exit(3)")
    assert record.session_died
    assert record.error is not None
    assert record.error.type == "ContextRestarting"
    assert session.run("print(image.size)").stdout == "(8, 8)\n"


def test_lost_sandbox_is_replaced_with_its_inputs(open_session: OpenSession, standin: Any) -> None:
    session = open_session(images=[InputFile("input_image.png", _png(8, 8, (0, 255, 0)))])
    first = session.sandbox_id
    standin.kill(first)  # as E2B does when a sandbox outlives its timeout
    record = session.run("print(1)")
    assert record.session_died
    assert record.error is not None
    assert record.error.type == "SessionDied"
    assert session.run("print(image.size)").stdout == "(8, 8)\n"
    assert session.sandbox_id not in (None, first)


def test_reset_restarts_the_kernel_after_a_failure(open_session: OpenSession) -> None:
    session = open_session(
        on_error="reset", images=[InputFile("input_image.png", _png(8, 8, (0, 255, 0)))]
    )
    assert session.run("x = 1").ok
    assert session.run("raise ValueError('no')").restored == "reset"
    record = session.run("print(image.size)\nx")
    assert record.stdout == "(8, 8)\n"
    assert record.error is not None
    assert record.error.type == "NameError"


def test_rollback_is_refused_naming_the_setting(backend: E2BSandbox, standin: Any) -> None:
    before = set(standin.sandboxes)
    with pytest.raises(SandboxError, match=r"sandbox\.on_error.*Fix: set sandbox\.on_error"):
        backend.open_session(SessionSpec(on_error="rollback"))
    assert set(standin.sandboxes) == before  # refused before any sandbox was created


def test_restart_clears_the_state(open_session: OpenSession) -> None:
    session = open_session()
    assert session.run("x = 1").ok
    session.restart()
    record = session.run("x")
    assert record.error is not None
    assert record.error.type == "NameError"


def test_close_kills_the_sandbox_and_is_idempotent(open_session: OpenSession, standin: Any) -> None:
    session = open_session()
    sandbox_id = session.sandbox_id
    session.close()
    session.close()
    assert sandbox_id in standin.killed
    with pytest.raises(SessionClosedError):
        session.run("1")
    with pytest.raises(SessionClosedError):
        session.restart()


def test_async_twin(backend: E2BSandbox) -> None:
    async def scenario() -> str:
        session = await backend.aopen_session()
        async with session:
            await session.arun("x = 5")
            return (await session.arun("x + 1")).stdout

    assert asyncio.run(scenario()) == "6\n"


# -- configuration, dependencies, the API key ---------------------------------------------


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"request_timeout": -1}, "request_timeout"),
        ({"sandbox_timeout": "long"}, "sandbox_timeout"),
        ({"tempalte": "base"}, "tempalte"),
        ({"api_key_env": "not a name"}, "api_key_env"),
    ],
)
def test_option_errors_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"sandbox\.options\.{key}="):
        E2BSandbox(SandboxConfig(backend="e2b", options=options))


def test_api_key_in_the_config_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.options\.api_key:") as caught:
        E2BSandbox(SandboxConfig(backend="e2b", options={"api_key": "sk-secret-value"}))
    assert "sk-secret-value" not in str(caught.value)
    assert "api_key_env" in str(caught.value)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only here is the SDK made unimportable (a None entry in sys.modules)."""
    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", None)
    backend = E2BSandbox(SandboxConfig(backend="e2b"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'codedance\[e2b\]'"):
        backend.open_session()
    assert "codedance[e2b]" in str(E2BSandbox.doctor())


def test_doctor_wants_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("e2b_code_interpreter")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    assert "E2B_API_KEY is not set" in str(E2BSandbox.doctor())
    monkeypatch.setenv("E2B_API_KEY", KEY)
    assert E2BSandbox.doctor() is None


def test_missing_api_key_names_the_variable(
    backend: E2BSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SandboxError, match=rf"\${KEY_ENV}.*sandbox\.options\.api_key_env"):
        backend.open_session()


def test_refused_api_key_is_reported_without_the_key(
    backend: E2BSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "e2b_wrong_key_abc")
    with pytest.raises(SandboxError, match="could not start an E2B sandbox") as caught:
        backend.open_session()
    assert "e2b_wrong_key_abc" not in str(caught.value)


def test_api_key_comes_from_the_named_variable_and_is_never_logged(
    open_session: OpenSession, standin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = open_session()
    record = session.run("import os\nprint(sorted(os.environ.items()))")
    assert record.ok
    assert KEY not in record.stdout  # not in the sandbox's environment
    assert standin.api_keys[-1] == KEY  # the control plane got it from $KEY_ENV
    assert KEY not in caplog.text
    assert KEY not in repr(session.backend.config)


# -- the mapping layer on E2B's wire format -------------------------------------------


def test_mapping_of_e2b_wire_lines_through_the_sdks_parser() -> None:
    """JPEG results, ANSI colours and out-of-band lines, parsed by the SDK's parse_output."""
    models = pytest.importorskip("e2b_code_interpreter.models")
    image_module = pytest.importorskip("PIL.Image")
    jpeg, rgba = io.BytesIO(), io.BytesIO()
    image_module.new("RGB", (6, 4), (0, 0, 255)).save(jpeg, format="JPEG")
    image_module.new("RGBA", (3, 2), (1, 2, 3, 4)).save(rgba, format="PNG")
    lines = [
        {"type": "number_of_executions", "execution_count": 3},
        {"type": "stdout", "text": "a\n", "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "keepalive"},
        {"type": "stderr", "text": "warn\n", "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "result", "png": base64.b64encode(rgba.getvalue()).decode(), "extra": {}},
        {"type": "result", "extra": {FILES_MIME: ["out/b.txt"]}},
        {
            "type": "result",
            "is_main_result": True,
            "text": "<PIL.Image.Image image mode=RGB size=6x4>",
            "jpeg": base64.b64encode(jpeg.getvalue()).decode(),
        },
        {
            "type": "error",
            "name": "KeyError",
            "value": "'k'",
            "traceback": "\x1b[31m" + "-" * 75 + "\x1b[0m\x1b[31mKeyError\x1b[0m"
            "   Traceback (most recent call last)Cell In[3], line 1\n----> 1 {}['k']\n",
        },
        {"type": "end_of_execution"},
    ]
    execution = models.Execution()
    for line in lines:
        models.parse_output(execution, json.dumps(line))
    record = record_from_execution(execution, max_chars=100, duration=0.5)
    assert (record.stdout, record.stderr, record.files) == ("a\n", "warn\n", ("out/b.txt",))
    assert [(i.mode, i.width, i.height, i.source) for i in record.images] == [
        ("RGBA", 3, 2, "display"),
        ("RGB", 6, 4, "last_expression"),
    ]
    assert record.images[0].to_pil().getpixel((0, 0)) == (1, 2, 3, 4)
    assert record.error is not None
    assert record.error.traceback == (
        "KeyError   Traceback (most recent call last)\nCell In[3], line 1\n----> 1 {}['k']\n"
    )


# -- the real service -------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")
def test_against_the_real_e2b() -> None:
    """Runs for real (network, billing) when E2B_API_KEY is set."""
    pytest.importorskip("e2b_code_interpreter")
    spec = SessionSpec(images=[InputFile("input_image.png", _png(8, 6, (255, 0, 0)))])
    with E2BSandbox(SandboxConfig(backend="e2b")) as backend, backend.open_session(spec) as s:
        assert s.run("x = 41").ok
        assert s.run("print(x + 1, image.size)").stdout == "42 (8, 6)\n"
        (image,) = s.run("image.convert('RGB')").images
        assert image.to_pil().getpixel((0, 0)) == (255, 0, 0)
        error = s.run("1 / 0").error
        assert error is not None
        assert error.type == "ZeroDivisionError"
        assert s.run("open('a.txt', 'w').write('x')").files == ("a.txt",)
