"""The local backend passes the sandbox conformance suite (bubblewrap when installed)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.local import LocalSandbox
from codedance.testing import SandboxConformance


class TestLocalSandbox(SandboxConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls) -> Iterator[LocalSandbox]:
        with LocalSandbox(SandboxConfig(timeout_s=10)) as backend:
            yield backend


def test_isolation_is_named_in_every_record():
    with LocalSandbox() as backend, backend.open_session() as session:
        record = session.run("1")
    assert record.isolation == session.isolation
    assert "namespaces" in record.isolation or "NO ISOLATION" in record.isolation


def test_viewers_imported_by_the_code_itself_still_return_images():
    """With nothing preloaded, PIL and pyplot imported by the code are patched too."""
    backend = LocalSandbox(SandboxConfig(options={"preload": []}))
    with backend, backend.open_session() as session:
        session.run("from PIL import Image")
        shown = session.run("Image.new('RGB', (5, 5)).show()")
        plotted = session.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert [image.source for image in shown.images] == ["show"]
    assert [image.source for image in plotted.images] == ["figure"]


def test_without_bubblewrap_the_backend_says_so_loudly():
    """`sandbox.options.bubblewrap: false` stands in for a machine without bubblewrap."""
    from codedance.sandboxes.local import UnisolatedWarning

    backend = LocalSandbox(SandboxConfig(options={"bubblewrap": False}))
    with pytest.warns(UnisolatedWarning, match="apt-get install bubblewrap"):
        session = backend.open_session()
    with backend, session:
        record = session.run("print('ran')")
    assert record.stdout == "ran\n"
    assert record.isolation.startswith("NO ISOLATION: bubblewrap missing")


def test_a_broken_input_image_is_reported_not_silently_dropped():
    from codedance.sandboxes.base import InputFile, SessionSpec

    spec = SessionSpec(images=[InputFile("broken.png", b"not an image at all")])
    with LocalSandbox() as backend, backend.open_session(spec) as session:
        first = session.run("print(len(images), image)")
        second = session.run("import os\nprint(os.path.exists('broken.png'))")
    assert first.stdout == "0 None\n"
    assert "input image 'broken.png' could not be opened (UnidentifiedImageError" in first.stderr
    assert second.stderr == ""
    assert second.stdout == "True\n"


def test_the_warm_pool_hands_out_sessions_with_their_own_inputs():
    from codedance.sandboxes.base import InputFile, SessionSpec

    backend = LocalSandbox(SandboxConfig(local={"pool_size": 2}))
    with backend:
        backend.open_session().close()
        backend.open_session().close()  # the second session starts the filling
        deadline = time.monotonic() + 30
        while len(backend.pool.ready) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(backend.pool.ready) == 2
        pooled = {id(handle) for handle in backend.pool.ready}
        specs = [SessionSpec(files=[InputFile("note.txt", f"n{i}".encode())]) for i in range(2)]
        with backend.open_session(specs[0]) as first, backend.open_session(specs[1]) as second:
            assert {id(first.handle), id(second.handle)} == pooled
            assert first.run("print(open('note.txt').read())").stdout == "n0\n"
            assert second.run("print(open('note.txt').read())").stdout == "n1\n"
            if os.geteuid() == 0:
                assert first.handle.uid != second.handle.uid


def test_without_cgroups_the_backend_says_so_or_refuses(monkeypatch):
    """Stands in for a host without writable cgroups (this one has them) by hiding them."""
    from codedance.sandboxes import local
    from codedance.sandboxes.base import SandboxError

    monkeypatch.setattr(local, "detect_cgroups", lambda tag: (None, "no cgroup filesystem"))
    strict = LocalSandbox(SandboxConfig(local={"cgroups": "required"}))
    with strict, pytest.raises(SandboxError, match=r"sandbox\.local\.cgroups is 'required'"):
        strict.open_session()
    backend = LocalSandbox(SandboxConfig(local={"pool_size": 0}))
    with pytest.warns(local.UnaccountedWarning, match="per process"):
        session = backend.open_session()
    with backend, session:
        record = session.run("print('ran')")
    assert record.stdout == "ran\n"
    assert "NO CGROUP (no cgroup filesystem)" in record.isolation


def test_records_from_a_hostile_worker_are_capped():
    from codedance.sandboxes.records import record_from_message

    header = {
        "op": "result",
        "stdout": "o" * 100_000,
        "stderr": "",
        "error": {"type": "T" * 5000, "message": "m" * 100_000, "traceback": "t" * 100_000},
        "images": [],
        "files": [f"f{i}" for i in range(10_000)],
        "restored": "whatever",
    }
    record = record_from_message(header, [], "test", max_chars=1000)
    assert len(record.stdout) < 4300
    assert record.error is not None
    assert len(record.error.message) < 1100
    assert len(record.error.type) < 300
    assert len(record.files) == 2000
    assert set(record.truncated) >= {"stdout", "error.message", "error.traceback", "error.type"}
    assert record.restored == "reset"
