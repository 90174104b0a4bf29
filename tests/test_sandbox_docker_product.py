"""The Docker sandbox as a product, on a real engine: exec, build-image, the doctor row.

Nothing is stood in; the engine and image requirements (and their skips, failures
under ``CODEDANCE_REQUIRE_DOCKER=1``) are those of ``test_sandbox_docker_real.py``,
whose fixture this module shares.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.base import SandboxError
from codedance.sandboxes.docker import DockerSandbox
from tests.test_sandbox_docker_real import IMAGE, real_engine

__all__ = ["real_engine"]  # the shared fixture, found by pytest here too


def test_exec_crops_an_input_image_and_writes_a_file(real_engine, tmp_path):
    from PIL import Image

    picture = tmp_path / "input_image.png"
    Image.new("RGB", (100, 80), (10, 200, 10)).save(picture)
    code = (
        "open('notes.txt', 'w').write('seen')\nprint(open('notes.txt').read(), image.size)\n"
        "image.crop((10, 10, 42, 26))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codedance",
            "-o",
            f"sandbox.options.image={IMAGE}",
            "exec",
            "--backend",
            "docker",
            "--image",
            str(picture),
            "--json",
            "--out",
            str(tmp_path),
            "-",
        ],
        input=code,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    record = json.loads(done.stdout)
    assert record["stdout"] == "seen (100, 80)\n"
    assert record["error"] is None
    assert "notes.txt" in record["files"]
    (image,) = record["images"]
    assert Image.open(image).size == (32, 16)


def test_build_image_command_labels_what_doctor_reads(real_engine, codedance_cli):
    """`codedance sandbox build-image` from the sandbox image itself (pip has nothing to do)."""
    tag = "codedance-sandbox:test-build"
    result = codedance_cli("sandbox", "build-image", "--base", IMAGE, "--tag", tag)
    try:
        assert result.exit_code == 0, result.output
        assert f"built {tag}" in result.output
        labels = real_engine.images.get(tag).labels
        assert labels["org.codedance.sandbox.tools"] == "numpy,PIL,cv2,matplotlib,sympy,shapely"
        config = SandboxConfig(backend="docker", options={"image": tag})
        assert DockerSandbox.doctor(config) is None
        assert "built by codedance" in DockerSandbox.describe(config)
    finally:
        real_engine.images.remove(tag)


def test_a_build_from_a_missing_base_names_it(real_engine):
    from codedance.sandboxes.docker_build import build_image

    with pytest.raises(SandboxError, match="no/such-base:1"):
        build_image("no/such-base:1", "codedance-sandbox:never", echo=lambda line: None)


def test_doctor_names_the_build_command_for_a_missing_image(real_engine):
    config = SandboxConfig(backend="docker", options={"image": "codedance-sandbox:absent"})
    problem = DockerSandbox.doctor(config)
    assert problem is not None
    assert "codedance sandbox build-image --tag codedance-sandbox:absent" in problem


def test_doctor_names_what_an_unlabelled_image_lacks(real_engine):
    """An image not built by codedance is probed in a throwaway container."""
    dockerfile = (
        f"FROM {IMAGE}\nLABEL org.codedance.sandbox.tools=\n"
        "RUN rm -rf /usr/local/lib/python3*/dist-packages/numpy\n"
    )
    tag = "codedance-test:no-numpy"
    real_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        problem = DockerSandbox.doctor(SandboxConfig(backend="docker", options={"image": tag}))
    finally:
        real_engine.images.remove(tag, force=True)
    assert problem is not None
    assert f"the image {tag!r} lacks numpy" in problem
    assert f"codedance sandbox build-image --base {tag}" in problem
