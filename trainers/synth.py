"""SFT cold-start data: reference programs run through the real runtime, kept only when verified.

Candidates are tasks with reference turns in the ``codedance`` protocol's format, from
two sources:

* the built-in generators of :mod:`codedance.runtime.examples` (``KINDS``): as many
  varied tasks per kind as asked, drawn from ``seed`` exactly as ``build_examples``
  draws them (ids ``<kind>-<seed>-<i>``), so a seed always gives the same data;
* an annotated task file (JSONL) whose rows name a ``skill`` and carry its
  annotation, which a per-skill template turns into a reference program.

Every candidate runs through the real runtime, as ``codedance run`` runs a model: a
``replay`` model plays the reference turns, the ``codedance`` protocol parses them
(whatever protocol is configured: the references are written in its format), and the
configured sandbox backend runs the code with the enabled tools. A trajectory is
KEPT only when every turn parsed, every execution ran cleanly (no error, no timeout,
no lost session) and showed the model every image it displayed, it stopped with an
answer, and ``score_answer`` gives that answer 1.0 against the task's. Otherwise it is
REJECTED with a reason: ``wrong answer: got '5', want '6'``, ``execution failed in
turn 1: ValueError: ...``, ``no answer (stop: max_turns)``.

Annotated rows: a tasks-file row plus ``skill`` (one of :data:`SKILLS`) and its
annotation (``box`` for crop_zoom, ``objects`` for draw_count, ``expression`` for
compute, ``values`` for read_replot). The full schema, and the reference program each
skill gets, is in :mod:`codedance.trainers.synth_annotations`'s docstring
(``pydoc codedance.trainers.synth_annotations``).

The output folder (resumable; ``resume`` skips ids already kept or rejected)::

    trajectories.jsonl, images/   kept trajectories (RunWriter's layout)
    inputs/<task>/<n>.png         input images as the model saw them (after resizing)
    rejected.jsonl                {"id", "skill", "source", "reason", "category", ...}
    sources/                      the generated example images
    summary.json                  kept/rejected per skill, top rejection reasons
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance.core.errors import CodedanceError, ConfigError
from codedance.runtime.examples import KINDS
from codedance.runtime.images import ImagePolicy
from codedance.runtime.types import Task, Trajectory, Turn
from codedance.trainers.synth_annotations import SKILLS, annotated_references

if TYPE_CHECKING:
    from codedance.core.config import Config
    from codedance.core.registry import Registry
    from codedance.runtime.loop import Runner
    from codedance.runtime.store import RunWriter

__all__ = [
    "KIND_SKILLS",
    "SKILLS",
    "Candidate",
    "SynthStore",
    "Verdict",
    "annotated_candidates",
    "example_candidates",
    "plan",
    "run_synth",
    "summarize",
    "synth_runner",
    "synthesize",
    "verify",
]

#: The skill each built-in generator trains (a kind missing here is picked by its name only).
KIND_SKILLS = {
    "bar_chart": "read_replot",
    "count_shapes": "draw_count",
    "small_tag": "crop_zoom",
    "triangle": "compute",
}
REJECTED = "rejected.jsonl"
FRAMEWORK = "framework failure"  # the category prefix of candidates the framework failed
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Candidate:
    """A task (its metadata holds ``skill`` and ``source``) and its reference turns."""

    task: Task
    turns: tuple[str, ...]

    @property
    def skill(self) -> str:
        return str(self.task.metadata.get("skill", "?"))


@dataclass(frozen=True)
class Verdict:
    """Why a trajectory is rejected (``reason``, grouped by ``category``), or kept (None)."""

    reason: str | None = None
    category: str | None = None

    @property
    def kept(self) -> bool:
        return self.reason is None


def _candidate(task: Task, skill: str, source: str, turns: Sequence[str]) -> Candidate:
    metadata = {**task.metadata, "skill": skill, "source": source}
    return Candidate(replace(task, metadata=metadata), tuple(turns))


# --- built-in generators ----------------------------------------------------------------


def example_candidates(
    folder: Path, seed: int, counts: Mapping[str, int], skip: Collection[str] = ()
) -> list[Candidate]:
    """``counts[kind]`` generated tasks of each kind, images drawn into ``folder``.

    The ``i``-th task of a kind is the one ``build_examples(folder, seed, per_kind > i)``
    makes; ids in ``skip`` are not generated at all.
    """
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    candidates = []
    for number, (kind, make) in enumerate(KINDS.items()):
        for index in range(counts.get(kind, 0)):
            name = f"{kind}-{seed}-{index}"
            if name not in skip:
                example = make(np.random.default_rng([seed, number, index]), folder / f"{name}.png")
                turns = example.reference
                candidates.append(_candidate(example.task, example.skill, "examples", turns))
    return candidates


# --- annotated task files (schema: codedance.trainers.synth_annotations) -----------------


def annotated_candidates(
    path: Path, policy: ImagePolicy | None = None, skip: Collection[str] = ()
) -> list[Candidate]:
    """Reference programs for the rows of an annotated JSONL file (schema and templates:
    :mod:`codedance.trainers.synth_annotations`)."""
    references = annotated_references(path, policy, skip)
    return [_candidate(task, skill, "annotations", turns) for task, skill, turns in references]


# --- verification -------------------------------------------------------------------------


def verify(trajectory: Trajectory) -> Verdict:
    """Keep (``Verdict()``) or reject with a reason: see the module docstring."""
    if trajectory.failure is not None:  # the framework's fault, after its retries
        return Verdict(
            f"the framework failed, not the program ({trajectory.failure}): {trajectory.error}",
            f"{FRAMEWORK}: {trajectory.failure}",
        )
    for turn in trajectory.turns:
        problem = _turn_problem(turn)
        if problem is not None:
            return problem
    if trajectory.stop != "answer" or trajectory.answer is None:
        detail = f": {trajectory.error}" if trajectory.error else ""
        return Verdict(
            f"no answer (stop: {trajectory.stop}{detail})", f"no answer ({trajectory.stop})"
        )
    return _check_answer(trajectory)


def _turn_problem(turn: Turn) -> Verdict | None:
    number, parsed, execution = turn.index + 1, turn.parsed, turn.execution
    if parsed.problem or parsed.extra_blocks:
        why = parsed.problem or f"{parsed.extra_blocks} extra code block(s) did not run"
        return Verdict(f"invalid format in turn {number}: {why}", "invalid format")
    if execution is None:
        return None
    failed = f"execution failed in turn {number}"
    if execution.get("timed_out"):
        return Verdict(f"{failed}: timed out", "execution failed: timeout")
    error = execution.get("error")
    if error:
        return Verdict(
            f"{failed}: {error['type']}: {error['message']}", f"execution failed: {error['type']}"
        )
    if execution.get("session_died"):
        return Verdict(f"{failed}: the sandbox session died", "execution failed: session died")
    record, observation = turn.record, turn.observation
    hidden = (
        0 if record is None else len(record.images) - len(observation.images if observation else [])
    )
    if hidden > 0:
        return Verdict(f"turn {number}: {hidden} displayed image(s) not shown", "image not shown")
    return None


def _check_answer(trajectory: Trajectory) -> Verdict:
    from codedance.rewards import score_answer

    task, got = trajectory.task, trajectory.answer or ""
    if task.answer is None:
        return Verdict("the task has no answer to check against", "no reference answer")
    try:
        score = score_answer(got, task.answer, task.answer_type, options=task.options)
    except (CodedanceError, ValueError) as exc:
        return Verdict(f"invalid reference answer: {exc}", "invalid reference answer")
    if score < 1.0:
        return Verdict(f"wrong answer: got {got!r}, want {task.answer!r}", "wrong answer")
    return Verdict()


# --- the output folder --------------------------------------------------------------------


class SynthStore:
    """Kept trajectories through :class:`RunWriter`, rejected ones in ``rejected.jsonl``."""

    def __init__(self, out: Path, resume: bool = False) -> None:
        from codedance.runtime.store import RunWriter

        self.out, self.rejected_path = out, out / REJECTED
        if not resume and self.rejected_path.exists() and self.rejected_path.stat().st_size:
            raise CodedanceError(
                f"{self.rejected_path} already holds results. Fix: pass --resume to continue "
                f"that run, or choose another --out folder."
            )
        self.writer: RunWriter = RunWriter(out, resume=resume)
        self.rejected = (
            {str(row["id"]) for row in _read_rows(self.rejected_path)} if resume else set()
        )
        self._file = self.rejected_path.open("a" if resume else "w", encoding="utf-8")

    @property
    def done(self) -> set[str]:
        """Ids already kept or rejected."""
        return self.writer.done | self.rejected

    def record(self, trajectory: Trajectory, verdict: Verdict) -> None:
        """Keep ``trajectory`` (input images saved as files first) or log its rejection."""
        if verdict.kept:
            _save_inputs(self.out, trajectory)
            self.writer.write(trajectory)
            return
        task = trajectory.task
        row = {
            "id": task.id,
            "skill": task.metadata.get("skill"),
            "source": task.metadata.get("source"),
            "reason": verdict.reason,
            "category": verdict.category,
            "answer": trajectory.answer,
            "want": task.answer,
            "stop": trajectory.stop,
            "turns": [turn.assistant for turn in trajectory.turns],
        }
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self.rejected.add(task.id)

    def close(self) -> None:
        self.writer.close()
        self._file.close()


def _save_inputs(out: Path, trajectory: Trajectory) -> None:
    """``inputs/<task>/<n>.png``: the prompt's images as the model saw them."""
    folder = _UNSAFE.sub("_", trajectory.task.id)[:80] or "task"
    images = [part for part in trajectory.prompt.parts if part.type == "image" and part.image]
    for number, part in enumerate(images):
        relative = f"inputs/{folder}/{number}.png"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        part.image.save(out / relative)  # type: ignore[union-attr]
        part.path = relative
        trajectory.input_images.append(relative)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The whole JSON lines of ``path``; a line cut short by a kill is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return [json.loads(line) for line in data[:keep].decode("utf-8").splitlines() if line.strip()]


# --- running ------------------------------------------------------------------------------


def synth_runner(config: Config, registry: Registry, candidates: Sequence[Candidate]) -> Runner:
    """The runner ``codedance run`` would build, with the ``codedance`` protocol and a
    replay model playing each candidate's reference turns."""
    from codedance.core.config import ModelConfig, ProtocolConfig
    from codedance.runtime.build import build_runner
    from codedance.runtime.replay import ReplayModel

    if config.protocol.name != "codedance":
        config = config.model_copy(update={"protocol": ProtocolConfig(name="codedance")})
    turns = {c.task.id: list(c.turns) for c in candidates}
    model = ReplayModel(ModelConfig(backend="replay", name="codedance-synth"), turns=turns)
    return build_runner(config, registry, model=model)


async def synthesize(
    runner: Runner,
    candidates: Sequence[Candidate],
    store: SynthStore,
    concurrency: int,
    on_result: Callable[[Candidate, Verdict], None] | None = None,
) -> dict[str, Verdict]:
    """Run, verify and record every candidate; ``on_result`` sees each as it finishes."""
    by_id = {c.task.id: c for c in candidates}
    verdicts: dict[str, Verdict] = {}
    try:
        async with runner.model:
            async for trajectory in runner.iter_solved([c.task for c in candidates], concurrency):
                verdict = verdicts[trajectory.task.id] = verify(trajectory)
                if verdict.kept:
                    trajectory.rewards = {"accuracy": 1.0}
                store.record(trajectory, verdict)
                if on_result is not None:
                    on_result(by_id[trajectory.task.id], verdict)
    finally:
        runner.sandbox.close()
    return verdicts


def run_synth(
    config: Config,
    registry: Registry,
    out: Path,
    *,
    kinds: Mapping[str, int],
    seed: int = 0,
    annotations: Path | None = None,
    resume: bool = False,
    concurrency: int | None = None,
    on_start: Callable[[list[Candidate]], None] | None = None,
    on_result: Callable[[Candidate, Verdict], None] | None = None,
) -> dict[str, Any]:
    """Plan, run and record the candidates not done yet; write and return the summary."""
    import asyncio

    store = SynthStore(out, resume=resume)
    try:
        candidates = plan(
            config, out, kinds=kinds, seed=seed, annotations=annotations, skip=store.done
        )
        if on_start is not None:
            on_start(candidates)
        if candidates:
            runner = synth_runner(config, registry, candidates)
            width = concurrency or config.runtime.concurrency
            asyncio.run(synthesize(runner, candidates, store, width, on_result))
    finally:
        store.close()
    summary = summarize(out)
    summary["seed"] = seed
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def plan(
    config: Config,
    out: Path,
    *,
    kinds: Mapping[str, int],
    seed: int = 0,
    annotations: Path | None = None,
    skip: Collection[str] = (),
) -> list[Candidate]:
    """The candidates of a synth run, those in ``skip`` left out (deterministic for a seed)."""
    runtime = config.runtime
    policy = ImagePolicy(min_pixels=runtime.image_min_pixels, max_pixels=runtime.image_max_pixels)
    candidates = example_candidates(out / "sources", seed, kinds, skip)
    if annotations is not None:
        candidates += annotated_candidates(annotations, policy, skip)
    twice = sorted(i for i, n in Counter(c.task.id for c in candidates).items() if n > 1)
    if twice:
        raise ConfigError(f"task ids {twice} appear twice. Fix: rename the annotated rows")
    return candidates


def summarize(out: Path) -> dict[str, Any]:
    """Kept and rejected counts per skill, and the most common rejection reasons."""
    from codedance.runtime.store import TRAJECTORIES

    kept = [row["task"]["metadata"].get("skill", "?") for row in _read_rows(out / TRAJECTORIES)]
    rejected = _read_rows(out / REJECTED)
    counts = Counter([(skill, "kept") for skill in kept])
    counts.update((row.get("skill") or "?", "rejected") for row in rejected)
    per_skill: dict[str, dict[str, int]] = {}
    for (skill, field), count in sorted(counts.items()):
        per_skill.setdefault(skill, {"kept": 0, "rejected": 0})[field] = count
    reasons = Counter(str(row.get("category")) for row in rejected)
    examples = {str(row.get("category")): row.get("reason") for row in reversed(rejected)}
    top = [{"reason": r, "count": n, "example": examples[r]} for r, n in reasons.most_common(10)]
    framework = sum(n for r, n in reasons.items() if r.startswith(FRAMEWORK))
    return {
        "kept": len(kept),
        "rejected": len(rejected),
        "framework_failures": framework,
        "per_skill": per_skill,
        "top_rejections": top,
    }
