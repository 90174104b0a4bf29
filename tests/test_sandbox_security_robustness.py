"""Security suite, the backend's own robustness (issue classes 6, 7, 8, 9, 12).

Tools survive every restart and cannot be replaced from the working directory;
cleanup survives hostile trees; every text field of a record is capped; errors
outside the cell's own code (rendering, a raising ``__str__``, oversize images)
are errors in the record, with the session kept; what the session can learn
about the host is what docs/sandboxes.md says.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.base import SessionSpec
from codedance.sandboxes.local import LocalSandbox, UnisolatedWarning
from codedance.sandboxes.local_limits import safe_rmtree
from codedance.sandboxes.tools import bundle_tools
from tests.sandbox_attacks import (
    MAX_CHARS,
    alarm_guard,
    assert_capped,
    attack_config,
    backend,
    host,
    needs_bwrap,
    processes_of_uid,
    run_exec,
)

pytestmark = needs_bwrap
__all__ = ["alarm_guard", "backend", "host"]  # fixtures, re-exported for pytest

TOOL_SOURCE = "def double(x):\n    return 2 * x\n"

FORGED_BUNDLE = """
import json
bundle = {"modules": {"evil": {"source": "def double(x):\\n    return 'FORGED'\\n",
                               "package": False, "origin": "evil.py"}},
          "bind": [["double", "evil", "double"]], "requires": {}}
json.dump(bundle, open(".codedance-tools.json", "w"))
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A tool module the sandbox never saw, shipped as source."""
    package = tmp_path / "attacktools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "doubling.py").write_text(TOOL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("attacktools.doubling")
    try:
        yield bundle_tools({"double": module.double})
    finally:
        for name in ("attacktools", "attacktools.doubling"):
            sys.modules.pop(name, None)


# -- class 6: the tool bundle across restarts -----------------------------------------


@pytest.mark.parametrize(
    ("on_error", "crash"),
    [
        ("reset", "1/0"),
        ("keep", "import os\nos._exit(3)"),
        ("keep", "import ctypes\nctypes.string_at(0)"),
        (
            "keep",
            "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(30)",
        ),
        ("rollback", "import os\nos._exit(3)"),
    ],
)
def test_tools_survive_every_restart(backend, host, tools, on_error, crash):
    with backend.open_session(SessionSpec(tools=tools, on_error=on_error)) as session:
        uid = session.handle.uid if session.handle is not None else None
        assert session.run("print(double(21))").stdout == "42\n"
        start = time.monotonic()
        crashed = session.run(crash, timeout=1)
        assert time.monotonic() - start < 6
        assert crashed.error is not None
        assert session.run("print(double(4))").stdout.endswith("8\n")
        if uid is not None:  # root hosts: the session's own uid counts its processes
            assert len(processes_of_uid(uid)) < 10, "init is forking failing holders in a loop"
    host.check(crashed)


def test_a_tool_bundle_written_by_the_code_is_never_loaded(backend, host, tools):
    with backend.open_session(SessionSpec(tools=tools)) as session:
        session.run(FORGED_BUNDLE)
        session.run("import os\nos._exit(1)")
        after = session.run("print(double(5))")
        session.restart()
        restarted = session.run("print(double(6))")
    assert after.stdout.endswith("10\n"), after
    assert restarted.stdout == "12\n"
    host.check(after, restarted)


def test_exec_with_tools_survives_a_crash(tmp_path):
    record, elapsed = run_exec(tmp_path, "import os\nos._exit(5)")
    assert record["error"] is not None
    assert elapsed < 30  # the old loop took 33 s to give up


# -- class 7: cleanup that never raises ------------------------------------------------

HOSTILE_TREE = """
import os
here = os.getcwd()
os.mkdir("chain")
os.chdir("chain")
for _ in range(1800):  # deep, and inside the test's 2,000-file quota
    os.mkdir("d")
    os.chdir("d")
os.chdir(here)
for name in (b"\\xff\\xfe-not-utf8", b"new\\nline", b"-rf", "😀".encode()):
    with open(name, "wb") as handle:
        handle.write(b"x")
os.makedirs("locked/inner")
open("locked/inner/f", "w").close()
os.chmod("locked/inner", 0)
os.chmod("locked", 0)
print("built")
"""


def test_close_survives_hostile_trees(backend, host):
    session = backend.open_session()
    record = session.run(HOSTILE_TREE, timeout=20)
    assert record.stdout == "built\n", record
    session.close()  # must not raise
    host.check(record)


def test_exec_survives_hostile_trees(tmp_path):
    record, _ = run_exec(tmp_path, HOSTILE_TREE, "--no-tools", "--timeout", "20")
    assert record["stdout"] == "built\n"


def test_host_folders_are_removed_whatever_they_hold(tmp_path):
    """Without bubblewrap the working directory is a host folder: removed all the same."""
    root = tmp_path / "hostile"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # deeper than PATH_MAX allows to name
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    (root / "locked").mkdir()
    (root / "locked" / "f").write_bytes(b"x")
    (root / "locked").chmod(0)
    (root / b"\xff-odd".decode("utf-8", "surrogateescape")).write_bytes(b"x")
    safe_rmtree(root)
    assert not root.exists()


def test_an_unisolated_backend_cleans_its_folder_too(host):
    config = SandboxConfig(timeout_s=10, options={"bubblewrap": False})
    with LocalSandbox(config) as unisolated:
        with pytest.warns(UnisolatedWarning, match="bubblewrap"):
            session = unisolated.open_session()
        record = session.run(HOSTILE_TREE, timeout=20)
        assert session.handle is not None
        workdir = session.handle.workdir
        session.close()
        unisolated._reaper.drain()
    assert record.stdout == "built\n"
    assert workdir is not None
    assert not workdir.exists()


# -- class 7/8: text fields, any bytes -------------------------------------------------


def test_lone_surrogates_and_odd_names_make_a_serialisable_record(backend, host):
    code = """
open(b"\\xff\\xfe.bin", "wb").write(b"x")
raise ValueError("bad \\udcff surrogate \\ud800")
"""
    with backend.open_session() as session:
        record = session.run(code)
        assert session.run("print('alive')").stdout == "alive\n"
    assert record.error is not None
    assert record.error.type == "ValueError"
    json.dumps(record.to_json()).encode("utf-8")  # must not raise
    host.check(record)


@pytest.mark.parametrize(
    "code",
    [
        "raise ValueError('m' * 30_000_000)",
        "e = None\nfor i in range(300):\n    try:\n        raise ValueError(str(i) * 50) from e\n"
        "    except ValueError as caught:\n        e = caught\nraise e",
        "raise type('E' * 1_000_000, (Exception,), {})('x')",
        "import sys\nsys.stderr.write('e' * 5_000_000)\nprint('o' * 5_000_000)",
    ],
    ids=["30MB message", "long traceback", "1MB type name", "huge streams"],
)
def test_every_text_field_is_capped(backend, host, code):
    with backend.open_session() as session:
        record = session.run(code, timeout=20)
        assert session.run("print('alive')").stdout == "alive\n"
    assert_capped(record)
    assert len(json.dumps(record.to_json())) < 20 * MAX_CHARS
    assert record.truncated, "a cut must be named"
    host.check(record)


# -- class 9: errors outside the cell's own code ---------------------------------------


def test_a_figure_that_fails_to_render_is_an_error_not_a_dead_session(backend, host):
    code = """
import matplotlib.pyplot as plt
kept = 7
plt.figure()
plt.title(r"$\\frac{$")
"""
    with backend.open_session() as session:
        record = session.run(code)
        after = session.run("print(kept)")
    assert record.error is not None
    assert not record.session_died
    assert after.stdout == "7\n"
    host.check(record, after)


def test_an_exception_whose_str_raises_is_reported(backend, host):
    code = """
kept = 3
class Nasty(Exception):
    def __str__(self):
        raise RuntimeError("no")
    def __repr__(self):
        raise RuntimeError("no")
raise Nasty()
"""
    with backend.open_session() as session:
        record = session.run(code)
        after = session.run("print(kept)")
    assert record.error is not None
    assert record.error.type == "Nasty"
    assert not record.session_died
    assert after.stdout == "3\n"
    host.check(record, after)


def test_a_system_exit_with_a_raising_repr_is_reported(backend, host):
    code = (
        "class Code:\n    def __repr__(self):\n        raise RuntimeError\nraise SystemExit(Code())"
    )
    with backend.open_session() as session:
        record = session.run(code)
        assert session.run("print(1)").stdout == "1\n"
    assert record.error is not None
    assert record.error.type == "SystemExit"
    host.check(record)


def test_oversize_images_are_dropped_with_a_note(host):
    with LocalSandbox(attack_config(memory_mb=1024)) as roomy, roomy.open_session() as session:
        session.run("import numpy as np\nbig = np.zeros((4096, 4096, 4), np.uint8)\nkept = 1")
        record = session.run("for _ in range(5):\n    display(big)", timeout=20)
        after = session.run("print(kept)")
    assert not record.session_died
    assert len(record.images) == 1
    assert "MB of pixels per run" in record.stderr
    assert after.stdout == "1\n"
    host.check(record, after)


# -- class 12: what a session learns about the host ------------------------------------


def test_kernel_command_line_and_boot_id_are_masked(backend, host):
    code = (
        "print(repr(open('/proc/cmdline').read()))\n"
        "print(repr(open('/proc/sys/kernel/random/boot_id').read()))"
    )
    with backend.open_session() as session:
        record = session.run(code)
    assert record.stdout == "''\n''\n", record.stdout
    host.check(record)
