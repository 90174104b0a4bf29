"""Build the codedance sandbox image through the docker SDK, from any Python base image.

The definition ships in the package (``sandboxes/image/Dockerfile`` and its
``check.py``); :func:`build_image` sends it with a context holding the ``tools``
extra's requirements (read from the installed codedance's metadata), the worker,
and optionally a CA bundle for pip. The build runs with the host's network
(``network_mode=host``) so it works on engines without a bridge; pip runs only
when the base lacks a requirement, so a base that already has them builds offline.
The image is labelled with the codedance version and the modules it was checked
to import, which ``codedance doctor`` reads.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codedance.core.errors import MissingDependencyError
from codedance.sandboxes.base import SandboxError
from codedance.sandboxes.docker_image import TOOL_MODULES, TOOLS_LABEL, VERSION_LABEL
from codedance.sandboxes.local import WORKER_DIR

__all__ = ["DEFINITION_DIR", "build_context", "build_image", "tools_requirements"]

DEFINITION_DIR = Path(__file__).resolve().parent / "image"
WORKER_LABEL = "org.codedance.sandbox.worker"
#: The `tools` extra, for a codedance whose metadata cannot be read (a source checkout).
_TOOLS_FALLBACK = ("numpy", "Pillow", "opencv-python-headless", "matplotlib", "sympy", "shapely")


def tools_requirements() -> list[str]:
    """The requirements of codedance's ``tools`` extra, from the installed metadata."""
    from importlib import metadata

    try:
        declared = metadata.requires("codedance") or []
    except metadata.PackageNotFoundError:
        declared = []
    extra = re.compile(r"""extra\s*==\s*["']tools["']""")
    found = [item.split(";")[0].strip() for item in declared if extra.search(item)]
    return found or list(_TOOLS_FALLBACK)


def worker_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(WORKER_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_context(pip_cert: Path | None = None) -> bytes:
    """The build context as an uncompressed tar: Dockerfile, check, requirements, worker."""
    files = {
        "Dockerfile": (DEFINITION_DIR / "Dockerfile").read_bytes(),
        "check.py": (DEFINITION_DIR / "check.py").read_bytes(),
        "requirements.txt": ("\n".join(tools_requirements()) + "\n").encode(),
    }
    for path in sorted(WORKER_DIR.glob("*.py")):
        files[f"worker/{path.name}"] = path.read_bytes()
    if pip_cert is not None:
        files["ca.pem"] = pip_cert.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_image(
    base: str,
    tag: str,
    *,
    python: str = "python3",
    pip_cert: Path | None = None,
    base_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Build ``tag`` from ``base``; the image id. SandboxError with the build's own message."""
    from codedance import __version__

    docker = _docker()
    client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
    args = {"BASE": base, "PYTHON": python}
    if pip_cert is not None:
        args["PIP_CERT"] = "/opt/codedance-image/ca.pem"
    labels = {
        VERSION_LABEL: __version__,
        TOOLS_LABEL: ",".join(TOOL_MODULES),
        WORKER_LABEL: worker_digest(),
    }
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(build_context(pip_cert)),
            custom_context=True,
            tag=tag,
            buildargs=args,
            labels=labels,
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
        )
        image_id = _follow(stream, echo, f"building {tag!r} from {base!r}")
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker could not build {tag!r} from {base!r}: {exc}") from None
    finally:
        client.close()
    return image_id


def _follow(stream: Any, echo: Callable[[str], None], what: str) -> str:
    """Echo the build's output; the image id, or SandboxError with the failing step's text."""
    image_id, tail = "", list[str]()
    for chunk in stream:
        if "error" in chunk:
            context = "".join(tail[-15:]).strip()
            raise SandboxError(f"{what} failed: {chunk['error'].strip()}\n{context}")
        text = chunk.get("stream", "")
        if text:
            tail.append(text)
            echo(text.rstrip("\n"))
        image_id = chunk.get("aux", {}).get("ID", image_id)
    if not image_id:
        raise SandboxError(f"{what} ended without an image id")
    return str(image_id)


def _docker() -> Any:
    try:
        return importlib.import_module("docker")
    except ImportError:
        raise MissingDependencyError.for_extra(
            "docker", "docker", "codedance sandbox build-image"
        ) from None
