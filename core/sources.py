"""Reading configuration layers: YAML files, ``${ENV}`` interpolation, ``-o`` overrides.

This module only produces plain data plus where each value came from (file and
line, or the ``-o`` expression), so that every later error can point at the exact
place to fix. Validation against the schema lives in :mod:`codedance.core.config`;
keeping it apart lets the CLI find the plugin list without importing pydantic.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codedance.core.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigSources",
    "Layer",
    "Origin",
    "PluginSpec",
    "file_layer",
    "format_path",
    "load_sources",
    "override_layer",
]

#: The shipped default configuration: registry.yaml at the package root.
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "registry.yaml"
CONFIG_ENV = "CODEDANCE_CONFIG"

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path_) -> str:
    """``("rewards", 0, "weight")`` -> ``"rewards.0.weight"``."""
    return ".".join(str(part) for part in path) or "(top level)"


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a file and line, or a ``-o`` override."""

    label: str
    line: int | None = None
    base_dir: Path | None = None

    def __str__(self) -> str:
        return f"{self.label}:{self.line}" if self.line else self.label


@dataclass
class Layer:
    """One source of configuration, before merging."""

    label: str
    data: dict[str, Any]
    lines: dict[Path_, int] = field(default_factory=dict)
    base_dir: Path | None = None

    def origin(self, path: Path_) -> Origin:
        return Origin(self.label, self.lines.get(path), self.base_dir)


@dataclass(frozen=True)
class PluginSpec:
    """A plugin named in the ``plugins`` list: a module name, a .py file or a folder."""

    value: str
    origin: Origin

    @property
    def is_path(self) -> bool:
        """A path if it looks like one or names something beside the config file."""
        looks_like_path = self.value.endswith(".py") or "/" in self.value or self.value[0] == "."
        return looks_like_path or self.path().exists()

    def path(self) -> Path:
        base = self.origin.base_dir or Path.cwd()
        return (base / os.path.expanduser(self.value)).resolve()


@dataclass
class ConfigSources:
    """Merged raw configuration and the origin of every value in it."""

    data: dict[str, Any]
    origins: dict[Path_, Origin]
    labels: list[str]
    defaults: dict[str, Any] = field(default_factory=dict)  # the first layer, as shipped

    def where(self, path: Iterable[str | int]) -> Origin:
        """The origin of ``path`` or of its closest ancestor that has one."""
        parts = tuple(path)
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.origins:
                return self.origins[parts[:end]]
        return Origin(self.labels[-1] if self.labels else "defaults")

    def plugin_specs(self) -> list[PluginSpec]:
        """The ``plugins`` list, checked to be a list of strings."""
        items = self.data.get("plugins") or []
        if not isinstance(items, list):
            raise ConfigError(
                f"{self.where(('plugins',))}: plugins: expected a list of module names or "
                f".py paths, got {items!r}. Fix: write plugins: [my_module, ./my_plugin.py]"
            )
        specs = []
        for index, item in enumerate(items):
            origin = self.where(("plugins", index))
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(
                    f"{origin}: plugins.{index}: {item!r} is not a module name or a path. "
                    "Fix: write a module name (my_pkg.plugin) or a path (./plugin.py)."
                )
            specs.append(PluginSpec(item.strip(), origin))
        return specs


# -- reading files -----------------------------------------------------------------


def file_layer(path: Path, env: Mapping[str, str] | None = None) -> Layer:
    """Read one YAML file into a layer, with line numbers and ``${ENV}`` resolved."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {label!r} does not exist. Fix: check the path given to "
            f"--config or {CONFIG_ENV}; `codedance config show` prints the defaults."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {label!r} cannot be read: {exc}") from None
    data, lines = _parse_yaml(text, label)
    layer = Layer(label, data, lines, path.resolve().parent)
    layer.data = _interpolate(data, (), layer, os.environ if env is None else env)
    return layer


def _parse_yaml(text: str, label: str) -> tuple[dict[str, Any], dict[Path_, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{where}: invalid YAML: {problem}. Fix the syntax there.") from None
    finally:
        loader.dispose()
    if node is None or data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: the top level must be a mapping of sections (sandbox:, model:, ...), "
            f"got a {type(data).__name__}. Fix: start the file with `sandbox:` or another key."
        )
    return data, _line_map(node, ())


def _line_map(node: yaml.Node, path: Path_) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines[child] = key_node.start_mark.line + 1
            lines.update(_line_map(value_node, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            lines.update(_line_map(item, child))
    return lines


def _interpolate(value: Any, path: Path_, layer: Layer, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in strings; ``$$`` is a literal ``$``."""
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), layer, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), layer, env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if env.get(name) or (name in env and default is None):
            return env[name]
        if default is not None:  # as in the shell, ${VAR:-x} also replaces an empty VAR
            return default
        raise ConfigError(
            f"{layer.origin(path)}: {format_path(path)}: environment variable {name!r} "
            f"(from {match.group(0)}) is not set. Fix: export {name}=..., or write "
            f"${{{name}:-default}} to give a default."
        )

    return _VAR.sub(substitute, value)


# -- -o overrides -----------------------------------------------------------------


def override_layer(expression: str) -> Layer:
    """Turn ``-o runtime.max_turns=6`` into a layer; the value is parsed as YAML."""
    key, sep, raw = expression.partition("=")
    parts = key.strip().split(".") if key.strip() else []
    if not sep or not parts or not all(parts):
        raise ConfigError(
            f"-o {expression!r}: expected dotted.key=value. "
            "Fix: e.g. -o runtime.max_turns=6 or -o rewards.0.weight=0.5"
        )
    path: Path_ = tuple(int(p) if p.isdigit() else p for p in parts)
    value: Any = _parse_scalar(raw)
    for part in reversed(path):
        value = {part: value}
    label = f"-o {expression}"
    return Layer(label, value, {}, Path.cwd())


def _parse_scalar(raw: str) -> Any:
    if not raw.strip():
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


# -- merging ---------------------------------------------------------------------


def merge_layers(layers: list[Layer]) -> ConfigSources:
    """Deep-merge layers in order: mappings merge, anything else is replaced."""
    data: dict[str, Any] = {}
    origins: dict[Path_, Origin] = {}
    for layer in layers:
        _merge_into(data, layer.data, (), layer, origins)
    defaults = layers[0].data if layers else {}
    return ConfigSources(data, origins, [layer.label for layer in layers], defaults)


def _merge_into(
    dst: dict[Any, Any] | list[Any],
    src: dict[Any, Any],
    path: Path_,
    layer: Layer,
    origins: dict[Path_, Origin],
) -> None:
    for key, value in src.items():
        child = (*path, key)
        current = _get(dst, key, layer, child)
        if isinstance(value, dict) and _mergeable(current, value):
            _merge_into(current, value, child, layer, origins)
            continue
        for sub in [k for k in origins if k[: len(child)] == child]:
            del origins[sub]
        dst[key] = copy.deepcopy(value)
        _record(value, child, layer, origins)


def _mergeable(current: Any, value: dict[Any, Any]) -> bool:
    """Mappings merge into mappings; ``{index: ...}`` (from ``-o list.0.key=v``) into lists."""
    if isinstance(current, list):
        return all(isinstance(key, int) for key in value)
    return isinstance(current, dict)


def _get(container: dict[Any, Any] | list[Any], key: Any, layer: Layer, path: Path_) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if not isinstance(key, int) or not 0 <= key < len(container):
        raise ConfigError(
            f"{layer.label}: {format_path(path)}: {format_path(path[:-1])} is a list of "
            f"{len(container)} items, so index {key!r} does not exist. Fix: use an index "
            f"below {len(container)}, or replace the whole list, e.g. -o "
            f"'{format_path(path[:-1])}=[...]'."
        )
    return container[key]


def _record(value: Any, path: Path_, layer: Layer, origins: dict[Path_, Origin]) -> None:
    origins[path] = layer.origin(path)
    if isinstance(value, dict):
        for key, item in value.items():
            _record(item, (*path, key), layer, origins)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record(item, (*path, index), layer, origins)


def load_sources(
    config: Path | str | None = None,
    overrides: Iterable[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    defaults: Path = DEFAULT_CONFIG,
) -> ConfigSources:
    """Defaults, then the user file (``config`` or $CODEDANCE_CONFIG), then ``-o``s."""
    environ = os.environ if env is None else env
    layers = [file_layer(defaults, environ)]
    user = config if config is not None else environ.get(CONFIG_ENV) or None
    if user is not None:
        layers.append(file_layer(Path(user).expanduser(), environ))
    layers.extend(override_layer(expression) for expression in overrides)
    return merge_layers(layers)
