"""The codedance command line: plugin commands, config show, doctor, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from codedance import hookimpl
from codedance.core.cli import App, pass_app
from codedance.core.errors import PluginLoadWarning


@click.command("hello")
@click.argument("who", default="world")
@pass_app
def hello_command(app: App, who: str) -> None:
    """Say hello with the configured turn limit."""
    click.echo(f"hello {who}, max_turns={app.config.runtime.max_turns}")


class CommandPlugin:
    @hookimpl
    def register_commands(self, register):
        register(hello_command)


def test_help_lists_builtin_and_plugin_commands(register_plugin, codedance_cli):
    register_plugin(CommandPlugin())
    result = codedance_cli("--help")
    assert result.exit_code == 0
    for name in ("config", "doctor", "plugins", "hello"):
        assert f"  {name} " in result.output


def test_plugin_command_runs_with_the_merged_config(register_plugin, codedance_cli):
    register_plugin(CommandPlugin())
    result = codedance_cli("-o", "runtime.max_turns=6", "hello", "codedance")
    assert result.exit_code == 0, result.output
    assert result.output == "hello codedance, max_turns=6\n"


def test_unknown_command_is_a_usage_error(codedance_cli):
    result = codedance_cli("hullo")
    assert result.exit_code == 2
    assert "No such command 'hullo'" in result.output


def test_plugins_json_lists_components_plugins_and_sources(register_plugin, codedance_cli):
    register_plugin(CommandPlugin(), name="greeter")
    report = json.loads(codedance_cli("plugins", "--json").output)
    rows = {(c["kind"], c["name"]): c for c in report["components"]}
    assert rows["command", "doctor"]["plugin"] == "codedance.plugins.commands"
    assert rows["command", "doctor"]["source"].endswith("commands/doctor.py")
    assert rows["command", "hello"]["plugin"] == "greeter"
    assert rows["command", "hello"]["source"] == __file__
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["greeter"]["hooks"] == ["register_commands"]
    assert report["problems"] == []


def test_plugins_kind_filter(register_plugin, codedance_cli):
    registry = register_plugin(CommandPlugin())
    tools = json.loads(codedance_cli("plugins", "--json", "--kind", "tool").output)["components"]
    assert {c["kind"] for c in tools} <= {"tool"}
    assert sorted(c["name"] for c in tools) == registry.names("tool")
    report = json.loads(codedance_cli("plugins", "--json", "--kind", "command").output)
    assert {c["kind"] for c in report["components"]} == {"command"}
    assert "hello" in {c["name"] for c in report["components"]}


def test_plugins_table_shows_components_and_problems(register_plugin, codedance_cli):
    class Broken:
        @hookimpl
        def register_tools(self, register):
            raise ValueError("bad tool table")

    register_plugin(Broken(), name="broken-tools")
    with pytest.warns(PluginLoadWarning):
        result = codedance_cli("plugins")
    assert result.exit_code == 0
    assert "Registered components" in result.output
    assert "codedance.plugins.commands" in result.output
    assert "problem (broken-tools)" in result.output
    assert "ValueError: bad tool table" in result.output


def test_other_commands_warn_about_plugin_problems_on_stderr(register_plugin, codedance_cli):
    # Hooks run lazily per kind; every command resolves commands, so that hook runs.
    class Broken:
        @hookimpl
        def register_commands(self, register):
            raise KeyError("gamma")

    register_plugin(Broken(), name="bad-command")
    with pytest.warns(PluginLoadWarning):
        result = codedance_cli("config", "show", "--json")
    assert result.exit_code == 0
    assert "warning: plugin 'bad-command'" in result.stderr
    json.loads(result.stdout)


def test_config_show_prints_the_merged_config_with_secrets_masked(codedance_cli, tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("model:\n  api_key: sk-secret\n  name: qwen\n")
    result = codedance_cli("--config", str(user), "-o", "sandbox.timeout_s=30", "config", "show")
    assert result.exit_code == 0, result.output
    assert "timeout_s: 30.0" in result.output
    assert "name: qwen" in result.output
    assert "sk-secret" not in result.output
    assert "api_key: '**********'" in result.output


def test_config_show_origins_name_file_and_line(codedance_cli, tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("runtime:\n  concurrency: 3\n")
    result = codedance_cli("--config", str(user), "config", "show", "--origins")
    assert f"# runtime.concurrency: {user}:2" in result.output


def test_config_errors_exit_1_with_the_message(codedance_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  max_turn: 3\n")
    result = codedance_cli("--config", str(bad), "config", "show")
    assert result.exit_code == 1
    expected = f"Error: invalid configuration (1 problem):\n  {bad}:2: runtime.max_turn"
    assert expected in result.stderr
    assert "Did you mean 'max_turns'?" in result.stderr


def test_doctor_reports_checks_with_fixes(codedance_cli):
    result = codedance_cli("doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {(c["area"], c["name"]): c for c in json.loads(result.output)}
    assert checks["system", "python"]["status"] == "ok"
    assert checks["config", "configuration"]["status"] == "ok"
    for extra in ("tools", "hf", "vllm", "train", "e2b", "docker", "ocr"):
        check = checks["extra", extra]
        assert check["status"] == "ok" or f"pip install 'codedance[{extra}]'" in check["fix"]
    assert checks["system", "bubblewrap"]["status"] in {"ok", "warn"}


def test_doctor_fails_on_invalid_config_and_strict_fails_on_warnings(codedance_cli):
    assert codedance_cli("-o", "runtime.max_turns=0", "doctor", "--json").exit_code == 1
    unregistered = ("-o", "sandbox.backend=no-such-sandbox")  # a warning, not a failure
    assert codedance_cli(*unregistered, "doctor", "--json").exit_code == 0
    assert codedance_cli(*unregistered, "doctor", "--strict", "--json").exit_code == 1


def test_doctor_asks_registered_backends_about_themselves(register_plugin, codedance_cli):
    class Remote:
        name = "remote"

        @staticmethod
        def doctor() -> str | None:
            return "REMOTE_TOKEN is not set"

    class Plugin:
        @hookimpl
        def register_sandboxes(self, register):
            register(Remote)

    register_plugin(Plugin())
    checks = json.loads(codedance_cli("doctor", "--json").output)
    (mine,) = [c for c in checks if c["name"] == "sandbox remote"]
    assert (mine["status"], mine["detail"]) == ("warn", "REMOTE_TOKEN is not set")


def test_duplicate_command_name_is_a_usage_error(register_plugin, codedance_cli):
    @click.command("plugins")
    def shadow() -> None:
        """Pretend to be the plugins command."""

    class Shadow:
        @hookimpl
        def register_commands(self, register):
            register(shadow)

    register_plugin(Shadow(), name="shadow")
    with pytest.warns(PluginLoadWarning):
        result = codedance_cli("plugins")
    assert result.exit_code == 2
    assert "'codedance.plugins.commands' and 'shadow'" in result.output


def test_console_entry_point_runs_as_a_real_process():
    out = subprocess.run(
        [sys.executable, "-m", "codedance", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "codedance, version 0.1.0"


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedance", *args], capture_output=True, text=True
    )


def test_real_process_reports_config_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  endpoint: ${NOT_SET_ANYWHERE}\n")
    shown = _run_cli("--config", str(bad), "config", "show")
    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    assert f"Error: {bad}:2: model.endpoint: environment variable 'NOT_SET_ANYWHERE'" in (
        shown.stderr
    )


def test_broken_config_still_allows_help_plugins_and_doctor(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("plugins: [./x.py\n")
    helped = _run_cli("--config", str(bad), "--help")
    assert helped.returncode == 0
    assert "  doctor " in helped.stdout
    assert "invalid YAML" in helped.stderr
    listed = _run_cli("--config", str(bad), "plugins", "--json")
    assert listed.returncode == 0
    assert "plugins listed in the config were not loaded" in listed.stderr
    doctor = _run_cli("--config", str(bad), "doctor", "--json")
    assert doctor.returncode == 1
    (config_check,) = [c for c in json.loads(doctor.stdout) if c["name"] == "configuration"]
    assert config_check["status"] == "fail"
    assert "invalid YAML" in config_check["detail"]


def test_doctor_describes_the_local_sandbox_isolation(codedance_cli):
    import shutil

    checks = json.loads(codedance_cli("doctor", "--json").output)
    (local,) = [c for c in checks if c["name"] == "sandbox local"]
    if shutil.which("bwrap"):
        assert local["status"] == "ok"
        assert "per-session pid/net/ipc/mount namespaces" in local["detail"]
    else:
        assert local["status"] == "warn"
        assert "apt-get install bubblewrap" in local["detail"]
