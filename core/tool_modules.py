"""What a tool needs inside a sandbox: the sources of its module and first-party imports.

A tool is a function in some module. Sandboxes (a local zygote, a Docker container,
an E2B VM) have neither codedance nor the plugin installed, so the tool's module and
every first-party module it imports (its own package's modules and
``codedance.tools``) travel in as source (:func:`codedance.sandboxes.tools.bundle_tools`).
:func:`collect_modules` walks those imports; :func:`check_tool` runs the same walk
when a plugin registers a tool, so a tool module that imports the rest of codedance
(the plugin machinery does not exist in the sandbox) is reported, with its file and
line, when the plugin loads instead of failing every sandbox run later.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from codedance.core.errors import CodedanceError

__all__ = [
    "SHIPPABLE_CODEDANCE",
    "ShippedModule",
    "ToolShippingError",
    "check_tool",
    "collect_modules",
    "tool_location",
]

#: The part of codedance that tool modules may import (it is shipped with them).
SHIPPABLE_CODEDANCE = "codedance.tools"


class ToolShippingError(CodedanceError):
    """A tool cannot be shipped into a sandbox (no source, or it imports codedance's core)."""


@dataclass(frozen=True)
class ShippedModule:
    """One module's source as it travels into the sandbox."""

    name: str
    source: str
    package: bool
    origin: str


def check_tool(name: str, function: Callable[..., Any]) -> None:
    """Raise :class:`ToolShippingError` if ``function`` could not run inside a sandbox."""
    module_name, _ = tool_location(name, function)
    _check_module(module_name)


@functools.lru_cache(maxsize=256)
def _check_module(module_name: str) -> None:
    _Collector().add(module_name, top=module_name.split(".")[0])  # raises; no requires lookup


def collect_modules(
    module_names: list[str],
) -> tuple[tuple[ShippedModule, ...], dict[str, str]]:
    """The sources to ship for these tool modules, and the third-party packages they need.

    The packages map an import name to the distribution that provides it here.
    """
    collector = _Collector()
    for module_name in module_names:
        collector.add(module_name, top=module_name.split(".")[0])
    return tuple(collector.modules.values()), collector.requires()


def tool_location(name: str, function: Callable[..., Any]) -> tuple[str, str]:
    """``(module, attribute)`` where the sandbox finds ``function``, or why it cannot."""
    module_name = getattr(function, "__module__", None)
    attribute = getattr(function, "__qualname__", "")
    module = sys.modules.get(module_name or "")
    if (
        module is None
        or module_name == "__main__"
        or getattr(module, attribute, None) is not function
    ):
        raise ToolShippingError(
            f"tool {name!r} ({function!r}) cannot be shipped into a sandbox: it must be a "
            f"top-level function of an importable module, found in module {module_name!r} as "
            f"{attribute!r}. Fix: define it at the top level of a module of your plugin."
        )
    return str(module_name), attribute


class _Collector:
    """Walks imports from the tool modules and keeps the first-party sources."""

    def __init__(self) -> None:
        self.modules: dict[str, ShippedModule] = {}
        self.third_party: set[str] = set()

    def add(self, name: str, top: str) -> None:
        if name in self.modules:
            return
        module = _shipped(name)
        self.modules[name] = module
        for base, attribute, line in _imports(module):
            self._follow(base, attribute, importer=f"{_file_of(name)}:{line}", top=top)

    def _follow(self, base: str, attribute: str | None, importer: str, top: str) -> None:
        head = base.split(".")[0]
        first_party = head in (top, "codedance")
        name = _submodule_or_base(base, attribute) if first_party and attribute else base
        if name == SHIPPABLE_CODEDANCE or name.startswith(SHIPPABLE_CODEDANCE + "."):
            self.add(name, top=head)
        elif head == "codedance":
            raise ToolShippingError(
                f"{importer}: this tool module imports {name!r}; sandboxes have no codedance "
                f"install, only the shipped tool modules (and {SHIPPABLE_CODEDANCE}). Fix: "
                f"move the tool functions into a module that does not import codedance and "
                f"register them from your plugin module (docs/tools.md, 'Writing a tool')."
            )
        elif head == top:
            self.add(name, top=top)
        elif head not in sys.stdlib_module_names and head != "__future__":
            self.third_party.add(head)

    def requires(self) -> dict[str, str]:
        """Import name -> the distribution that provides it here (for the sandbox's notes)."""
        providers = _distributions()
        return {name: _preferred(providers.get(name, [name])) for name in sorted(self.third_party)}


def _preferred(distributions: list[str]) -> str:
    """One distribution for an import name; a ``-headless`` build wins (sandboxes have no GUI)."""
    return sorted(distributions, key=lambda d: ("headless" not in d.lower(), d))[0]


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _shipped(name: str) -> ShippedModule:
    module = sys.modules.get(name)
    spec = module.__spec__ if isinstance(module, ModuleType) else importlib.util.find_spec(name)
    source = _source(name, spec) if spec is not None else None
    if spec is None or source is None:
        raise ToolShippingError(
            f"module {name!r} has no Python source to ship into the sandbox (a compiled or "
            f"namespace module). Fix: tools and their helpers must live in .py modules."
        )
    package = spec.submodule_search_locations is not None
    path = name.replace(".", "/") + ("/__init__.py" if package else ".py")
    return ShippedModule(name, source, package, f"<codedance-tools>/{path}")


def _source(name: str, spec: importlib.machinery.ModuleSpec) -> str | None:
    """The module's source: from its loader, else its ``.py`` file (loaders such as
    pytest's assertion rewriter import from source without a ``get_source``)."""
    loader = spec.loader
    if loader is not None and hasattr(loader, "get_source"):
        source: str | None = loader.get_source(name)
        return source
    if spec.origin and spec.origin.endswith(".py") and Path(spec.origin).is_file():
        return importlib.util.decode_source(Path(spec.origin).read_bytes())
    return None


def _imports(module: ShippedModule) -> Iterator[tuple[str, str | None, int]]:
    """``(module, imported name, line)`` per import in ``module``, outside ``if TYPE_CHECKING``.

    ``import a.b`` gives ``("a.b", None)``; ``from .x import y`` gives the absolute
    ``x`` and ``"y"``, which may be a submodule or an attribute.
    """
    package = module.name if module.package else module.name.rpartition(".")[0]
    for node in _import_nodes(ast.parse(module.source, module.origin)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None, node.lineno) for alias in node.names)
            continue
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
        yield from ((base, alias.name, node.lineno) for alias in node.names)


def _file_of(module_name: str) -> str:
    """The file a module was loaded from, as a user finds it (its name when unknown)."""
    module = sys.modules.get(module_name)
    return str(getattr(module, "__file__", None) or module_name)


def _submodule_or_base(base: str, attribute: str) -> str:
    """``from base import attribute``: the submodule when there is one, else ``base``."""
    candidate = f"{base}.{attribute}"
    if candidate in sys.modules:
        return candidate
    try:
        return candidate if importlib.util.find_spec(candidate) is not None else base
    except (ImportError, ValueError):  # base is not a package
        return base


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in _import_nodes_of(child))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _import_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
