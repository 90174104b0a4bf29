"""``codedance train --smoke``: two real GRPO steps on a tiny model before spending GPU hours.

:func:`run_smoke` takes the configuration as ``codedance train`` would run it and
changes only its size: a tiny random-weight model of the configured policy's
architecture (:mod:`codedance.trainers.verl.tiny`, primed to play varied turns;
a tiny Qwen2.5-VL when no ``training.model_path`` is set), a few rows of the first
configured train file (else the built-in example tasks, converted as
``codedance data to-verl`` converts them), two prompts of two rollouts, three turns,
two steps, a checkpoint after the last. Everything else is the configured pipeline:
protocol, sandbox, tools, rewards (plugins included), the ``codedance_grpo``
estimator, verl's trainer on the configured device. The rollout manager records each
training batch (:mod:`codedance.trainers.verl.probe`), verl logs each step's metrics
to ``metrics.jsonl``, and the verdict (:class:`Verdict`) reads both, plus the
checkpoint against the initial weights.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance.core.errors import ConfigError

if TYPE_CHECKING:
    from codedance.core.config import Config
    from codedance.core.registry import Registry

__all__ = ["STEPS", "Verdict", "run_smoke", "weight_change"]

STEPS = 2
PROMPTS = 2
ROLLOUTS = 2
MAX_TURNS = 3
MAX_RESPONSE = 1024
#: Metric name prefixes the verdict keeps from each step (verl's and codedance's).
KEPT_METRICS = (
    "timing_s/codedance/",
    "actor/pg_loss",
    "actor/grad_norm",
    "critic/score/",
    "critic/advantages/",
    "num_turns/mean",
    "response_length/mean",
    "tool_call_counts/",
    "rollout_corr/kl",
    "training/rollout_probs_diff_mean",
    "timing_s/step",
)


@dataclass
class Verdict:
    """What two smoke steps showed; ``ok`` when both ran and the weights moved."""

    steps: int = 0
    weights_changed: bool = False
    max_weight_delta: float = 0.0
    policy_loss: list[float] = field(default_factory=list)
    reward_mean: list[dict[str, float]] = field(default_factory=list)
    reward_std: list[dict[str, float]] = field(default_factory=list)
    weights_versions: list[list[int]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str | None = None
    model: str = ""
    architecture: str = ""
    device: str = ""
    wall_s: float = 0.0
    workdir: str = ""
    error: str | None = None
    ok: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_smoke(
    config: Config, registry: Registry, device: str | None = None, ray_address: str | None = None
) -> Verdict:
    """Two GRPO steps of ``config``'s pipeline, shrunk (module docs); a failed run is a verdict."""
    from codedance.trainers.verl.launch import launch, prepare
    from codedance.trainers.verl.probe import RECORD_ENV

    started = time.perf_counter()
    workdir = Path(config.training.output_dir).resolve() / "smoke"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data = _rows(config, registry, workdir)
    architecture = _architecture(config.training.model_path)
    model = _tiny_model(workdir / "model", architecture, data)
    smoke = _smoke_config(config, model, data, workdir / "train", device)
    run = prepare(smoke, _smoke_overrides())
    records = workdir / "records"
    with (workdir / "verl.log").open("w", encoding="utf-8") as log:
        status = launch(run, ray_address, {RECORD_ENV: str(records)}, output=log)
    verdict = _verdict(workdir, model, records, status)
    verdict.architecture, verdict.device = architecture, smoke.training.device
    verdict.wall_s = round(time.perf_counter() - started, 1)
    return verdict


def _architecture(model_path: str | None) -> str:
    """The configured policy's ``model_type`` (qwen2_5_vl when none is configured)."""
    if not model_path:
        return "qwen2_5_vl"
    from transformers import AutoConfig

    try:
        return str(AutoConfig.from_pretrained(model_path).model_type)
    except OSError as exc:
        raise ConfigError(
            f"training.model_path {model_path!r}: its config.json could not be read ({exc}), "
            f"so the smoke run cannot build a tiny model of its architecture. Fix: a local "
            f"checkpoint folder, or a hub id already in the Hugging Face cache."
        ) from None


def _rows(config: Config, registry: Registry, workdir: Path) -> Path:
    """A parquet of :data:`PROMPTS` rows: the first train file's, else the built-in examples'."""
    import pyarrow.parquet as pq

    out = workdir / "data"
    out.mkdir()
    files = config.training.train_files
    if files:
        table = pq.read_table(files[0]).slice(0, PROMPTS)
        if table.num_rows < PROMPTS:
            raise ConfigError(
                f"training.train_files[0] {files[0]!r} has {table.num_rows} row(s); the smoke "
                f"run needs {PROMPTS}. Fix: convert more tasks with `codedance data to-verl`."
            )
        pq.write_table(table, out / "train.parquet")
        return out / "train.parquet"
    from codedance.evaluation.benchmark import Benchmark
    from codedance.trainers.verl.data import RowBuilder, write_verl_parquet

    benchmark_class: type[Benchmark] = registry.get("benchmark", "synthetic")
    tasks = list(benchmark_class(workdir / "examples", {}).tasks(workdir / "examples"))
    builder = RowBuilder.from_config(config, registry, data_source="synthetic")
    write_verl_parquet(tasks, out, builder, shuffle=True, seed=0, limit=PROMPTS)
    return out / "train.parquet"


def _tiny_model(path: Path, architecture: str, data: Path) -> Path:
    """The primed tiny model, its tokenizer also trained on the rows' prompt text."""
    import pyarrow.parquet as pq

    from codedance.trainers.verl.tiny import build_tiny

    corpus = [
        str(message["content"])
        for row in pq.read_table(data, columns=["prompt"]).column("prompt").to_pylist()
        for message in row
    ]
    return build_tiny(path, architecture, primed=True, corpus=corpus)


def _smoke_config(
    config: Config, model: Path, data: Path, output: Path, device: str | None
) -> Config:
    """``config`` with the training section shrunk to the smoke run's size."""
    t = config.training
    training = t.model_copy(
        update={
            "model_path": str(model),
            "train_files": [str(data)],
            "val_files": [str(data)],
            "n_rollouts": ROLLOUTS,
            "train_batch_size": PROMPTS,
            "ppo_mini_batch_size": PROMPTS,
            "micro_batch_size_per_gpu": PROMPTS,
            "max_turns": min(t.max_turns, MAX_TURNS),
            "max_response_length": min(t.max_response_length, MAX_RESPONSE),
            "epochs": STEPS,
            "nnodes": 1,
            "gpus_per_node": 1,
            "output_dir": str(output),
            "device": device or t.device,
        }
    )
    return config.model_copy(update={"training": training})


def _smoke_overrides() -> list[str]:
    from codedance.trainers.verl.probe import MANAGER

    return [
        f"trainer.total_training_steps={STEPS}",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        f"trainer.save_freq={STEPS}",
        "trainer.resume_mode=disable",
        f"++actor_rollout_ref.rollout.agent.agent_loop_manager_class={MANAGER}",
    ]


def _verdict(workdir: Path, model: Path, records: Path, status: int) -> Verdict:
    """Read the step metrics, the batch records and the checkpoint of a finished run."""
    verdict = Verdict(model=str(model), workdir=str(workdir))
    steps = _metrics(workdir / "train" / "metrics.jsonl")
    verdict.steps = len(steps)
    verdict.policy_loss = [float(step.get("actor/pg_loss", math.nan)) for step in steps]
    verdict.metrics = [
        {key: value for key, value in step.items() if key.startswith(KEPT_METRICS)}
        for step in steps
    ]
    for path in sorted(records.glob("step-*.json")):
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        means, stds = group_rewards(rows)
        verdict.reward_mean.append(means)
        verdict.reward_std.append(stds)
        versions = {row["weights_version"] for row in rows} - {None}
        verdict.weights_versions.append(sorted(versions))
    checkpoint = workdir / "train" / "checkpoints" / f"global_step_{STEPS}" / "actor"
    if checkpoint.is_dir():
        verdict.checkpoint = str(checkpoint)
        verdict.max_weight_delta = weight_change(model, checkpoint)
        verdict.weights_changed = verdict.max_weight_delta > 0
    if status != 0:
        verdict.error = f"verl exited with status {status}: " + _tail(workdir / "verl.log")
    finite = all(math.isfinite(loss) for loss in verdict.policy_loss)
    verdict.ok = status == 0 and verdict.steps == STEPS and verdict.weights_changed and finite
    return verdict


def _metrics(path: Path) -> list[dict[str, float]]:
    """verl's file logger: one ``{"step", "data"}`` object a line; numbers only."""
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)["data"]
        steps.append({k: float(v) for k, v in data.items() if isinstance(v, int | float)})
    return steps


def group_rewards(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and population std of the rollouts' total reward, per uid group."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(str(row["uid"]), []).append(float(row["total"]))
    means = {uid: statistics.fmean(values) for uid, values in groups.items()}
    stds = {uid: statistics.pstdev(values) for uid, values in groups.items()}
    return means, stds


def weight_change(initial: Path, checkpoint: Path) -> float:
    """Largest |trained - initial| over the weights in verl's FSDP checkpoint ``checkpoint``."""
    import torch
    from transformers import AutoModelForImageTextToText

    before = AutoModelForImageTextToText.from_pretrained(initial).state_dict()
    largest = 0.0
    for shard in sorted(checkpoint.glob("model_world_size_*_rank_*.pt")):
        state = torch.load(shard, map_location="cpu", weights_only=False)
        for name, tensor in state.items():
            full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            if name in before:
                delta = (full.float() - before[name].float()).abs().max()
                largest = max(largest, float(delta))
    return largest


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])
