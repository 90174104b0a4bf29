"""The registry: which plugin supplied which tool, sandbox, reward, model, ...

A :class:`Registry` wraps one pluggy ``PluginManager``. Plugins are added with
:meth:`Registry.add_plugin` (discovery lives in :mod:`codedance.core.discovery`);
the ``register_<kind>`` hooks run lazily, once, the first time an entry is looked
up. Each plugin's hook runs on its own, so a plugin that raises is reported by
name and the others keep working; a name registered twice stays unusable and
names both plugins.
"""

from __future__ import annotations

import difflib
import inspect
import keyword
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import pluggy

from codedance.core import hookspecs
from codedance.core.errors import (
    CodedanceError,
    DuplicateNameError,
    HookCallError,
    PluginError,
    PluginLoadError,
    PluginLoadWarning,
    UnknownNameError,
)
from codedance.core.hookspecs import KINDS

__all__ = ["KINDS", "Entry", "PluginInfo", "Registry"]


_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from, as ``codedance plugins`` shows it."""

    name: str
    origin: str  # "builtin", "entry point", "registry.yaml", "test", ...
    distribution: str | None = None
    version: str | None = None
    source: str | None = None  # the file the plugin module was loaded from


@dataclass(frozen=True)
class Entry:
    """One registered component: its kind, name, the object and its plugin."""

    kind: str
    name: str
    obj: Any
    plugin: PluginInfo

    @property
    def source(self) -> str | None:
        """The file that defines ``obj`` (or, failing that, the plugin's file)."""
        target = getattr(self.obj, "callback", None) or self.obj  # click commands
        try:
            return inspect.getsourcefile(inspect.unwrap(target)) or self.plugin.source
        except TypeError:
            return self.plugin.source


@dataclass
class _Collected:
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], DuplicateNameError] = field(default_factory=dict)


class Registry:
    """Plugins and the components they registered, looked up by kind and name."""

    def __init__(self, *, trace: TextIO | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, PluginInfo] = {}
        self._problems: list[PluginError] = []
        self._collected = _Collected()
        self._kinds_run: set[str] = set()  # hooks run lazily, one kind at a time
        self._trace = trace  # hooks are called one plugin at a time, so _say traces them
        #: Where problems found from now on go; None warns with :class:`PluginLoadWarning`.
        #: The CLI sets it to print the same ``warning:`` lines as import-time problems.
        self.report: Callable[[PluginError], None] | None = None

    # -- adding plugins ---------------------------------------------------------

    def add_plugin(self, plugin: object, info: PluginInfo) -> bool:
        """Register ``plugin``; on a bad hook implementation record why and skip it."""
        try:
            self._pm.register(plugin, name=info.name)
            self._pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            message = self._load_failure(plugin, info, exc)
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self.record(PluginLoadError(message, plugin=info.name))
            return False
        if not self._pm.get_hookcallers(plugin):
            self._pm.unregister(plugin)
            self.record(PluginLoadError(_no_hooks_message(plugin, info), plugin=info.name))
            return False
        self._plugins[info.name] = info
        self._collected, self._kinds_run = _Collected(), set()
        self._say(f"loaded plugin {info.name!r} ({info.origin}, {info.source})")
        return True

    def _load_failure(self, plugin: object, info: PluginInfo, exc: Exception) -> str:
        where = f"plugin {info.name!r} ({info.source or info.origin})"
        unknown = [c.name for c in self._pm.get_hookcallers(plugin) or [] if c.spec is None]
        if not unknown:
            return f"{where} was not loaded: {exc}"
        name = unknown[0]
        close = difflib.get_close_matches(name, KINDS.values(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (
            f"{where} implements unknown hook {name!r}; {hint}"
            f"known hooks: {', '.join(KINDS.values())}. It was not loaded."
        )

    def record(self, problem: PluginError) -> None:
        """Keep ``problem`` for ``codedance plugins``/``doctor`` and warn about it."""
        self._problems.append(problem)
        self._say(f"problem: {problem}")
        if self.report is not None:
            self.report(problem)
        else:
            warnings.warn(str(problem), PluginLoadWarning, stacklevel=2)

    # -- looking things up -----------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Loaded plugins, in load order (built-ins first)."""
        return list(self._plugins.values())

    @property
    def problems(self) -> list[PluginError]:
        """Every plugin problem: failed imports, bad hooks, raising hooks, clashes.

        Runs every hook not run yet; :meth:`problems_found` does not.
        """
        self._collect()
        return list(self._problems)

    def problems_found(self) -> list[PluginError]:
        """The problems found by the hooks run so far (cheap: runs no hook)."""
        return list(self._problems)

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Registered components, optionally of one kind, in registration order."""
        if kind is not None:
            _check_kind(kind)
        collected = self._collect(kind)
        return [e for e in collected.entries.values() if kind is None or e.kind == kind]

    def names(self, kind: str) -> list[str]:
        """Names registered for ``kind``, sorted."""
        return sorted(e.name for e in self.entries(kind))

    def entry(self, kind: str, name: str) -> Entry:
        """The entry for ``kind``/``name``; raises a clear error if absent or clashing."""
        _check_kind(kind)
        collected = self._collect(kind)
        if (kind, name) in collected.conflicts:
            raise collected.conflicts[kind, name]
        try:
            return collected.entries[kind, name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(kind, name)) from None

    def get(self, kind: str, name: str) -> Any:
        """The registered object for ``kind``/``name`` (see :meth:`entry`)."""
        return self.entry(kind, name).obj

    def hooks_of(self, plugin_name: str) -> list[str]:
        """The hooks a loaded plugin implements."""
        plugin = self._pm.get_plugin(plugin_name)
        return sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(known) if known else "none"
        return (
            f"no {kind} named {name!r} is registered (registered: {listed}).{hint} "
            f"Fix: install or list the plugin that provides it (`codedance plugins` "
            f"shows what is loaded), or choose a registered name."
        )

    # -- running the register_<kind> hooks ---------------------------------------

    def _collect(self, kind: str | None = None) -> _Collected:
        """Run the ``register_<kind>`` hooks not run yet (all kinds when ``kind`` is None).

        One kind at a time, so ``codedance --help`` (commands only) never imports the
        libraries behind tools or models.
        """
        for wanted in [kind] if kind is not None else list(KINDS):
            if wanted not in self._kinds_run:
                self._kinds_run.add(wanted)
                for impl in self._impls_in_load_order(KINDS[wanted]):
                    self._run_impl(wanted, KINDS[wanted], impl, self._collected)
        return self._collected

    def _impls_in_load_order(self, hook: str) -> list[pluggy.HookImpl]:
        order = {name: i for i, name in enumerate(self._plugins)}
        impls = getattr(self._pm.hook, hook).get_hookimpls()
        return sorted(impls, key=lambda impl: order.get(impl.plugin_name, len(order)))

    def _run_impl(self, kind: str, hook: str, impl: pluggy.HookImpl, into: _Collected) -> None:
        info = self._plugins[impl.plugin_name]
        staged: list[Entry] = []
        register = _Registrar(kind, info, staged, self.record)
        self._say(f"calling {hook} of plugin {info.name!r}")
        try:
            impl.function(**dict.fromkeys(impl.argnames, register))
        except Exception as exc:
            message = (
                f"plugin {info.name!r} ({info.source or info.origin}) raised in {hook}: "
                f"{type(exc).__name__}: {exc}. Its {kind} registrations were skipped; "
                f"the other plugins are unaffected. Fix the plugin or uninstall it."
            )
            self.record(HookCallError(message, plugin=info.name))
            return
        for entry in staged:
            self._commit(entry, into)

    def _commit(self, entry: Entry, into: _Collected) -> None:
        key = (entry.kind, entry.name)
        first = into.entries.get(key)
        if first is None and key not in into.conflicts:
            into.entries[key] = entry
            self._say(f"registered {entry.kind} {entry.name!r} from plugin {entry.plugin.name!r}")
            return
        first_name = first.plugin.name if first else into.conflicts[key].first
        clash = DuplicateNameError(entry.kind, entry.name, first_name, entry.plugin.name)
        into.entries.pop(key, None)
        into.conflicts[key] = clash
        self.record(clash)

    def _say(self, line: str) -> None:
        if self._trace is not None:
            self._trace.write(f"codedance trace: {line}\n")

    def __repr__(self) -> str:
        return f"<Registry plugins={len(self._plugins)} problems={len(self._problems)}>"


def _no_hooks_message(plugin: object, info: PluginInfo) -> str:
    where = f"plugin {info.name!r} ({info.source or info.origin})"
    undecorated = sorted(n for n in KINDS.values() if callable(getattr(plugin, n, None)))
    if undecorated:
        return (
            f"{where} defines {', '.join(undecorated)} without @hookimpl, so codedance "
            "cannot see it. Fix: `from codedance import hookimpl` and decorate the hook."
        )
    return (
        f"{where} implements no codedance hook. Fix: add a function such as "
        "`@hookimpl def register_tools(register): ...`, or remove the plugin."
    )


class _Registrar:
    """The ``register`` callback handed to one plugin's ``register_<kind>`` hook."""

    def __init__(
        self,
        kind: str,
        plugin: PluginInfo,
        staged: list[Entry],
        record: Callable[[PluginError], None],
    ) -> None:
        self.kind, self.plugin, self.staged, self.record = kind, plugin, staged, record

    def __call__(self, obj: Any, /, *, name: str | None = None) -> None:
        resolved = name if name is not None else _default_name(obj)
        _VALIDATORS.get(self.kind, _check_plain)(self.kind, obj, resolved, self.plugin.name)
        if self.kind == "tool" and not self._shippable(resolved, obj):
            return
        self.staged.append(Entry(self.kind, resolved, obj, self.plugin))

    def _shippable(self, name: str, tool: Any) -> bool:
        """Whether ``tool`` can run in a sandbox; if not, it is left out with a warning.

        Checked here, when the plugin loads, because a tool that cannot be shipped
        would otherwise make every sandbox session fail (all tools travel together).
        """
        from codedance.core.tool_modules import ToolShippingError, check_tool

        try:
            check_tool(name, tool)
        except ToolShippingError as exc:
            message = (
                f"tool {name!r} of plugin {self.plugin.name!r} was left out (the other tools "
                f"and every run keep working): {exc}"
            )
            self.record(PluginLoadError(message, plugin=self.plugin.name))
            return False
        return True


def _default_name(obj: Any) -> Any:
    own = getattr(obj, "name", None)
    return own if isinstance(own, str) else getattr(obj, "__name__", None)


def _bad_name(kind: str, name: Any, plugin: str, rule: str) -> PluginError:
    return PluginError(
        f"{kind} name {name!r} from plugin {plugin!r} {rule}. "
        f"Fix: pass an explicit name, e.g. register(obj, name='my_{kind}')",
        plugin=plugin,
    )


def _check_plain(kind: str, obj: Any, name: Any, plugin: str) -> None:
    if not isinstance(name, str) or not _PLAIN_NAME.match(name):
        raise _bad_name(
            kind, name, plugin, "must start with a letter and use only A-Z a-z 0-9 _ . -"
        )


def _check_tool(kind: str, obj: Any, name: Any, plugin: str) -> None:
    if not callable(obj):
        raise PluginError(
            f"tool {name!r} from plugin {plugin!r} is a {type(obj).__name__}, not a function. "
            "Fix: register a plain typed function.",
            plugin=plugin,
        )
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise _bad_name(kind, name, plugin, "is not a Python identifier (model code calls it)")


def _check_command(kind: str, obj: Any, name: Any, plugin: str) -> None:
    import click  # only the CLI registers commands; keep click out of library imports

    if not isinstance(obj, click.Command):
        raise PluginError(
            f"command {name!r} from plugin {plugin!r} is a {type(obj).__name__}, not a "
            "click.Command. Fix: decorate it with @click.command().",
            plugin=plugin,
        )
    _check_plain(kind, obj, name, plugin)


def _check_reward(kind: str, obj: Any, name: Any, plugin: str) -> None:
    """A RewardComponent-like class (``score``/``score_group`` and a ``defaults`` mapping)
    or a function whose first parameter takes the trajectory; params are checked later
    against what it declares (:mod:`codedance.core.params`)."""
    _check_plain(kind, obj, name, plugin)
    fix = (
        "Fix: register a codedance.rewards.base.RewardComponent subclass or a function "
        "f(trajectory, **params) -> float."
    )
    if inspect.isclass(obj):
        scores = callable(getattr(obj, "score_group", None)) or callable(
            getattr(obj, "score", None)
        )
        if not scores or not isinstance(getattr(obj, "defaults", {}), Mapping):
            raise PluginError(
                f"reward {name!r} from plugin {plugin!r} is a class without score_group/score "
                f"or with non-mapping defaults. {fix}",
                plugin=plugin,
            )
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    try:
        first = next(iter(inspect.signature(obj).parameters.values()), None)
    except (TypeError, ValueError):
        first = None
    if not callable(obj) or first is None or first.kind not in positional:
        raise PluginError(
            f"reward {name!r} from plugin {plugin!r} ({type(obj).__name__}) does not take a "
            f"trajectory as its first parameter. {fix}",
            plugin=plugin,
        )


_VALIDATORS: dict[str, Callable[[str, Any, Any, str], None]] = {
    "tool": _check_tool,
    "command": _check_command,
    "reward": _check_reward,
}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise CodedanceError(f"unknown kind {kind!r}; the kinds are: {', '.join(KINDS)}")
