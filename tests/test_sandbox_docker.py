"""The docker backend's error paths and requests, through the real SDK against a stand-in.

What is stood in: the Docker Engine. ``tests/standins/docker_engine.py`` is a real
HTTP/1.1 server on a unix socket that speaks the API subset the SDK calls (ping,
version, image inspect and pull, container create, inspect, attach as a hijacked
101 stream with Docker's 8-byte frames, start, wait, kill, delete, and archive
uploads, refused for a read-only root as Docker refuses them); its containers are
bubblewrap sandboxes. It stays for what a real engine cannot produce on demand: a
registry to pull from, the exact request body, an unreachable engine. Everything a
real engine can show runs against one in ``tests/test_sandbox_docker_real.py``.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from codedance.core.config import SandboxConfig
from codedance.core.errors import ConfigError, MissingDependencyError
from codedance.sandboxes.base import InputFile, SandboxError, SessionSpec
from codedance.sandboxes.docker import DockerSandbox, tmpfs_mounts
from tests.standins.docker_engine import DockerEngineStandIn, python_image, runtime_problem

try:
    import docker
except ImportError:  # the tests that need the SDK skip; the missing-SDK test still runs
    docker = None

IMAGE = "python:3.11-slim"  # the stand-in's image: the host's filesystem
SDK_MISSING = "the docker SDK is not installed (pip install 'codedance[docker]')"
needs_sdk = pytest.mark.skipif(docker is None, reason=SDK_MISSING)
RUNTIME_PROBLEM = SDK_MISSING if docker is None else runtime_problem()
needs_containers = pytest.mark.skipif(
    RUNTIME_PROBLEM is not None, reason=f"no container runtime for the stand-in: {RUNTIME_PROBLEM}"
)


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngineStandIn]:
    with DockerEngineStandIn(pullable={"example/tools:1": python_image()}) as standin:
        yield standin


def _backend(engine: DockerEngineStandIn, **options: object) -> DockerSandbox:
    """A backend on the stand-in; no preload keeps each container's start near 0.2 s."""
    settings = {"base_url": engine.base_url, "image": IMAGE, "preload": [], "pool_size": 0}
    settings.update(options)
    return DockerSandbox(SandboxConfig(backend="docker", timeout_s=10, options=settings))


def _create_body(engine: DockerEngineStandIn) -> dict[str, object]:
    body: dict[str, object] = engine.calls("POST", "/containers/create")[-1].body
    return body


@needs_containers
def test_create_request_asks_for_isolation_and_limits(engine, monkeypatch):
    """Stood in: the engine (the request body is what a real dockerd would receive)."""
    monkeypatch.setenv("CODEDANCE_TEST_SECRET", "s3cret")
    monkeypatch.setenv("CODEDANCE_TEST_PASSED", "yes")
    config = SandboxConfig(
        backend="docker",
        memory_mb=512,
        max_processes=32,
        env=["CODEDANCE_TEST_PASSED"],
        options={"base_url": engine.base_url, "image": IMAGE, "preload": [], "cpus": 1.5},
    )
    with DockerSandbox(config) as backend:
        backend.open_session(SessionSpec(env={"TOKEN": "t"}))
        body = _create_body(engine)
    host = body["HostConfig"]
    assert (body["Image"], body["NetworkDisabled"], body.get("WorkingDir")) == (
        "python:3.11-slim",
        True,
        None,  # no WorkingDir: Docker would create /workspace root-owned under the tmpfs
    )
    # StdinOnce: the container's stdin closes when this process's attach does.
    assert (body["OpenStdin"], body["StdinOnce"], body["Tty"]) == (True, True, False)
    assert body["User"] == "0:0"  # the relay; model code drops to 65534 inside
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["PidsLimit"]) == ("none", True, 32)
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["NanoCpus"] == 1_500_000_000
    caps = ["SETUID", "SETGID", "KILL"]
    assert (host["CapDrop"], host["CapAdd"]) == (["ALL"], caps)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert (host["Tmpfs"], host["AutoRemove"]) == (tmpfs_mounts(65534, 65534), True)
    assert "uid=65534,gid=65534" in host["Tmpfs"]["/workspace"]
    owner = body["Labels"]["codedance.owner"]
    assert owner.split("/")[:2] == [socket.gethostname(), str(os.getpid())]
    # The container's own environment is the relay's; the session's travels in the spec.
    env = dict(item.partition("=")[::2] for item in body["Env"])
    assert "TOKEN" not in env
    assert "CODEDANCE_TEST_SECRET" not in env


@needs_containers
def test_the_default_cpu_quota_is_one_cpu(engine):
    """Stood in: the engine; without sandbox.options.cpus a container still gets 1 CPU."""
    with _backend(engine) as backend:
        backend.open_session().close()
        assert _create_body(engine)["HostConfig"]["NanoCpus"] == 1_000_000_000


@needs_containers
def test_the_session_environment_is_scrubbed_and_passed_by_name(engine, monkeypatch):
    """Stood in: the engine; the environment is what the worker sets inside the container."""
    monkeypatch.setenv("CODEDANCE_TEST_SECRET", "s3cret")
    monkeypatch.setenv("CODEDANCE_TEST_PASSED", "yes")
    config = SandboxConfig(
        backend="docker",
        env=["CODEDANCE_TEST_PASSED"],
        options={"base_url": engine.base_url, "image": IMAGE, "preload": [], "pool_size": 0},
    )
    with DockerSandbox(config) as backend, backend.open_session(SessionSpec(env={"T": "t"})) as s:
        record = s.run("import os\nprint(dict(os.environ))")
    env = ast.literal_eval(record.stdout)
    assert (env["CODEDANCE_TEST_PASSED"], env["T"], env["HOME"]) == ("yes", "t", "/workspace")
    assert "CODEDANCE_TEST_SECRET" not in env
    assert set(env) <= {
        *("PATH", "LANG", "HOME", "MPLBACKEND", "MPLCONFIGDIR"),
        *("CODEDANCE_TEST_PASSED", "T"),
    }


@needs_containers
def test_model_code_sees_only_the_scrubbed_environment(engine, monkeypatch):
    """Stood in: the engine; the environment is what the worker sets inside the container."""
    monkeypatch.setenv("CODEDANCE_TEST_SECRET", "s3cret")
    with _backend(engine) as backend, backend.open_session(SessionSpec(env={"TOKEN": "t"})) as s:
        record = s.run("import os\nprint(sorted(os.environ))")
    names = ast.literal_eval(record.stdout)
    assert "TOKEN" in names
    assert "CODEDANCE_TEST_SECRET" not in names
    assert "HOSTNAME" not in names  # Docker's own variables stay out of the session too


@needs_containers
def test_worker_and_inputs_arrive_over_stdin_after_attach(engine):
    """Stood in: the engine. Attach precedes start; nothing goes through put_archive."""
    spec = SessionSpec(files=[InputFile("data.txt", b"payload")])
    with _backend(engine) as backend, backend.open_session(spec) as session:
        code = "import worker, os\nprint(open('data.txt').read(), worker.__file__, os.getcwd())"
        record = session.run(code)
        container_id = session.container.id
    assert record.stdout == "payload /opt/codedance/worker/__init__.py /workspace\n"
    order = [
        r.path.rsplit("/", 1)[-1]
        for r in engine.requests
        if r.method == "POST" and container_id in r.path
    ]
    assert order == ["attach", "start"]
    assert not engine.calls("PUT", r"/containers/.*/archive")


@needs_sdk
def test_stand_in_refuses_archives_on_a_read_only_root_like_docker(engine):
    """Stood in: the engine, reproducing dockerd's refusal that rules put_archive out."""
    client = docker.DockerClient(base_url=engine.base_url)
    try:
        container = client.containers.create("python:3.11-slim", "true", read_only=True)
        with pytest.raises(docker.errors.APIError, match="container rootfs is marked read-only"):
            container.put_archive("/workspace", b"")
        container.remove(force=True)
    finally:
        client.close()


@needs_sdk
def test_missing_image_without_pull_names_the_fix(engine):
    """Stood in: the engine, which answers 404 for an image it does not have."""
    with _backend(engine, image="nosuch/image:1") as backend, pytest.raises(SandboxError) as caught:
        backend.open_session()
    message = str(caught.value)
    assert "'nosuch/image:1'" in message
    assert "docker pull nosuch/image:1" in message
    assert "-o sandbox.options.pull=true" in message


@needs_containers
def test_pull_true_fetches_a_missing_image(engine):
    """Stood in: the engine and the registry (the stand-in 'pulls' a preset image)."""
    with (
        _backend(engine, image="example/tools:1", pull=True) as backend,
        backend.open_session() as session,
    ):
        assert session.run("print(1)").stdout == "1\n"
    (pull,) = engine.calls("POST", "/images/create")
    assert (pull.query["fromImage"], pull.query["tag"]) == ("example/tools", "1")


@needs_containers
def test_a_missing_interpreter_is_named(engine):
    """Stood in: the engine, which fails start as Docker does when Cmd is not on PATH."""
    with (
        _backend(engine, python="python9") as backend,
        pytest.raises(SandboxError, match=r"sandbox\.options\.python"),
    ):
        backend.open_session()
    assert not [c for c in engine.containers.values() if c.body["Cmd"][0] == "python9"]


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"cpus": -1}, "sandbox.options.cpus"),
        ({"imagee": "x"}, "sandbox.options.imagee"),
        ({"user": "0:0"}, "sandbox.options.user"),  # model code never runs as root
        ({"user": "nobody"}, "sandbox.options.user"),
        ({"pool_size": 65}, "sandbox.options.pool_size"),
    ],
)
def test_invalid_options_name_the_key(options, key):
    """Nothing stood in: options are validated before the SDK is imported or an engine asked."""
    with pytest.raises(ConfigError, match=re.escape(key)):
        DockerSandbox(SandboxConfig(backend="docker", options=options))


def test_missing_sdk_raises_missing_dependency(monkeypatch):
    """Stood in: a missing SDK, by making ``import docker`` fail in this test only."""
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(MissingDependencyError, match=r"codedance\[docker\]"):
        DockerSandbox(SandboxConfig(backend="docker"))
    assert "codedance[docker]" in (DockerSandbox.doctor() or "")


@needs_sdk
def test_doctor_asks_the_engine(engine, monkeypatch, tmp_path):
    """Stood in: the engine answers the ping but lacks the image; then a socket nobody serves."""
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    missing = DockerSandbox.doctor(SandboxConfig(backend="docker", options={"image": "no/such:1"}))
    assert "codedance sandbox build-image --tag no/such:1" in (missing or "")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    started = time.monotonic()
    problem = DockerSandbox.doctor()
    assert problem is not None
    assert "DOCKER_HOST" in problem
    assert time.monotonic() - started < 10
