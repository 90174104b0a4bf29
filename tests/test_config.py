"""registry.yaml, --config, -o and ${ENV}: valid input merges, bad input names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance.core.config import Config, check_names, load_config, validate_sources
from codedance.core.errors import ConfigError
from codedance.core.registry import KINDS
from codedance.core.sources import DEFAULT_CONFIG, load_sources, override_layer

ENV = {"HOME": "/nonexistent"}


def test_shipped_registry_yaml_is_valid_and_documents_the_paper_defaults():
    config = load_config(env=ENV)
    assert config.sandbox.backend == "local"
    assert config.sandbox.timeout_s == 15
    assert config.runtime.max_turns == 10
    assert [r.name for r in config.rewards] == ["accuracy", "format", "bat"]
    assert config.rewards[2].params == {
        "gamma": 4.0,
        "delta": 0.2,
        "turn_penalty": -0.5,
        "beta": 0.2,
    }
    assert config.model.endpoint == "http://127.0.0.1:8000/v1"
    assert config.model.api_key is None


def test_shipped_registry_yaml_sets_every_key_of_the_schema():
    """A new config key must also appear (documented) in the shipped registry.yaml."""
    data = load_sources(env=ENV).data
    assert set(data) == set(Config.model_fields)
    for section in ("sandbox", "model", "protocol", "tools", "runtime"):
        assert set(data[section]) == set(Config.model_fields[section].annotation.model_fields)


def test_user_file_merges_over_defaults(codedance_config):
    config = codedance_config("sandbox:\n  timeout_s: 30\n  on_error: rollback\n")
    assert config.sandbox.timeout_s == 30
    assert config.sandbox.on_error == "rollback"
    assert config.sandbox.memory_mb == 4096  # untouched default survives the merge


def test_lists_are_replaced_not_merged(codedance_config):
    config = codedance_config("rewards:\n  - name: accuracy\n")
    assert [r.name for r in config.rewards] == ["accuracy"]


def test_overrides_parse_yaml_values_and_win_over_files(codedance_config):
    config = codedance_config(
        "runtime: {max_turns: 3}",
        "runtime.max_turns=6",
        "tools.enabled=[crop, 'chart_*']",
        "sandbox.env=[HF_TOKEN]",
    )
    assert config.runtime.max_turns == 6
    assert config.tools.enabled == ["crop", "chart_*"]
    assert config.sandbox.env == ["HF_TOKEN"]


def test_override_can_index_into_a_list(codedance_config):
    config = codedance_config("", "rewards.2.params.gamma=2", "rewards.0.weight=0.5")
    assert config.rewards[2].params["gamma"] == 2
    assert config.rewards[2].params["delta"] == 0.2
    assert config.rewards[0].weight == 0.5


def test_override_index_out_of_range_names_the_list_length(codedance_config):
    with pytest.raises(ConfigError, match=r"-o rewards.7.weight=1: .*list of 3 items"):
        codedance_config("", "rewards.7.weight=1")


@pytest.mark.parametrize("expression", ["runtime.max_turns", "=3", "a..b=1"])
def test_malformed_override_says_the_expected_form(expression):
    with pytest.raises(ConfigError, match=r"expected dotted.key=value.*-o runtime.max_turns=6"):
        override_layer(expression)


def test_env_interpolation_with_default_and_escape(codedance_config):
    config = codedance_config(
        "model:\n  name: ${MODEL_ID}\n  endpoint: ${ENDPOINT:-http://localhost:9/v1}\n"
        "protocol:\n  options: {price: $$5}\n",
        env={"MODEL_ID": "qwen-vl"},
    )
    assert config.model.name == "qwen-vl"
    assert config.model.endpoint == "http://localhost:9/v1"
    assert config.protocol.options == {"price": "$5"}


def test_default_also_replaces_an_empty_variable_as_in_the_shell(codedance_config):
    config = codedance_config(
        "model:\n  name: ${MODEL_ID:-qwen}\n  options: {k: '${EMPTY}'}\n",
        env={"MODEL_ID": "", "EMPTY": ""},
    )
    assert config.model.name == "qwen"
    assert config.model.options == {"k": ""}


def test_missing_env_var_names_file_line_key_and_fix(codedance_config, tmp_path):
    with pytest.raises(ConfigError) as info:
        codedance_config("model:\n  api_key: ${SECRET_KEY}\n", env={})
    message = str(info.value)
    assert f"{tmp_path / 'config.yaml'}:2: model.api_key" in message
    assert "'SECRET_KEY'" in message
    assert "export SECRET_KEY=" in message
    assert "${SECRET_KEY:-default}" in message


def test_unknown_key_names_file_line_allowed_keys_and_suggestion(codedance_config, tmp_path):
    with pytest.raises(ConfigError) as info:
        codedance_config("sandbox:\n  backend: local\n  timout_s: 3\n")
    message = str(info.value)
    assert f"{tmp_path / 'config.yaml'}:3: sandbox.timout_s: unknown key 'timout_s'" in message
    assert "Did you mean 'timeout_s'?" in message
    assert "Allowed keys here: " in message
    assert "backend, cpu_time_s," in message


def test_unknown_top_level_section_is_reported(codedance_config):
    with pytest.raises(ConfigError, match=r"unknown key 'sandbx'. Did you mean 'sandbox'\?"):
        codedance_config("sandbx: {}\n")


def test_wrong_type_names_value_and_default(codedance_config):
    with pytest.raises(ConfigError) as info:
        codedance_config("runtime:\n  max_turns: many\n")
    message = str(info.value)
    assert ":2: runtime.max_turns: Input should be a valid integer" in message
    assert "(got 'many')" in message
    assert "drop it to keep the shipped value 10" in message


def test_fix_names_the_builtin_default_when_registry_yaml_does_not_set_the_key(tmp_path):
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text("runtime: {}\n")
    sources = load_sources(overrides=["runtime.max_turns=zero"], env=ENV, defaults=shipped)
    with pytest.raises(ConfigError, match="the built-in default is 10"):
        validate_sources(sources)


def test_bad_choice_lists_allowed_values(codedance_config):
    expected = r"on_error: Input should be 'keep', 'rollback' or 'reset'"
    with pytest.raises(ConfigError, match=expected):
        codedance_config("sandbox: {on_error: undo}")


def test_bad_override_value_is_attributed_to_the_override(codedance_config):
    expected = r"-o runtime.concurrency=0: runtime.concurrency: .*greater"
    with pytest.raises(ConfigError, match=expected):
        codedance_config("", "runtime.concurrency=0")


def test_every_problem_is_listed_at_once(codedance_config):
    with pytest.raises(ConfigError, match=r"invalid configuration \(2 problems\)"):
        codedance_config("runtime: {max_turns: 0}\nmodel: {top_p: 2}\n")


def test_invalid_env_var_names_in_sandbox_env(codedance_config):
    with pytest.raises(ConfigError, match=r"sandbox.env: .*'MY-KEY'.* not environment variable"):
        codedance_config("sandbox: {env: [MY-KEY]}")


def test_endpoint_must_be_http_url(codedance_config):
    with pytest.raises(ConfigError, match=r"model.endpoint: .*http:// or https:// URL"):
        codedance_config("model: {endpoint: localhost:8000}")


def test_invalid_yaml_names_line_and_column(codedance_config, tmp_path):
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'config.yaml'}:3:\d+: invalid YAML"):
        codedance_config("sandbox:\n  backend: local\n   timeout_s: 3\n")


def test_top_level_must_be_a_mapping(codedance_config):
    with pytest.raises(ConfigError, match=r"top level must be a mapping .* got a list"):
        codedance_config("- sandbox\n")


def test_missing_config_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist. Fix: check the path given to --config"):
        load_config(tmp_path / "nope.yaml", env=ENV)


def test_config_file_from_environment_variable(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("runtime: {concurrency: 2}\n")
    config = load_config(env={"CODEDANCE_CONFIG": str(path)})
    assert config.runtime.concurrency == 2
    assert str(config.where("runtime", "concurrency")) == f"{path}:1"


def test_empty_user_file_means_defaults(codedance_config):
    assert codedance_config("").sandbox.backend == "local"


def test_origins_point_at_the_layer_that_set_each_value(codedance_config, tmp_path):
    config = codedance_config("sandbox:\n  timeout_s: 5\n", "runtime.max_turns=4")
    assert str(config.where("sandbox", "timeout_s")) == f"{tmp_path / 'config.yaml'}:2"
    assert str(config.where("runtime", "max_turns")) == "-o runtime.max_turns=4"
    assert str(config.where("sandbox", "memory_mb")).startswith(f"{DEFAULT_CONFIG}:")


def test_public_dict_masks_secrets(codedance_config):
    config = codedance_config("model: {api_key: sk-live-123}")
    assert config.model.api_key is not None
    assert config.model.api_key.get_secret_value() == "sk-live-123"
    assert "sk-live-123" not in str(config.public_dict())


def test_plugins_list_must_hold_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("plugins:\n  - 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: plugins.0: 3 is not a module name"):
        load_sources(path, env=ENV).plugin_specs()


def test_relative_plugin_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "c.yaml"
    path.write_text("plugins: [./mine.py, my_pkg.plugin]\n")
    file_spec, module_spec = load_sources(path, env=ENV).plugin_specs()
    assert file_spec.is_path
    assert file_spec.path() == tmp_path / "conf" / "mine.py"
    assert not module_spec.is_path


def test_check_names_reports_unregistered_components_with_origin():
    """Each problem names where the value came from: an -o override or a file and line."""
    import codedance.sandboxes
    from codedance.core.registry import PluginInfo, Registry

    only_sandboxes = Registry()  # no rewards plugin: the default config's rewards are unknown
    only_sandboxes.add_plugin(codedance.sandboxes, PluginInfo("codedance.sandboxes", "builtin"))
    config = load_config(overrides=["sandbox.backend=lokal"], env=ENV)
    problems = [str(p) for p in check_names(config, only_sandboxes)]
    assert any(
        p.startswith("-o sandbox.backend=lokal: sandbox.backend: no sandbox named 'lokal'")
        for p in problems
    )
    assert any(p.startswith(f"{DEFAULT_CONFIG}:") and "rewards.2.name" in p for p in problems)


def _registering(names: list[str]):
    """A ``register_<kind>`` hook implementation that registers placeholders for ``names``."""
    from codedance import hookimpl

    def hook(self, register):
        for name in names:
            register(object, name=name)

    return hookimpl(hook)


def test_check_names_is_clean_when_everything_is_registered(register_plugin, codedance_registry):
    config = load_config(env=ENV)
    wanted = {
        "sandbox": [config.sandbox.backend],
        "model": [config.model.backend],
        "protocol": [config.protocol.name],
        "reward": [reward.name for reward in config.rewards],
    }
    # Register only what the built-ins lack, so no name is registered twice.
    missing = {k: [n for n in v if n not in codedance_registry.names(k)] for k, v in wanted.items()}
    hooks = {KINDS[kind]: _registering(names) for kind, names in missing.items()}
    registry = register_plugin(type("Everything", (), hooks)())
    assert check_names(config, registry) == []
    config = load_config(overrides=["tools.enabled=[no_such_tool]"], env=ENV)
    (problem,) = check_names(config, registry)
    assert "'no_such_tool' matches no registered tool" in str(problem)


def test_default_config_path_is_inside_the_package():
    assert DEFAULT_CONFIG.name == "registry.yaml"
    assert (Path(DEFAULT_CONFIG).parent / "core" / "config.py").exists()
