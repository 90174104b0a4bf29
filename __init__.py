"""codedance: executable visual reasoning with pluggable tools, sandboxes and rewards.

A multimodal model looks at an image, writes Python, codedance runs it in a
sandbox and shows the model what came back. Everything that varies (tools,
sandbox backends, model backends, protocols, rewards, benchmarks, CLI commands)
is a plugin registered through :mod:`codedance.core.hookspecs`.

``import codedance`` stays cheap: only the hook marker is imported eagerly; the
rest loads on first attribute access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CodedanceError",
    "Config",
    "ConfigError",
    "Registry",
    "__version__",
    "get_registry",
    "hookimpl",
    "load_config",
]

_LAZY = {
    "hookimpl": "codedance.core.hookspecs",
    "CodedanceError": "codedance.core.errors",
    "ConfigError": "codedance.core.errors",
    "Registry": "codedance.core.registry",
    "get_registry": "codedance.core.discovery",
    "Config": "codedance.core.config",
    "load_config": "codedance.core.config",
}

if TYPE_CHECKING:
    from codedance.core.config import Config, load_config
    from codedance.core.discovery import get_registry
    from codedance.core.errors import CodedanceError, ConfigError
    from codedance.core.hookspecs import hookimpl
    from codedance.core.registry import Registry


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'codedance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
