"""The ``codedance`` command line: a click group whose commands are all plugins.

The group itself only owns the global options (``--config``, ``-o``). Every
subcommand, built-in ones included, comes from a ``register_commands`` hook, so
third-party commands sit beside ``plugins``, ``config`` and ``doctor`` as peers.
Configuration, registry and validated config are built lazily, once per call.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Callable
from functools import cached_property, update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from codedance import __version__
from codedance.core.errors import CodedanceError, DuplicateNameError, PluginLoadWarning

if TYPE_CHECKING:
    from codedance.core.config import Config
    from codedance.core.registry import Registry
    from codedance.core.sources import ConfigSources

__all__ = ["App", "cli", "get_app", "main", "pass_app"]

F = TypeVar("F", bound=Callable[..., Any])
_APP_KEY = "codedance.app"
#: Commands that render plugin problems themselves instead of a warning preamble.
_SHOWS_PROBLEMS = {"plugins", "doctor"}


class App:
    """What one CLI invocation works with: sources, registry and validated config.

    A broken configuration does not stop commands that can work without it
    (``--help``, ``plugins``, ``doctor``): the registry then loads without the
    configured plugins and :attr:`config_error` says why.
    """

    def __init__(self, config_path: str | None, overrides: tuple[str, ...]) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self.config_error: CodedanceError | None = None
        #: Set for commands that list problems themselves (``plugins``, ``doctor``).
        self.quiet_problems = False

    @cached_property
    def sources(self) -> ConfigSources:
        from codedance.core.sources import load_sources

        return load_sources(self.config_path, self.overrides)

    @cached_property
    def registry(self) -> Registry:
        from codedance.core.discovery import load_registry, pinned_registry

        pinned = pinned_registry()
        if pinned is not None:
            return pinned
        try:
            specs = self.sources.plugin_specs()
        except CodedanceError as exc:
            self.config_error, specs = exc, []
        with warnings.catch_warnings():
            # The CLI prints problems itself, once, without Python's warning format.
            warnings.simplefilter("ignore", PluginLoadWarning)
            registry = load_registry(specs)
            registry.entries("command")  # the CLI's own hooks, while warnings are silenced
        # Hooks run later (tools when a sandbox opens, ...) report as `warning:` lines too.
        registry.report = self._report_problem
        return registry

    def _report_problem(self, problem: CodedanceError) -> None:
        if not self.quiet_problems:
            click.secho(f"warning: {problem}", fg="yellow", err=True)

    @cached_property
    def config(self) -> Config:
        from codedance.core.config import validate_sources

        return validate_sources(self.sources)

    def config_warning(self) -> str | None:
        """A one-line warning when the configuration could not be read at all."""
        if self.config_error is None:
            return None
        return f"warning: {self.config_error} (plugins listed in the config were not loaded)"


def get_app(ctx: click.Context | None = None) -> App:
    """The :class:`App` of the running invocation (created on first use)."""
    root = (ctx or click.get_current_context()).find_root()
    if _APP_KEY not in root.meta:
        params = root.params
        root.meta[_APP_KEY] = App(params.get("config_path"), tuple(params.get("overrides", ())))
    app: App = root.meta[_APP_KEY]
    return app


def pass_app(function: F) -> F:
    """Decorator for plugin commands: pass the :class:`App` as the first argument."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(get_app(), *args, **kwargs)

    return update_wrapper(wrapper, function)  # type: ignore[return-value]


class PluginGroup(click.Group):
    """A click group that lists and resolves its commands through the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        app = get_app(ctx)
        names = app.registry.names("command")
        if app.config_warning():
            click.secho(app.config_warning(), fg="yellow", err=True)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from codedance.core.errors import UnknownNameError

        try:
            command: click.Command = get_app(ctx).registry.get("command", cmd_name)
        except UnknownNameError:
            return None
        except DuplicateNameError as exc:
            raise click.UsageError(str(exc), ctx) from None
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except CodedanceError as exc:
            _fail(exc)


def _fail(exc: CodedanceError) -> NoReturn:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(1)


@click.group(
    cls=PluginGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    is_eager=True,
    envvar="CODEDANCE_CONFIG",
    help="A YAML file merged over the default registry.yaml [env: CODEDANCE_CONFIG].",
)
@click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    is_eager=True,
    help="Override one setting, e.g. -o runtime.max_turns=6 (repeatable; YAML values).",
)
@click.version_option(__version__, prog_name="codedance")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]) -> None:
    """codedance: executable visual reasoning (model writes code, sandbox runs it).

    Every command below is a plugin; `codedance plugins` shows who provides what.
    """
    app = get_app(ctx)
    if ctx.invoked_subcommand in _SHOWS_PROBLEMS:
        app.quiet_problems = True
        return
    warnings_ = [f"warning: {problem}" for problem in app.registry.problems_found()]
    if app.config_warning() and ctx.invoked_subcommand != "config":
        warnings_.append(str(app.config_warning()))
    for line in warnings_:
        click.secho(line, fg="yellow", err=True)


def invocation() -> str:
    """How to start this same codedance from a new shell in the current folder.

    ``codedance`` when that name on PATH is this install; otherwise the path of the
    running script (``make run`` starts ``.venv/bin/codedance``, which a new shell
    does not find by name), or ``<python> -m codedance``. Used in next-step hints.
    """
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "codedance" and script.is_file():
        found = shutil.which("codedance")
        if found and Path(found).resolve() == script.resolve():
            return "codedance"
        return _shortest(script)
    return f"{_shortest(Path(sys.executable))} -m codedance"


def _shortest(path: Path) -> str:
    """``path`` relative to the current folder when inside it (``./`` prefixed), else absolute."""
    absolute = path.absolute()
    try:
        return "./" + absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(absolute)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="codedance")
