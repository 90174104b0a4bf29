"""The one exception hierarchy of codedance.

Every error codedance raises on purpose is a :class:`CodedanceError`. Messages name
what failed, the offending value and the fix (the key in ``registry.yaml``, the
extra to install, the command to run). Exceptions never log; callers decide.

::

    CodedanceError
    ├── ConfigError              registry.yaml, --config or -o is wrong
    ├── PluginError              a plugin could not be loaded or used
    │   ├── PluginLoadError      import failed, unknown hook, bad hook signature
    │   ├── HookCallError        a plugin's hook implementation raised
    │   └── DuplicateNameError   two plugins registered the same name
    ├── UnknownNameError         nothing registered under the requested name
    └── MissingDependencyError   an optional extra is not installed
"""

from __future__ import annotations

__all__ = [
    "CodedanceError",
    "ConfigError",
    "DuplicateNameError",
    "HookCallError",
    "MissingDependencyError",
    "PluginError",
    "PluginLoadError",
    "PluginLoadWarning",
    "UnknownNameError",
]


class CodedanceError(Exception):
    """Base class of every error codedance raises on purpose."""


class ConfigError(CodedanceError):
    """The configuration (registry.yaml, --config, -o, ${ENV}) is invalid."""


class PluginError(CodedanceError):
    """A plugin could not be loaded or one of its registrations cannot be used.

    ``plugin`` is the name of the plugin at fault, as ``codedance plugins`` lists it.
    """

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginLoadError(PluginError):
    """A plugin failed to import, or implements a hook that does not exist."""


class HookCallError(PluginError):
    """A plugin's hook implementation raised; its registrations were discarded."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind.

    The name stays unusable until one of the two plugins is removed, so that the
    choice between them is never made silently.
    """

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        message = (
            f"{kind} {name!r} is registered by two plugins: {first!r} and {second!r}. "
            f"Fix: uninstall or unlist one of them, or limit installed plugins with "
            f"CODEDANCE_LOAD_PLUGINS."
        )
        super().__init__(message, plugin=second)
        self.kind, self.name, self.first, self.second = kind, name, first, second


class UnknownNameError(CodedanceError, LookupError):
    """Nothing is registered under the requested kind and name."""


class MissingDependencyError(CodedanceError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    @classmethod
    def for_extra(cls, module: str, extra: str, feature: str) -> MissingDependencyError:
        """Build the standard message: what needs ``module`` and how to get it."""
        return cls(
            f"{feature} needs the Python module {module!r}, which is not installed. "
            f"Fix: pip install 'codedance[{extra}]'"
        )


class PluginLoadWarning(UserWarning):
    """Emitted when a plugin problem is recorded, so library users see it too."""
