"""The Docker backend's image and container bookkeeping: find, check, reap.

- :func:`find_image`: the configured image, pulled only when allowed; a missing
  image is an error naming ``codedance sandbox build-image``.
- :func:`doctor_problem` / :func:`describe_image`: the ``codedance doctor`` row,
  whether the configured image exists and has what the tools need (from the
  labels ``build-image`` writes, else by importing them in a throwaway container).
- :func:`owner_label` / :func:`reap_orphans`: every container carries its owner
  (host, pid, process start time); a backend that connects removes the containers
  whose owner on this host is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from types import ModuleType
from typing import TYPE_CHECKING, Any

from codedance.sandboxes.base import SandboxError

if TYPE_CHECKING:
    from codedance.core.config import SandboxConfig
    from codedance.sandboxes.docker import DockerSandbox

__all__ = [
    "DEFAULT_IMAGE",
    "TOOLS_LABEL",
    "TOOL_MODULES",
    "describe_image",
    "doctor_problem",
    "find_image",
    "owner_label",
    "reap_orphans",
]

#: The docker backend's default image, what ``codedance sandbox build-image`` tags.
DEFAULT_IMAGE = "codedance-sandbox:latest"
#: What the built-in tools and the image features import inside a session.
TOOL_MODULES = ("numpy", "PIL", "cv2", "matplotlib", "sympy", "shapely")
TOOLS_LABEL = "org.codedance.sandbox.tools"
VERSION_LABEL = "org.codedance.sandbox.version"
_PROBE_TIMEOUT_S = 60
_described: dict[str, str] = {}  # image -> what doctor found, for describe()


def find_image(backend: DockerSandbox, name: str) -> Any:
    """The image ``name`` on the engine, pulled when ``sandbox.options.pull`` allows."""
    client, errors = backend.client(), backend._docker.errors
    with backend.engine_call(f"inspect the image {name!r}"):
        try:
            return client.images.get(name)
        except errors.ImageNotFound:
            if not backend.options.pull:
                raise SandboxError(missing_image(name)) from None
    with backend.engine_call(f"pull the image {name!r}"):
        return client.images.pull(name)


def missing_image(name: str) -> str:
    return (
        f"the Docker image {name!r} (sandbox.options.image) is not on the engine; fix: "
        f"`codedance sandbox build-image --tag {name}` builds it (from python:3.11-slim, or "
        f"--base IMAGE), or `docker pull {name}`, or `-o sandbox.options.pull=true`"
    )


# -- owners and orphans -----------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def owner_label() -> str:
    """``host/pid/start``: who owns the containers this process creates."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_time(pid)}"


def reap_orphans(client: Any, label: str) -> list[str]:
    """Remove containers whose owner on this host has exited; their ids."""
    host, removed = socket.gethostname(), []
    for summary in client.api.containers(all=True, filters={"label": label}):
        owner_host, _, rest = (summary.get("Labels") or {}).get(label, "").partition("/")
        pid, _, started = rest.partition("/")
        if owner_host != host or not pid.isdigit() or _start_time(int(pid)) == started:
            continue
        with contextlib.suppress(Exception):  # gone already, or removal in progress
            client.api.remove_container(summary["Id"], force=True)
            removed.append(summary["Id"])
    return removed


# -- doctor ------------------------------------------------------------------------------


def _configured(config: SandboxConfig | None) -> Any:
    from codedance.sandboxes.docker_options import parse_options

    options = config.options if config is not None and config.backend == "docker" else {}
    return parse_options(options)


def doctor_problem(docker: ModuleType, config: SandboxConfig | None) -> str | None:
    """None when the engine answers and the configured image has the tools' modules."""
    options = _configured(config)
    where = options.base_url or os.environ.get("DOCKER_HOST", "the default socket")
    try:
        client = (
            docker.DockerClient(base_url=options.base_url, timeout=3)
            if options.base_url
            else docker.from_env(timeout=3)
        )
        with contextlib.closing(client):
            client.ping()
            return _image_problem(docker, client, options)
    except Exception as exc:  # the SDK raises its own errors and requests' alike
        return (
            f"no Docker engine answers at {where} ({type(exc).__name__}: {exc}); "
            "start the Docker daemon or point DOCKER_HOST at one"
        )


def _image_problem(docker: ModuleType, client: Any, options: Any) -> str | None:
    name = options.image
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return missing_image(name)
    labels = image.attrs["Config"].get("Labels") or {}
    if labels.get(TOOLS_LABEL):
        version = labels.get(VERSION_LABEL, "?")
        _described[name] = f"built by codedance {version} with {labels[TOOLS_LABEL]}"
        return None
    missing = _probe_modules(client, name, options.python)
    if missing:
        return (
            f"the image {name!r} lacks {missing} (the image features and built-in tools need "
            f"{', '.join(TOOL_MODULES)}); fix: `codedance sandbox build-image --base {name} "
            "--tag codedance-sandbox:latest`, then "
            "`-o sandbox.options.image=codedance-sandbox:latest`"
        )
    _described[name] = f"has {', '.join(TOOL_MODULES)}"
    return None


def _probe_modules(client: Any, image: str, python: str) -> str:
    """Which tool modules ``image`` cannot import, checked in a throwaway container."""
    code = (
        "import importlib.util as u; "
        f"print(','.join(m for m in {TOOL_MODULES!r} if u.find_spec(m) is None))"
    )
    try:
        output = client.containers.run(
            image, [python, "-I", "-c", code], network_mode="none", remove=True, user="65534"
        )
    except Exception as exc:
        return f"a working {python!r} ({type(exc).__name__}: {str(exc)[:200]})"
    return str(output.decode().strip())


def describe_image(config: SandboxConfig | None) -> str:
    """What doctor found about the configured image, as a suffix for describe()."""
    name = _configured(config).image
    found = _described.get(name)
    return f"; image {name}: {found}" if found else f"; image {name}"
