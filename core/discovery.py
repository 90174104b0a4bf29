"""Finding plugins: built-ins, installed distributions, and registry.yaml's list.

Load order is fixed: built-ins, then distributions with a ``codedance`` entry
point (filtered by ``CODEDANCE_LOAD_PLUGINS``), then the modules, files and
folders named under ``plugins:`` in the configuration. A plugin that fails to
import is recorded on the registry with its name and exception; loading goes on.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from codedance.core.errors import PluginLoadError
from codedance.core.registry import PluginInfo, Registry
from codedance.core.sources import PluginSpec

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "TRACE_ENV",
    "get_registry",
    "load_registry",
    "pinned_registry",
    "reset_registry",
    "use_registry",
]

ENTRY_POINT_GROUP = "codedance"
LOAD_ENV = "CODEDANCE_LOAD_PLUGINS"
TRACE_ENV = "CODEDANCE_TRACE_PLUGINS"

#: Modules of the plugins that ship with codedance; they use the public hooks.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "codedance.plugins.commands",
    "codedance.sandboxes",
    "codedance.plugins.protocols.codedance",
    "codedance.plugins.protocols.tagged",
    "codedance.plugins.protocols.schema",
    "codedance.plugins.models.openai",
    "codedance.plugins.models.hf",
    "codedance.plugins.models.vllm",
    "codedance.plugins.models.replay",
    "codedance.plugins.rewards",
    "codedance.plugins.benchmarks.synthetic",
    "codedance.plugins.benchmarks.release_parquet",
    "codedance.plugins.benchmarks.vstar",
    "codedance.plugins.benchmarks.hrbench",
    "codedance.plugins.benchmarks.mathvista",
    "codedance.plugins.benchmarks.mathverse",
    "codedance.plugins.benchmarks.mathvision",
    "codedance.plugins.benchmarks.wemath",
    "codedance.plugins.benchmarks.chartqa",
    "codedance.plugins.benchmarks.charxiv",
    "codedance.plugins.benchmarks.countbench",
    "codedance.plugins.benchmarks.pixmocount",
    "codedance.plugins.image",
    "codedance.plugins.geometry",
    "codedance.plugins.charts",
    "codedance.plugins.ocr",
    "codedance.plugins.plotting",
)


def load_registry(
    plugin_specs: Iterable[PluginSpec] = (),
    *,
    env: Mapping[str, str] | None = None,
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> Registry:
    """A registry with built-ins, installed plugins and ``plugin_specs`` loaded."""
    environ = os.environ if env is None else env
    tracing = environ.get(TRACE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")
    trace = sys.stderr if tracing else None
    registry = Registry(trace=trace)
    for module_name in builtins:
        _add_module(registry, module_name, "builtin")
    load_entry_points(registry, environ.get(LOAD_ENV))
    for spec in plugin_specs:
        load_spec(registry, spec)
    return registry


# -- installed distributions ------------------------------------------------------


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def load_entry_points(registry: Registry, only: str | None) -> None:
    """Load ``codedance`` entry points; ``only`` is CODEDANCE_LOAD_PLUGINS (None = all)."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    wanted = None if only is None else {_normalize(n) for n in only.split(",") if n.strip()}
    for ep in found:
        if wanted is None or {_normalize(ep.name), _normalize(_dist_name(ep))} & wanted:
            _add_entry_point(registry, ep)
    for missing in sorted((wanted or set()) - _provided(found)):
        available = ", ".join(sorted({_dist_name(ep) for ep in found})) or "none"
        registry.record(
            PluginLoadError(
                f"{LOAD_ENV} names {missing!r}, but no installed distribution provides a "
                f"{ENTRY_POINT_GROUP!r} entry point by that name (installed: {available}). "
                f"Fix: pip install it, or correct {LOAD_ENV}.",
                plugin=missing,
            )
        )


def _provided(found: list[EntryPoint]) -> set[str]:
    return {_normalize(ep.name) for ep in found} | {_normalize(_dist_name(ep)) for ep in found}


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.name


def _add_entry_point(registry: Registry, ep: EntryPoint) -> None:
    dist, version = _dist_name(ep), (ep.dist.version if ep.dist is not None else None)
    try:
        plugin = ep.load()
    except (Exception, SystemExit) as exc:
        registry.record(_import_failure(ep.name, f"distribution {dist} {version}", exc))
        return
    source = getattr(plugin, "__file__", None)
    registry.add_plugin(plugin, PluginInfo(ep.name, "entry point", dist, version, source))


# -- modules, files and folders --------------------------------------------------------


def load_spec(registry: Registry, spec: PluginSpec) -> None:
    """Load one item of the ``plugins:`` list: a module, a .py file or a folder of them."""
    if not spec.is_path:
        _add_module(registry, spec.value, str(spec.origin))
        return
    path = spec.path()
    if path.is_dir():
        for file in sorted(path.glob("*.py")):
            if not file.name.startswith("_"):
                _add_file(registry, file, f"{spec.value.rstrip('/')}/{file.name}", spec)
    elif path.is_file():
        _add_file(registry, path, spec.value, spec)
    else:
        registry.record(
            PluginLoadError(
                f"{spec.origin}: plugins: {spec.value!r} resolves to {path}, which does not "
                "exist. Fix: correct the path (relative paths start at the config file's folder).",
                plugin=spec.value,
            )
        )


def _add_module(registry: Registry, module_name: str, origin: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        registry.record(_import_failure(module_name, origin, exc))
        return
    registry.add_plugin(module, PluginInfo(module_name, origin, source=module.__file__))


def _add_file(registry: Registry, path: Path, name: str, spec: PluginSpec) -> None:
    try:
        module = _import_file(path)
    except (Exception, SystemExit) as exc:
        registry.record(_import_failure(name, str(spec.origin), exc))
        return
    registry.add_plugin(module, PluginInfo(name, str(spec.origin), source=str(path)))


def _import_file(path: Path) -> ModuleType:
    """Import a plugin file as a module of a package made for its folder.

    So the file can import its siblings relatively (``from ._tools import measure``):
    a tool must live in a module that does not import codedance, and a leading ``_``
    keeps that module from being loaded as a plugin when the folder is listed.
    """
    package = _folder_package(path.parent)
    module_name = f"{package}.{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _folder_package(folder: Path) -> str:
    """``codedance_local_plugins.<folder>_<hash>``, a package whose path is ``folder``."""
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    stem = re.sub(r"\W", "_", folder.name) or "root"
    name = f"codedance_local_plugins.{stem}_{digest}"
    for part, path in (("codedance_local_plugins", []), (name, [str(folder)])):
        if part not in sys.modules:
            package = ModuleType(part)
            package.__path__ = path
            package.__spec__ = importlib.machinery.ModuleSpec(part, None, is_package=True)
            package.__spec__.submodule_search_locations = path
            sys.modules[part] = package
    return name


def _import_failure(name: str, origin: str, exc: BaseException) -> PluginLoadError:
    return PluginLoadError(
        f"plugin {name!r} ({origin}) failed to import: {type(exc).__name__}: {exc}. "
        "The other plugins are loaded. Fix the plugin, or remove it from the list.",
        plugin=name,
    )


# -- the process-wide default ----------------------------------------------------------

_default: Registry | None = None
_pinned: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry: defaults + $CODEDANCE_CONFIG's plugins, loaded once."""
    global _default
    if _pinned is not None:
        return _pinned
    if _default is None:
        from codedance.core.sources import load_sources

        _default = load_registry(load_sources().plugin_specs())
    return _default


def pinned_registry() -> Registry | None:
    """The registry set by :func:`use_registry`, which the CLI then uses too."""
    return _pinned


def reset_registry() -> None:
    """Forget the process-wide registry so the next :func:`get_registry` reloads."""
    global _default
    _default = None


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the one every lookup and CLI call uses inside a ``with`` block."""
    global _pinned
    previous, _pinned = _pinned, registry
    try:
        yield registry
    finally:
        _pinned = previous
