"""Sandbox backends that run model-written code in stateful sessions (local, Docker, E2B).

This module is the built-in plugin that registers them, through the same hook a
third-party backend uses (``codedance exec`` lives in :mod:`codedance.commands.exec`).
"""

from __future__ import annotations

from codedance.core.hookspecs import Register, hookimpl


@hookimpl
def register_sandboxes(register: Register) -> None:
    from codedance.sandboxes.docker import DockerSandbox
    from codedance.sandboxes.e2b import E2BSandbox
    from codedance.sandboxes.local import LocalSandbox

    register(LocalSandbox)
    register(DockerSandbox)
    register(E2BSandbox)
