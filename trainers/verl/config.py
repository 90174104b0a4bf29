"""The verl configuration generated from registry.yaml's ``training`` section.

:func:`verl_overrides` turns codedance's settings into Hydra overrides of verl's
own ``ppo_trainer`` config (GRPO with n rollouts, no KL, token-mean loss, the
multi-turn agent loop ``codedance``, our advantage estimator ``codedance_grpo``, and
our ``AgentLoopManager`` that scores each generated batch by prompt group into
token-level rewards, which runs on verl's legacy trainer: ``trainer.use_v1=false``),
then the user's ``training.overrides`` last, so verl's own options stay reachable.
:func:`compose` composes them with verl's installed config schema, which is the
validation: a wrong key or value fails here, before any GPU is touched.

Ray workers do not inherit imports from the driver, so the codedance components
reach every worker through Ray's ``worker_process_setup_hook``
(:mod:`codedance.trainers.verl.setup`) and the agent loop through verl's
``agent_loop_config_path`` (a generated YAML naming our class). verl imports the
``AgentLoopManager`` from its dotted name in its TaskRunner actor, the process that
also computes the advantages, where the setup hook has registered ``codedance_grpo``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance.core.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from codedance.core.config import Config

__all__ = [
    "SUPPORTED_VERL",
    "check_versions",
    "compose",
    "cpu_environment",
    "cpu_overrides",
    "metrics_path",
    "verl_overrides",
    "write_agent_loop_config",
]

#: The verl releases this trainer is tested with (the ``train`` extra's range).
SUPPORTED_VERL = (">=0.9.1", "<0.10")
AGENT_LOOP = "codedance"
SETUP_HOOK = "codedance.trainers.verl.setup.register_all"
CONFIG_ENV = "CODEDANCE_CONFIG"
PLATFORM_ENV = "VERL_PLATFORM"
METRICS_ENV = "VERL_FILE_LOGGER_PATH"
METRICS_FILE = "metrics.jsonl"
EXTERNAL_MODULES_ENV = "VERL_USE_EXTERNAL_MODULES"
#: Imported by verl itself in every process of a CPU run (see cpu_environment).
CPU_MODULES = ("codedance.trainers.verl.platform", "codedance.trainers.verl.rollout")
ROLLOUT_CPU = "codedance-hf"


def check_versions() -> str:
    """The installed verl version, or an error naming it and the supported range."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("verl")
    except PackageNotFoundError:
        raise MissingDependencyError.for_extra("verl", "train", "codedance train") from None
    if not _in_range(installed):
        raise ConfigError(
            f"verl {installed} is installed but codedance's trainer supports verl "
            f"{','.join(SUPPORTED_VERL)}. Fix: pip install 'verl{','.join(SUPPORTED_VERL)}' "
            f"(or pip install 'codedance[train]')."
        )
    return installed


def _in_range(installed: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        numbers = []
        for piece in text.split("."):
            digits = "".join(ch for ch in piece if ch.isdigit())
            if not digits:
                break
            numbers.append(int(digits))
        return tuple(numbers)

    low, high = (parts(bound.lstrip("<>=")) for bound in SUPPORTED_VERL)
    return low <= parts(installed) < high


def write_agent_loop_config(folder: Path) -> Path:
    """The YAML verl reads to build our agent loop in its workers."""
    path = folder / "agent_loops.yaml"
    target = "codedance.trainers.verl.agent_loop.CodeDanceAgentLoop"
    path.write_text(f"- name: {AGENT_LOOP}\n  _target_: {target}\n", encoding="utf-8")
    return path


def verl_overrides(config: Config, workdir: Path, config_file: Path | None = None) -> list[str]:
    """Hydra overrides of verl's ``ppo_trainer`` for this codedance configuration."""
    t = config.training
    if not t.model_path:
        raise ConfigError("training.model_path is not set. Fix: the policy checkpoint to train.")
    if not t.train_files:
        raise ConfigError(
            "training.train_files is empty. Fix: convert tasks with `codedance data to-verl` "
            "and list the parquet files."
        )
    loops = write_agent_loop_config(workdir)
    rollout = "actor_rollout_ref.rollout"
    overrides = [
        "algorithm.adv_estimator=codedance_grpo",
        "algorithm.use_kl_in_reward=false",
        "critic.enable=false",  # GRPO needs no critic
        f"+algorithm.codedance_turn_scale={t.turn_advantage_scale}",
        f"data.train_files={_list(t.train_files)}",
        f"data.val_files={_list(t.val_files or t.train_files)}",
        f"data.train_batch_size={t.train_batch_size}",
        f"data.max_prompt_length={t.max_prompt_length}",
        f"data.max_response_length={t.max_response_length}",
        "data.return_raw_chat=true",
        f"actor_rollout_ref.model.path={t.model_path}",
        f"actor_rollout_ref.actor.optim.lr={t.lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={t.ppo_mini_batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={t.micro_batch_size_per_gpu}",
        f"{rollout}.log_prob_micro_batch_size_per_gpu={t.micro_batch_size_per_gpu}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={t.micro_batch_size_per_gpu}",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
        f"{rollout}.name={t.rollout_engine}",
        f"{rollout}.mode=async",
        f"{rollout}.n={t.n_rollouts}",
        f"{rollout}.temperature={t.temperature}",
        f"{rollout}.multi_turn.enable=true",
        f"{rollout}.multi_turn.max_assistant_turns={t.max_turns}",
        f"{rollout}.agent.default_agent_loop={AGENT_LOOP}",
        f"{rollout}.agent.agent_loop_config_path={loops}",
        # Rewards: the whole generated batch is scored by uid group in the rollout's
        # AgentLoopManager (token-level rewards, see codedance.trainers.verl.reward) on the
        # legacy trainer; verl's per-sample reward workers are left idle, so one is enough.
        "trainer.use_v1=false",
        f"+{rollout}.agent.agent_loop_manager_class="
        "codedance.trainers.verl.reward.CodedanceAgentLoopManager",
        "reward.num_workers=1",
        f"trainer.total_epochs={t.epochs}",
        f"trainer.nnodes={t.nnodes}",
        f"trainer.n_gpus_per_node={t.gpus_per_node}",
        f"trainer.project_name={t.project}",
        f"trainer.experiment_name={t.experiment}",
        f"trainer.default_local_dir={Path(t.output_dir).resolve() / 'checkpoints'}",
        # console, and every step's metrics as one JSON line in output_dir/metrics.jsonl
        "trainer.logger=[console,file]",
        f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={SETUP_HOOK}",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.{METRICS_ENV}={metrics_path(config)}",
    ]
    if config_file is not None:
        overrides.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.{CONFIG_ENV}={config_file}")
    if t.device == "cpu":
        overrides = [*_without(overrides, f"{rollout}.name="), *cpu_overrides(config)]
    return [*overrides, *t.overrides]


def metrics_path(config: Config) -> Path:
    """Where verl's file logger writes each step's metrics (one JSON object a line)."""
    return Path(config.training.output_dir).resolve() / METRICS_FILE


def _without(overrides: Sequence[str], prefix: str) -> list[str]:
    return [item for item in overrides if not item.startswith(prefix)]


def cpu_environment() -> dict[str, str]:
    """The variables that put verl in every process on the CPU platform and HF rollout."""
    return {PLATFORM_ENV: "cpu", EXTERNAL_MODULES_ENV: ",".join(CPU_MODULES)}


def cpu_overrides(config: Config) -> list[str]:
    """The CPU profile (docs/training.md (CPU section)): verl's recipe, placed on CPU processes.

    gloo and the CPU platform come from :mod:`codedance.trainers.verl.platform`, loaded
    in every process through ``VERL_USE_EXTERNAL_MODULES``; generation from the
    ``codedance-hf`` rollout. FSDP2, because FSDP1 refuses CPU parameters; no
    remove-padding, because Qwen-VL's packed path needs flash-attn; ``sdpa`` attention.
    Ray gets ``nnodes * gpus_per_node`` *logical* GPUs, one per trainer process (verl's
    resource pools count GPUs); one agent-loop worker and one reward worker.
    """
    t = config.training
    ref = "actor_rollout_ref"
    env = "+ray_kwargs.ray_init.runtime_env.env_vars"
    return [
        "trainer.device=cpu",
        f"{ref}.actor.strategy=fsdp2",
        f"{ref}.ref.strategy=fsdp2",
        f"{ref}.model.use_remove_padding=false",
        f"+{ref}.model.override_config.attn_implementation=sdpa",
        f"{ref}.rollout.name={ROLLOUT_CPU}",
        f"{ref}.rollout.tensor_model_parallel_size=1",
        f"{ref}.rollout.checkpoint_engine.backend=naive",
        f"{ref}.rollout.agent.num_workers=1",
        "data.dataloader_num_workers=0",
        f"+ray_kwargs.ray_init.num_gpus={t.nnodes * t.gpus_per_node}",
        f"ray_kwargs.ray_init.num_cpus={max(8, 2 * t.nnodes * t.gpus_per_node + 4)}",
        "+ray_kwargs.ray_init.include_dashboard=false",  # its processes cost memory, not needed
        *(f"{env}.{key}='{value}'" for key, value in cpu_environment().items()),
    ]


def _list(items: Sequence[str]) -> str:
    return "[" + ",".join(str(Path(item).resolve()) for item in items) + "]"


def compose(overrides: Sequence[str]) -> Any:
    """verl's ``ppo_trainer`` config with ``overrides``, composed by Hydra from verl's files.

    A key verl does not have, or a value of the wrong type, is a :class:`ConfigError`
    naming the override.
    """
    import verl.trainer
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    config_dir = os.path.join(os.path.dirname(verl.trainer.__file__), "config")
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            composed = hydra_compose(config_name="ppo_trainer", overrides=list(overrides))
        OmegaConf.resolve(composed)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"verl rejected the generated configuration: {exc}. Fix: check training.overrides "
            f"against verl's ppo_trainer config (codedance train --dry-run prints every override)."
        ) from None
    return composed
