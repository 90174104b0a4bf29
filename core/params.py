"""Checking a reward component's ``params`` (from registry.yaml) before anything runs.

A reward is registered as a :class:`~codedance.rewards.base.RewardComponent` subclass,
whose ``defaults`` name its parameters (the default's type is the expected type), or
as a function ``f(trajectory, **params)``, whose signature does (annotations first,
then the default's type). :func:`check_params` compares configured params with that
and returns one message per problem, so ``limit: "ten"`` is reported with its key
(and, through the caller, its file:line) instead of a traceback mid-run. It lives in
core, duck-typed, so config loading and ``codedance doctor`` can use it without
importing the rewards package.
"""

from __future__ import annotations

import builtins
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "check_params", "reward_params"]

_REQUIRED = inspect.Parameter.empty
_SIMPLE = (bool, int, float, str, list, tuple, dict)


@dataclass(frozen=True)
class Param:
    """One parameter a component takes: its default (``_REQUIRED`` if none) and types."""

    name: str
    default: Any
    types: tuple[type, ...] | None  # None: anything goes

    def describe(self) -> str:
        kinds = _names(self.types) if self.types else "any"
        tail = "" if self.default is _REQUIRED else f" = {self.default!r}"
        return f"{self.name}: {kinds}{tail}"


def reward_params(obj: Any) -> dict[str, Param] | None:
    """The parameters of a registered reward, or None when they cannot be read."""
    if inspect.isclass(obj):
        defaults = getattr(obj, "defaults", None)
        if not isinstance(defaults, Mapping):
            return None
        return {str(k): Param(str(k), v, _types_of_default(v)) for k, v in defaults.items()}
    if callable(obj):
        return _function_params(obj)
    return None


def check_params(name: str, obj: Any, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """``(param or None, message)`` per problem with ``params`` for reward ``name``."""
    known = reward_params(obj)
    if known is None:
        return []
    takes = ", ".join(p.describe() for p in known.values()) or "no parameters"
    problems: list[tuple[str | None, str]] = []
    for key, value in params.items():
        param = known.get(key)
        if param is None:
            problems.append((key, f"reward {name!r} has no parameter {key!r}; it takes {takes}"))
        elif param.types is not None and not _matches(value, param.types):
            wanted = f"reward {name!r} takes {param.describe()}"
            problems.append((key, f"{value!r} is not {_a(param.types)} ({wanted})"))
    for param in known.values():
        if param.default is _REQUIRED and param.name not in params:
            problems.append(
                (None, f"reward {name!r} needs params.{param.name} ({param.describe()})")
            )
    return problems


def _function_params(function: Callable[..., Any]) -> dict[str, Param] | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    rest = list(signature.parameters.values())[1:]  # the first is the trajectory
    if any(p.kind is p.VAR_KEYWORD for p in rest):
        return None  # **params: anything goes
    globalns = getattr(function, "__globals__", {})
    found = {}
    for p in rest:
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
            continue
        kinds = _types_of_annotation(p.annotation, globalns)
        if kinds is None and p.default is not _REQUIRED:
            kinds = _types_of_default(p.default)
        found[p.name] = Param(p.name, p.default, kinds)
    return found


def _types_of_default(value: Any) -> tuple[type, ...] | None:
    if isinstance(value, bool):
        return (bool,)
    if isinstance(value, (int, float)):
        return (int, float)
    return (type(value),) if isinstance(value, _SIMPLE) else None


def _types_of_annotation(annotation: Any, globalns: Mapping[str, Any]) -> tuple[type, ...] | None:
    """Simple types named by an annotation (a string under ``from __future__``), or None."""
    if annotation is _REQUIRED:
        return None
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, {**vars(builtins), **globalns})  # the author's own
        except Exception:
            return None  # e.g. a name imported only under TYPE_CHECKING
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_types_of_annotation(a, globalns) for a in args]
        if any(p is None for p in parts if p != (type(None),)):
            return None
        return tuple(t for p in parts if p for t in p)
    if annotation is type(None) or annotation is None:
        return (type(None),)
    origin = typing.get_origin(annotation) or annotation
    if origin is float:
        return (int, float)
    return (origin,) if origin in _SIMPLE else None


def _matches(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False  # True is an int to Python, not to a config reader
    return isinstance(value, kinds)


def _names(kinds: tuple[type, ...]) -> str:
    names = [t.__name__ for t in kinds]
    if {"int", "float"} <= set(names):
        names = ["number", *(n for n in names if n not in ("int", "float"))]
    return " | ".join("None" if n == "NoneType" else n for n in names)


def _a(kinds: tuple[type, ...]) -> str:
    text = _names(tuple(t for t in kinds if t is not type(None))).replace(" | ", " or ")
    return f"{'an' if text[0] in 'aeiou' else 'a'} {text}" + (
        " (or null)" if type(None) in kinds else ""
    )
