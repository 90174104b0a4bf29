"""Sandbox backends that run model-written code in stateful sessions (local, Docker, E2B).

This module is the built-in plugin that registers them and the ``exec`` command,
through the same hooks a third-party backend uses.
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


@hookimpl
def register_commands(register: Register) -> None:
    from codedance.sandboxes.cli import bench_group, exec_command
    from codedance.sandboxes.docker_cli import sandbox_group

    register(exec_command)
    register(bench_group)
    register(sandbox_group)
