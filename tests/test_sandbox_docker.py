"""The docker backend, driven through the real docker SDK against a stand-in engine.

What is stood in: the Docker Engine (no dockerd runs here). ``tests/standins/
docker_engine.py`` is a real HTTP/1.1 server on a unix socket that speaks the API
subset the SDK calls (ping, version, image inspect and pull, container create,
inspect, attach as a hijacked 101 stream with Docker's 8-byte frames, start,
wait, kill, delete, and archive uploads, refused for a read-only root as Docker
refuses them). Its containers are bubblewrap sandboxes: the host's filesystem
read-only as the image, the requested tmpfs mounts, no network, own PID/IPC/UTS
namespaces, no capabilities. Not stood in: cgroups (memory, pids and CPU limits
are asserted on the request, not enforced), the ``User`` setting, registries,
and every real Docker behaviour outside that subset; the last test runs the
backend against a real engine when one answers.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from collections.abc import Iterator

import pytest

from codedance.core.config import SandboxConfig
from codedance.core.errors import ConfigError, MissingDependencyError
from codedance.sandboxes.base import InputFile, SandboxError, SessionSpec
from codedance.sandboxes.docker import TMPFS, DockerSandbox
from codedance.testing import SandboxConformance
from tests.standins.docker_engine import DockerEngineStandIn, python_image, runtime_problem

try:
    import docker
except ImportError:  # the tests that need the SDK skip; the missing-SDK test still runs
    docker = None

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
    settings = {"base_url": engine.base_url, "preload": [], **options}
    return DockerSandbox(SandboxConfig(backend="docker", timeout_s=10, options=settings))


def _create_body(engine: DockerEngineStandIn, session_id: str) -> dict[str, object]:
    (request,) = [
        r
        for r in engine.calls("POST", "/containers/create")
        if r.body["Labels"] == {"codedance.session": session_id}
    ]
    body: dict[str, object] = request.body
    return body


@needs_containers
class TestDockerSandbox(SandboxConformance):
    """The whole conformance suite; the worker in each stand-in container does the work.

    Only PIL and pyplot are preloaded (the worker patches the viewers of preloaded
    modules): each container is a fresh interpreter, and the full list costs ~1.3 s.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls, engine: DockerEngineStandIn) -> Iterator[DockerSandbox]:
        with _backend(engine, preload=["PIL.Image", "matplotlib.pyplot"]) as backend:
            yield backend


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
        options={"base_url": engine.base_url, "preload": [], "cpus": 1.5},
    )
    with DockerSandbox(config) as backend:
        session = backend.open_session(SessionSpec(env={"TOKEN": "t"}))
        body = _create_body(engine, session.id)
    host = body["HostConfig"]
    assert (body["Image"], body["NetworkDisabled"], body["WorkingDir"]) == (
        "python:3.11-slim",
        True,
        "/workspace",
    )
    assert (body["OpenStdin"], body["Tty"], body["User"]) == (True, False, "65534:65534")
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["PidsLimit"]) == ("none", True, 32)
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["NanoCpus"] == 1_500_000_000
    assert (host["CapDrop"], host["SecurityOpt"]) == (["ALL"], ["no-new-privileges"])
    assert host["Tmpfs"] == TMPFS
    env = dict(item.partition("=")[::2] for item in body["Env"])
    assert env["CODEDANCE_TEST_PASSED"] == "yes"
    assert env["TOKEN"] == "t"
    assert "CODEDANCE_TEST_SECRET" not in env
    assert set(env) <= {
        *("PATH", "LANG", "HOME", "MPLBACKEND", "MPLCONFIGDIR"),
        *("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CODEDANCE_TEST_PASSED", "TOKEN"),
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


@needs_containers
def test_root_is_read_only_and_there_is_no_network(engine):
    """Stood in: the engine; bubblewrap enforces what the create request asked for."""
    code = (
        "import socket\n"
        "try:\n    open('/opt/x', 'w')\nexcept OSError as e:\n    print(e.strerror)\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
    )
    with _backend(engine) as backend, backend.open_session() as session:
        record = session.run(code)
    assert record.stdout.splitlines()[0] == "Read-only file system"
    assert record.stdout.splitlines()[1] in ("ConnectionRefusedError", "OSError")


@needs_containers
def test_close_removes_the_container(engine):
    """Stood in: the engine; removal is the DELETE with force the SDK sends."""
    with _backend(engine) as backend:
        session = backend.open_session()
        container_id = session.container.id
        session.close()
        assert engine.container(container_id) is None
        deletes = engine.calls("DELETE", f"/containers/{container_id}")
        assert [r.query.get("force") for r in deletes] == ["True"]
        leftover = backend.open_session()
        leftover_id = leftover.container.id
    assert engine.container(leftover_id) is None  # backend.close() removed it


@needs_containers
def test_a_dead_container_is_reported_and_replaced(engine):
    """Stood in: the engine; the container is killed from outside, as an OOM kill would."""
    with _backend(engine) as backend, backend.open_session() as session:
        session.run("x = 1")
        first = session.container.id
        engine.container(first).kill()
        record = session.run("print('never')")
        assert record.session_died
        assert "fresh container" in record.error.message
        assert session.run("print('again')").stdout == "again\n"
        assert session.container.id != first


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
    [({"cpus": -1}, "sandbox.options.cpus"), ({"imagee": "x"}, "sandbox.options.imagee")],
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
    """Stood in: the engine answers the ping; a socket nobody listens on does not."""
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    assert DockerSandbox.doctor() is None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    started = time.monotonic()
    problem = DockerSandbox.doctor()
    assert problem is not None
    assert "DOCKER_HOST" in problem
    assert time.monotonic() - started < 10


def _real_engine_problem() -> str | None:
    if docker is None:
        return SDK_MISSING
    try:
        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Docker engine answers here ({type(exc).__name__})"
    return None


REAL_ENGINE_PROBLEM = _real_engine_problem()


@pytest.mark.skipif(REAL_ENGINE_PROBLEM is not None, reason=str(REAL_ENGINE_PROBLEM))
def test_real_engine_runs_a_session():
    """Nothing stood in: a real Docker engine, pulling python:3.11-slim if needed."""
    config = SandboxConfig(backend="docker", options={"pull": True})
    with DockerSandbox(config) as backend, backend.open_session() as session:
        assert session.run("x = 6\nx * 7").stdout == "42\n"
        record = session.run("open('/etc/x', 'w')")
    assert record.error is not None
    assert "docker python:3.11-slim" in record.isolation
