"""The local backend passes the sandbox conformance suite (bubblewrap when installed)."""

from __future__ import annotations

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
