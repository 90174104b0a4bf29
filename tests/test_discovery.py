"""Discovery: built-ins, installed distributions, and registry.yaml's plugin list."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codedance.core.discovery import BUILTIN_PLUGINS, load_registry
from codedance.core.errors import PluginLoadError, PluginLoadWarning
from codedance.core.sources import load_sources

NO_INSTALLED = {"CODEDANCE_LOAD_PLUGINS": ""}

#: A plugin registering a tool from its own module (tool modules must not import codedance).
TOOL_PLUGIN = """
    from codedance import hookimpl
    from {package}_{name}_tools import {name}

    @hookimpl
    def register_tools(register):
        register({name})
"""

TOOL_MODULE = """
    def {name}(text: str) -> str:
        '''Echo the text.'''
        return text
"""


def _tool_plugin(write_plugin, path: str, name: str, relative: bool = True) -> Path:
    """Write the plugin file ``path`` and, beside it, ``_<name>_tools.py`` with the tool.

    A plugin file listed in the config imports its sibling relatively; a module on
    sys.path imports it absolutely.
    """
    tools = Path(path).parent / f"_{name}_tools.py"
    write_plugin(str(tools), TOOL_MODULE.format(name=name))
    return write_plugin(path, TOOL_PLUGIN.format(package="." if relative else "", name=name))


def _names_not_builtin(registry, kind: str) -> list[str]:
    """Names of ``kind`` registered by plugins other than the built-ins, sorted."""
    return sorted(e.name for e in registry.entries(kind) if e.plugin.origin != "builtin")


def _registry_from(config: Path, env: dict[str, str] | None = None):
    specs = load_sources(config, env={}).plugin_specs()
    return load_registry(specs, env=NO_INSTALLED if env is None else env)


def test_builtins_load_through_the_public_hooks():
    registry = load_registry(env=NO_INSTALLED)
    assert [p.name for p in registry.plugins] == list(BUILTIN_PLUGINS)
    assert registry.plugins[0].origin == "builtin"
    assert registry.hooks_of("codedance.plugins.commands") == ["register_commands"]


def test_py_file_listed_in_config_is_loaded_relative_to_the_config(tmp_path, write_plugin):
    _tool_plugin(write_plugin, "plugins/echo.py", "echo")
    config = tmp_path / "my.yaml"
    config.write_text("plugins:\n  - plugins/echo.py\n")
    registry = _registry_from(config)
    entry = registry.entry("tool", "echo")
    assert entry.plugin.name == "plugins/echo.py"
    assert entry.plugin.origin == f"{config}:2"
    assert entry.source == str(tmp_path / "plugins" / "_echo_tools.py")
    assert entry.plugin.source == str(tmp_path / "plugins" / "echo.py")


def test_folder_listed_in_config_loads_each_public_py_file(tmp_path, write_plugin):
    _tool_plugin(write_plugin, "local/a.py", "alpha")
    _tool_plugin(write_plugin, "local/b.py", "beta")
    write_plugin("local/_helpers.py", "raise RuntimeError('must not be imported')")
    config = tmp_path / "c.yaml"
    config.write_text("plugins: [local]\n")
    assert _names_not_builtin(_registry_from(config), "tool") == ["alpha", "beta"]


def test_module_name_listed_in_config_is_imported(tmp_path, write_plugin, monkeypatch):
    _tool_plugin(write_plugin, "my_vision_tools.py", "squint", relative=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text("plugins: [my_vision_tools]\n")
    assert _registry_from(config).entry("tool", "squint").plugin.name == "my_vision_tools"


def test_plugin_raising_at_import_is_reported_and_the_rest_load(tmp_path, write_plugin):
    write_plugin("broken.py", "import numpy_that_is_not_there\n")
    write_plugin("exits.py", "raise SystemExit(3)\n")
    _tool_plugin(write_plugin, "fine.py", "fine")
    config = tmp_path / "c.yaml"
    config.write_text("plugins: [broken.py, exits.py, fine.py]\n")
    with pytest.warns(PluginLoadWarning):
        registry = _registry_from(config)
    assert _names_not_builtin(registry, "tool") == ["fine"]
    broken, exits = registry.problems
    assert isinstance(broken, PluginLoadError)
    assert broken.plugin == "broken.py"
    assert "ModuleNotFoundError: No module named 'numpy_that_is_not_there'" in str(broken)
    assert "SystemExit: 3" in str(exits)


def test_missing_plugin_path_names_the_resolved_path(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("plugins: [./nowhere.py]\n")
    with pytest.warns(PluginLoadWarning):
        registry = _registry_from(config)
    (problem,) = registry.problems
    assert f"{config}:1: plugins: './nowhere.py' resolves to {tmp_path / 'nowhere.py'}" in str(
        problem
    )


def _install_fake_distribution(root: Path, module_source: str, name: str = "codedance-fake"):
    """A real (if tiny) installed distribution: a dist-info folder on sys.path."""
    module = f"{name.replace('-', '_')}_plugin"
    dist_info = root / f"{name.replace('-', '_')}-1.2.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    (dist_info / "entry_points.txt").write_text(f"[codedance]\nfake = {module}\n")
    (root / f"{module}.py").write_text(module_source)
    importlib.invalidate_caches()


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    import textwrap

    site = tmp_path / "site"
    plugin = TOOL_PLUGIN.format(package="", name="fake_tool")
    _install_fake_distribution(site, textwrap.dedent(plugin))
    (site / "_fake_tool_tools.py").write_text(textwrap.dedent(TOOL_MODULE.format(name="fake_tool")))
    monkeypatch.syspath_prepend(str(site))
    return site


def test_installed_distribution_is_discovered_with_name_and_version(fake_dist):
    registry = load_registry(env={})
    entry = registry.entry("tool", "fake_tool")
    assert (entry.plugin.name, entry.plugin.origin) == ("fake", "entry point")
    assert (entry.plugin.distribution, entry.plugin.version) == ("codedance-fake", "1.2")
    assert entry.source == str(fake_dist / "_fake_tool_tools.py")
    assert entry.plugin.source == str(fake_dist / "codedance_fake_plugin.py")


@pytest.mark.parametrize("value", ["codedance-fake", "codedance_fake", "fake", " fake ,other-x"])
def test_load_plugins_env_selects_by_distribution_or_entry_point_name(fake_dist, value):
    env = {"CODEDANCE_LOAD_PLUGINS": value}
    if "other" in value:
        with pytest.warns(PluginLoadWarning, match="names 'other-x'"):
            registry = load_registry(env=env)
    else:
        registry = load_registry(env=env)
    assert _names_not_builtin(registry, "tool") == ["fake_tool"]


def test_empty_load_plugins_env_loads_no_installed_plugin(fake_dist):
    registry = load_registry(env={"CODEDANCE_LOAD_PLUGINS": ""})
    assert "fake_tool" not in registry.names("tool")
    assert _names_not_builtin(registry, "tool") == []
    assert {p.origin for p in registry.plugins} == {"builtin"}


def test_load_plugins_env_naming_nothing_installed_is_reported(fake_dist):
    with pytest.warns(PluginLoadWarning):
        registry = load_registry(env={"CODEDANCE_LOAD_PLUGINS": "codedance-typo"})
    (problem,) = registry.problems
    assert "CODEDANCE_LOAD_PLUGINS names 'codedance-typo'" in str(problem)
    assert "installed: codedance-fake" in str(problem)


def test_distribution_failing_at_import_is_reported_with_its_version(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_fake_distribution(site, "raise ImportError('needs torch')\n", name="codedance-heavy")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning):
        registry = load_registry(env={})
    (problem,) = registry.problems
    assert "plugin 'fake' (distribution codedance-heavy 1.2) failed to import" in str(problem)
    assert "ImportError: needs torch" in str(problem)
    builtin_commands = load_registry(env=NO_INSTALLED).names("command")
    assert {"bench", "config", "doctor", "exec", "plugins"} <= set(builtin_commands)
    assert registry.names("command") == builtin_commands


def test_trace_env_writes_to_stderr(fake_dist, capsys):
    load_registry(env={"CODEDANCE_TRACE_PLUGINS": "1"}).entries()
    err = capsys.readouterr().err
    assert "codedance trace: loaded plugin 'fake' (entry point" in err
    assert "codedance trace: registered tool 'fake_tool' from plugin 'fake'" in err


#: The layout the README once showed: the tool in the same file as its @hookimpl.
TOOL_BESIDE_HOOK = """
    from codedance import hookimpl


    def count_red_pixels(path: str) -> int:
        '''Count pixels whose red channel dominates.'''
        return 0


    @hookimpl
    def register_tools(register):
        register(count_red_pixels)
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    return subprocess.run(
        [sys.executable, "-m", "codedance", "--config", "c.yaml", *args],
        cwd=cwd,
        env={**clean, **NO_INSTALLED},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tool_beside_its_hookimpl_is_left_out_naming_the_file(tmp_path, write_plugin):
    """The plugin loads; only that tool is refused, with its file:line and the fix."""
    boxes = write_plugin("plugs/boxes.py", TOOL_BESIDE_HOOK)
    _tool_plugin(write_plugin, "plugs/good.py", "shout")
    config = tmp_path / "c.yaml"
    config.write_text("plugins: [plugs]\n")
    with pytest.warns(PluginLoadWarning, match="count_red_pixels") as caught:
        names = _names_not_builtin(_registry_from(config), "tool")
    assert names == ["shout"]
    (message,) = [str(w.message) for w in caught]
    assert f"{boxes}:2: this tool module imports 'codedance'" in message
    assert "plugin 'plugs/boxes.py' was left out" in message


@pytest.mark.slow
def test_every_run_keeps_working_and_the_cli_says_why_the_tool_is_missing(tmp_path, write_plugin):
    boxes = write_plugin("plugs/boxes.py", TOOL_BESIDE_HOOK)
    _tool_plugin(write_plugin, "plugs/good.py", "shout")
    (tmp_path / "c.yaml").write_text("plugins: [plugs]\n")
    (tmp_path / "code.py").write_text("print(1, shout('x'))\n")
    ran = _cli("exec", "code.py", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "1 x\n"
    (warning,) = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert f"{boxes}:2: this tool module imports 'codedance'" in warning
    assert "Traceback" not in ran.stderr
    assert "PluginLoadWarning" not in ran.stderr
    listed = _cli("plugins", cwd=tmp_path)
    assert "problem (plugs/boxes.py)" in listed.stdout
    assert "warning:" not in listed.stderr  # plugins lists problems itself, once
    doctor = _cli("doctor", cwd=tmp_path)
    assert "count_red_pixels" in doctor.stdout
