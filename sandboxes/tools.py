"""Shipping tools into sandboxes: the source of the modules they need, as one bundle.

A tool is a function in some module. To make it callable inside any backend
(a local zygote, a Docker container, an E2B VM) where neither codedance nor the
plugin is installed, :func:`bundle_tools` collects the *source* of the tool's
module and of every first-party module it imports (its own package's modules
and ``codedance.tools``; :mod:`codedance.core.tool_modules` walks them), and
records which packages the sandbox must provide (numpy, cv2, ...). The sandbox
side, ``worker/toolbox.py``, serves those sources from memory. A tool module must
not import the rest of codedance (the plugin machinery does not exist in the
sandbox): keep the tool functions in their own module and register them from
another, as docs/tools.md shows. The registry refuses such a tool when its plugin
loads, so it never reaches a bundle.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from codedance.core.tool_modules import (
    SHIPPABLE_CODEDANCE,
    ShippedModule,
    ToolShippingError,
    collect_modules,
    tool_location,
)

__all__ = [
    "SHIPPABLE_CODEDANCE",
    "ShippedModule",
    "ToolBundle",
    "ToolShippingError",
    "bundle_tools",
]


@dataclass(frozen=True, eq=False)
class ToolBundle:
    """The modules, bindings (tool name -> module attribute) and requirements of some tools."""

    modules: tuple[ShippedModule, ...]
    bind: tuple[tuple[str, str, str], ...]
    requires: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.bind)

    @functools.cached_property
    def wire_json(self) -> str:
        """:meth:`to_wire` as JSON, built once per bundle."""
        return json.dumps(self.to_wire())

    @functools.cached_property
    def digest(self) -> str:
        """A hash of the bundle's content: equal bundles share one warm import."""
        return hashlib.sha256(self.wire_json.encode()).hexdigest()[:32]

    def to_wire(self) -> dict[str, Any]:
        """The JSON form ``worker.toolbox.install_tools`` reads."""
        return {
            "modules": {
                m.name: {"source": m.source, "package": m.package, "origin": m.origin}
                for m in self.modules
            },
            "bind": [list(binding) for binding in self.bind],
            "requires": dict(self.requires),
        }


def bundle_tools(tools: Mapping[str, Callable[..., Any]]) -> ToolBundle:
    """The bundle that makes ``tools`` (name -> function) callable inside a sandbox.

    Cached per tool set: a runtime opening a thousand sessions builds it once.
    """
    return _bundle(tuple(tools.items()))


@functools.lru_cache(maxsize=32)
def _bundle(items: tuple[tuple[str, Callable[..., Any]], ...]) -> ToolBundle:
    bind = tuple((name, *tool_location(name, function)) for name, function in items)
    modules, requires = collect_modules([module_name for _, module_name, _ in bind])
    return ToolBundle(modules, bind, requires)
