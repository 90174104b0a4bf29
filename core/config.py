"""The configuration schema (registry.yaml) and its validation.

:func:`load_config` merges the shipped registry.yaml, a user file (``--config`` or
``$CODEDANCE_CONFIG``) and ``-o dotted.key=value`` overrides, then validates the
result. Every error names the file and line (or the ``-o``), the key path, the
bad value, and what is allowed or how to fix it.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from codedance.core.errors import CodedanceError, ConfigError
from codedance.core.registry import Registry
from codedance.core.sources import ConfigSources, Origin, format_path, load_sources

__all__ = [
    "AdmissionConfig",
    "Config",
    "ModelConfig",
    "ProtocolConfig",
    "RewardConfig",
    "RuntimeConfig",
    "SandboxConfig",
    "ToolsConfig",
    "check_names",
    "load_config",
    "validate_sources",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AdmissionConfig(_Section):
    """How many sessions may start, and how many may run code, at the same time.

    Callers beyond a limit wait in a queue; the wait never counts against a
    session's start timeout or a run's ``timeout_s``. ``auto`` is this machine's
    CPU count for backends that run code here (local, docker) and no limit for
    remote ones (e2b).
    """

    starting: int | Literal["auto"] = Field("auto", description="concurrent session starts")
    running: int | Literal["auto"] = Field("auto", description="concurrent executions")

    @field_validator("starting", "running")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} must be a positive number of sessions, or auto")
        return value


class LocalSandboxConfig(_Section):
    """The local (bubblewrap) backend: per-session accounting and the warm pool."""

    pool_size: int = Field(2, ge=0, description="pre-forked sessions kept ready (0: none)")
    workdir_mb: int = Field(
        512, gt=0, description="working directory size (a tmpfs counted in memory_mb)"
    )
    max_files: int = Field(20000, gt=0, description="files and folders the workdir may hold")
    cpus: float = Field(1.0, ge=0, description="CPUs per session (cgroup quota; 0: no quota)")
    cgroups: Literal["auto", "required", "off"] = Field(
        "auto", description="per-session cgroups: auto (warn if unavailable), required, off"
    )


class SandboxConfig(_Section):
    """Where and how model-written code runs."""

    backend: str = Field("local", description="registered sandbox backend name")
    timeout_s: float = Field(15.0, gt=0, description="wall-clock limit per execution")
    memory_mb: int = Field(4096, gt=0, description="address-space limit per session")
    cpu_time_s: int = Field(60, gt=0, description="CPU-time limit per execution")
    max_processes: int = Field(64, gt=0, description="process/thread limit per session")
    max_file_mb: int = Field(256, gt=0, description="largest file the code may write")
    max_output_chars: int = Field(8000, gt=0, description="stdout/stderr kept per run")
    on_error: Literal["keep", "rollback", "reset"] = Field(
        "keep", description="session state after a failed run"
    )
    env: list[str] = Field(
        default_factory=list, description="host environment variables passed by name"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific")
    threads: int = Field(
        1, gt=0, description="native threads per session (OpenMP, OpenBLAS, MKL, onnxruntime)"
    )
    admission: AdmissionConfig = Field(
        default_factory=AdmissionConfig, description="sessions starting / running at once"
    )
    local: LocalSandboxConfig = Field(
        default_factory=LocalSandboxConfig, description="the local backend's settings"
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _ENV_NAME.match(n)]
        if bad:
            raise ValueError(f"{bad!r} are not environment variable names (write names only)")
        return names


class ModelConfig(_Section):
    """Which inference backend produces the assistant turns."""

    backend: str = Field("openai", description="registered model backend name")
    name: str = Field("codedance", description="model id or local path")
    endpoint: str | None = Field(None, description="base URL of an OpenAI-compatible server")
    api_key: SecretStr | None = Field(None, description="never printed by config show")
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(2048, gt=0, description="per assistant turn")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific")

    @field_validator("api_key", "endpoint", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1")
        return value


class ProtocolConfig(_Section):
    """How turns are prompted, parsed and answered with observations."""

    name: str = Field("codedance", description="registered protocol name")
    options: dict[str, Any] = Field(default_factory=dict)


class ToolsConfig(_Section):
    """Which registered tools the model sees in its prompt."""

    enabled: list[str] = Field(
        default_factory=lambda: ["*"], description="tool names or glob patterns"
    )
    prompt_token_budget: int = Field(4000, gt=0, description="cap on tool docs in the prompt")


class RewardConfig(_Section):
    """One reward component in the composition."""

    name: str = Field(description="registered reward name")
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)


class RuntimeConfig(_Section):
    """Limits of the multi-turn loop."""

    max_turns: int = Field(10, gt=0, description="assistant turns per trajectory")
    max_tokens: int = Field(32768, gt=0, description="token budget per trajectory")
    concurrency: int = Field(8, gt=0, description="trajectories in flight at once")
    infra_retries: int = Field(
        2, ge=0, description="fresh attempts of a task the framework failed (not the model)"
    )
    max_images: int = Field(32, gt=0, description="images kept in the model's context")
    image_min_pixels: int = Field(4 * 28 * 28, gt=0, description="smart-resize lower bound")
    image_max_pixels: int = Field(16384 * 28 * 28, gt=0, description="smart-resize upper bound")


class GroupFilterConfig(_Section):
    """Remedy: drop prompt groups whose rewards do not vary (DAPO, PyVision-RL)."""

    enabled: bool = Field(False, description="mask zero-variance groups out of the loss")
    metric: str = Field("score", description="score (the total) or a reward name/part")
    min_std: float = Field(0.0, ge=0, description="a group with reward std <= this is dropped")


class HealthConfig(_Section):
    """Training-health signals, the tool-collapse alarm and two remedies (docs/training.md)."""

    tool_rate_floor: float = Field(0.05, ge=0, le=1, description="alarm: tool-use share floor")
    alarm_steps: int = Field(3, ge=0, description="alarm after this many low steps (0: off)")
    mask_over_turn: bool = Field(False, description="no loss on rollouts cut by the turn cap")
    group_filter: GroupFilterConfig = Field(default_factory=GroupFilterConfig)
    modality_guard: bool = Field(True, description="check image tokens against grids per batch")


class TrainingConfig(_Section):
    """RL training on verl (``codedance train``); defaults follow the CodeDance recipe."""

    model_path: str | None = Field(None, description="the policy checkpoint (local path or hub id)")
    train_files: list[str] = Field(default_factory=list, description="verl parquet (data to-verl)")
    val_files: list[str] = Field(default_factory=list)
    rollout_engine: Literal["vllm", "sglang", "codedance-hf"] = "vllm"
    device: Literal["gpu", "cpu"] = Field(
        "gpu", description="gpu: verl's accelerators; cpu: the CPU profile (codedance-hf rollout)"
    )
    n_rollouts: int = Field(8, gt=0, description="rollouts per prompt (the GRPO group)")
    lr: float = Field(1e-6, gt=0)
    train_batch_size: int = Field(256, gt=0, description="prompts per step")
    ppo_mini_batch_size: int = Field(256, gt=0)
    micro_batch_size_per_gpu: int = Field(2, gt=0, description="per forward/backward pass")
    max_turns: int = Field(6, gt=0, description="assistant turns per rollout (the paper: 6)")
    max_prompt_length: int = Field(10240, gt=0)
    max_response_length: int = Field(10240, gt=0, description="all turns incl. observations")
    temperature: float = Field(1.0, ge=0)
    epochs: int = Field(2, gt=0)
    nnodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(8, gt=0)
    turn_advantage_scale: float = Field(0.2, description="BAT turn-level term in the advantage")
    project: str = "codedance"
    experiment: str = "grpo-bat"
    output_dir: str = Field("runs/train", description="checkpoints, logs, the composed config")
    overrides: list[str] = Field(default_factory=list, description="verl hydra overrides, last")
    health: HealthConfig = Field(default_factory=HealthConfig)


class Config(_Section):
    """The whole configuration: what registry.yaml may contain."""

    plugins: list[str] = Field(default_factory=list, description="extra plugin modules/files")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    rewards: list[RewardConfig] = Field(default_factory=list)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    _sources: ConfigSources | None = PrivateAttr(default=None)

    def where(self, *path: str | int) -> Origin:
        """Where the value at ``path`` was set (file:line or -o), for error messages."""
        if self._sources is None:
            return Origin("(built in code)")
        return self._sources.where(path)

    def public_dict(self) -> dict[str, Any]:
        """The configuration as plain data with secrets masked."""
        return self.model_dump(mode="json")


# -- loading and validating -----------------------------------------------------------


def load_config(
    config: Path | str | None = None,
    overrides: Iterable[str] = (),
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load registry.yaml + ``config`` (or $CODEDANCE_CONFIG) + ``overrides`` and validate."""
    return validate_sources(load_sources(config, overrides, env=env))


def validate_sources(sources: ConfigSources) -> Config:
    """Validate merged sources; a failure lists every problem with its origin."""
    try:
        config = Config.model_validate(sources.data)
    except ValidationError as exc:
        problems = [_describe(error, sources) for error in exc.errors(include_url=False)]
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"invalid configuration ({count}):\n  " + "\n  ".join(problems)) from None
    config._sources = sources
    return config


def _describe(error: Any, sources: ConfigSources) -> str:
    loc = tuple(error["loc"])
    where = f"{sources.where(loc)}: {format_path(loc)}"
    if error["type"] == "extra_forbidden":
        allowed = sorted(_model_at(loc[:-1]).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return (
            f"{where}: unknown key {loc[-1]!r}.{hint} Allowed keys here: "
            f"{', '.join(allowed)}. Fix: rename or remove it."
        )
    if error["type"] == "missing":
        return f"{where}: required key is missing. Fix: add `{loc[-1]}:` there."
    got = _short(error.get("input"))
    return f"{where}: {error['msg']} (got {got}).{_default_hint(loc, sources)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _default_hint(loc: tuple[Any, ...], sources: ConfigSources) -> str:
    """Name the value to fall back on: the shipped registry.yaml's, else the schema's."""
    shipped: Any = sources.defaults
    for part in loc:
        try:
            shipped = shipped[part]
        except (KeyError, IndexError, TypeError):
            break
    else:
        if sources.where(loc).label != sources.labels[0]:
            return f" Fix: correct it, or drop it to keep the shipped value {shipped!r}."
    if not loc or not isinstance(loc[-1], str):
        return ""
    field = _model_at(loc[:-1]).model_fields.get(loc[-1])
    if field is None or field.is_required() or field.default_factory is not None:
        return ""
    return f" Fix: correct it; the built-in default is {field.default!r}."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic model describing the mapping at ``loc`` (Config for the top)."""
    model: type[BaseModel] = Config
    annotation: Any = Config
    for part in loc:
        if isinstance(part, int):
            annotation = typing.get_args(annotation)[0]
        elif part in model.model_fields:
            annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


# -- names that must be registered ------------------------------------------------------


def check_names(config: Config, registry: Registry) -> list[CodedanceError]:
    """Errors for configured names (backend, protocol, rewards, tools) not usable here."""
    wanted: list[tuple[str, tuple[str | int, ...], str]] = [
        ("sandbox", ("sandbox", "backend"), config.sandbox.backend),
        ("model", ("model", "backend"), config.model.backend),
        ("protocol", ("protocol", "name"), config.protocol.name),
    ]
    wanted += [("reward", ("rewards", i, "name"), r.name) for i, r in enumerate(config.rewards)]
    problems: list[CodedanceError] = []
    for kind, path, name in wanted:
        try:
            registry.entry(kind, name)
        except CodedanceError as exc:
            problems.append(ConfigError(f"{config.where(*path)}: {format_path(path)}: {exc}"))
    problems += _reward_param_problems(config, registry)
    tools = registry.names("tool")
    for index, pattern in enumerate(config.tools.enabled):
        if pattern != "*" and not fnmatch.filter(tools, pattern):
            where = f"{config.where('tools', 'enabled', index)}: tools.enabled.{index}"
            problems.append(
                ConfigError(
                    f"{where}: {pattern!r} matches no registered tool "
                    f"(registered: {', '.join(tools) or 'none'}). Fix: correct the name or "
                    f"install the plugin that provides it."
                )
            )
    return problems


def _reward_param_problems(config: Config, registry: Registry) -> list[CodedanceError]:
    """Each reward's params checked against the component's parameters and their types."""
    from codedance.core.params import check_params

    problems: list[CodedanceError] = []
    for index, reward in enumerate(config.rewards):
        try:
            obj = registry.get("reward", reward.name)
        except CodedanceError:
            continue  # reported above as an unregistered name
        for key, problem in check_params(reward.name, obj, reward.params):
            path: tuple[str | int, ...] = ("rewards", index, "params", *([key] if key else []))
            problems.append(ConfigError(f"{config.where(*path)}: {format_path(path)}: {problem}"))
    return problems
