"""A run's trajectories as one self-contained HTML page (``codedance view``, in
:mod:`codedance.commands.view`).

The page needs nothing but itself: images are embedded as base64 data URIs (large
ones downscaled), the style sheet and the small filter script are inline, and no
CDN is touched, so the file can be mailed or moved. Every string that came from a
model, a task or the sandbox is HTML-escaped, because model output is hostile; a
Content-Security-Policy that allows only the page's own script (by hash) backs
that up. Missing or unreadable images become a placeholder naming the path.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from codedance.core.errors import CodedanceError
from codedance.runtime.types import Parsed, Part, Trajectory, Turn
from codedance.runtime.viewer_assets import (
    figure,
    filter_bar,
    labelled,
    page,
    placeholder,
    pre,
    table,
)

__all__ = [
    "MAX_SIDE",
    "ImageEmbedder",
    "RunRecords",
    "RunStats",
    "ViewError",
    "anchor",
    "default_output",
    "load_run",
    "render_html",
    "run_stats",
    "save_page",
    "verdict",
    "write_view",
]

#: Embedded copies of images larger than this (either side, in pixels) are downscaled.
MAX_SIDE = 1600
TRAJECTORIES = "trajectories.jsonl"
SUMMARY = "summary.json"
_OPEN_UP_TO = 20  # with more trajectories than this the cards start collapsed
_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class ViewError(CodedanceError):
    """The run folder or trajectories file cannot be turned into a page."""


@dataclass
class RunRecords:
    """What a run folder holds: its trajectories, unreadable lines and summary."""

    source: Path  # the trajectories .jsonl file
    root: Path  # the folder that image paths in the records are relative to
    trajectories: list[Trajectory] = field(default_factory=list)
    broken: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    summary: dict[str, Any] | None = None


def load_run(out: Path) -> RunRecords:
    """Read a run folder (or a trajectories ``.jsonl`` file) without stopping at bad lines."""
    source = out / TRAJECTORIES if out.is_dir() else out
    if not source.is_file():
        raise ViewError(
            f"no {TRAJECTORIES} in {str(out)!r}. Fix: pass the output folder of a run "
            f"or the path of a trajectories .jsonl file."
        )
    run = RunRecords(source=source, root=source.parent, summary=_read_summary(source.parent))
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                _add_record(run, number, line)
    return run


def _add_record(run: RunRecords, number: int, line: str) -> None:
    try:
        run.trajectories.append(Trajectory.from_json(json.loads(line)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        run.broken.append((number, f"{type(exc).__name__}: {exc}"))


def _read_summary(folder: Path) -> dict[str, Any] | None:
    path = folder / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return {"unreadable summary.json": str(exc)}
    return data if isinstance(data, dict) else {"summary": data}


def verdict(trajectory: Trajectory) -> str:
    """``pass`` or ``fail`` by the accuracy reward; ``error`` or ``unscored`` without one."""
    if trajectory.failure is not None:  # the framework's failure: never a pass or a fail
        return "error"
    accuracy = trajectory.rewards.get("accuracy")
    if accuracy is not None and not trajectory.rewards.get("accuracy.unscored"):
        return "pass" if accuracy >= 0.5 else "fail"
    return "error" if trajectory.stop in ("error", "model_error") else "unscored"


@dataclass(frozen=True)
class RunStats:
    """The run at a glance: what the page's header shows."""

    count: int
    scored: int
    passed: int
    answered: int
    mean_rewards: dict[str, float]
    calls_per_trajectory: float
    call_success_rate: float | None  # None when no code ran at all
    mean_tokens: float
    mean_duration_s: float
    stops: dict[str, int]


def run_stats(trajectories: Sequence[Trajectory]) -> RunStats:
    """Aggregate counts and means over ``trajectories`` (zeros for an empty run)."""
    n = max(len(trajectories), 1)
    verdicts = Counter(verdict(t) for t in trajectories)
    calls = sum(t.tool_calls for t in trajectories)
    keys = sorted({key for t in trajectories for key in t.rewards})
    means = {}
    for key in keys:
        values = [t.rewards[key] for t in trajectories if key in t.rewards]
        means[key] = sum(values) / len(values)
    return RunStats(
        count=len(trajectories),
        scored=verdicts["pass"] + verdicts["fail"],
        passed=verdicts["pass"],
        answered=sum(t.stop == "answer" for t in trajectories),
        mean_rewards=means,
        calls_per_trajectory=calls / n,
        call_success_rate=sum(t.successful_calls for t in trajectories) / calls if calls else None,
        mean_tokens=sum(t.prompt_tokens + t.completion_tokens for t in trajectories) / n,
        mean_duration_s=sum(t.duration_s for t in trajectories) / n,
        stops=dict(Counter(t.stop for t in trajectories).most_common()),
    )


class ImageEmbedder:
    """Turns image paths from the records into ``<figure>`` tags with data URIs.

    Relative paths are resolved against ``root``. An image wider or taller than
    ``max_side`` is downscaled in its embedded copy; the file itself is untouched.
    A path that is missing or not an image gives a placeholder that names it.
    """

    def __init__(self, root: Path, max_side: int = MAX_SIDE) -> None:
        self.root = root
        self.max_side = max_side

    def figure(self, path: str, caption: str = "") -> str:
        """The image at ``path`` as a figure, or a placeholder saying why it cannot be shown."""
        from PIL import Image

        try:
            uri, note = self.data_uri(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return placeholder(f"image not shown: {path} ({exc})")
        return figure(uri, caption or path, note)

    def data_uri(self, path: str) -> tuple[str, str]:
        """``(data URI, note)``; the note says when the copy was downscaled."""
        from PIL import Image

        file = Path(path) if Path(path).is_absolute() else self.root / path
        if not file.is_file():
            raise FileNotFoundError(f"no such file: {file}")
        with Image.open(file) as image:
            size = image.size
            if max(size) <= self.max_side and image.format in _AS_IS:
                mime, data, note = _AS_IS[image.format], file.read_bytes(), ""
            else:
                mime, data = _downscaled(image, self.max_side)
                note = (
                    f"{size[0]}x{size[1]} shown at {self.max_side}px"
                    if max(size) > self.max_side
                    else ""
                )
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", note


def _downscaled(image: Any, max_side: int) -> tuple[str, bytes]:
    """Re-encode ``image`` within ``max_side``: JPEG stays JPEG, the rest becomes PNG."""
    copy = image.copy()
    copy.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    if image.format == "JPEG" and copy.mode in ("RGB", "L"):
        copy.save(buffer, format="JPEG", quality=88)
        return "image/jpeg", buffer.getvalue()
    if copy.mode not in ("RGB", "RGBA", "L", "LA"):
        copy = copy.convert("RGBA")
    copy.save(buffer, format="PNG")
    return "image/png", buffer.getvalue()


# ---------------------------------------------------------------- rendering


def render_html(run: RunRecords, *, limit: int | None = None, max_side: int = MAX_SIDE) -> str:
    """The whole page for ``run``; statistics cover every trajectory, cards the first ``limit``."""
    shown = run.trajectories if limit is None else run.trajectories[:limit]
    images = ImageEmbedder(run.root, max_side)
    cards = "\n".join(_card(t, images, open_=len(shown) <= _OPEN_UP_TO) for t in shown)
    body = f"{_header(run, len(shown))}\n<main>\n{cards}\n</main>"
    return page(f"codedance view: {run.source}", body)


def _header(run: RunRecords, shown: int) -> str:
    stats = run_stats(run.trajectories)
    limited = (
        f" (the first {shown} of {stats.count} are shown below)" if shown < stats.count else ""
    )
    parts = [
        f"<header><h1>codedance run</h1><div class='muted mono'>{escape(str(run.source))}</div>",
        f"<div class='stats'>{_stat_boxes(stats)}</div>",
        f"<div class='muted'>stop reasons: {escape(_counts(stats.stops))}{escape(limited)}</div>",
        _broken(run.broken),
        _summary_json(run.summary),
        _system_prompts(run.trajectories),
        "</header>",
        filter_bar(),
    ]
    return "\n".join(p for p in parts if p)


def _stat_boxes(stats: RunStats) -> str:
    def box(value: str, label: str) -> str:
        return f"<div class='stat'><b>{escape(value)}</b><span>{escape(label)}</span></div>"

    accuracy = _pct(stats.passed, stats.scored) if stats.scored else "n/a"
    success = "n/a" if stats.call_success_rate is None else f"{stats.call_success_rate:.0%}"
    boxes = [
        box(str(stats.count), "trajectories"),
        box(accuracy, f"accuracy ({stats.passed}/{stats.scored} scored pass)"),
        box(_pct(stats.answered, stats.count), "gave an answer"),
        box(f"{stats.calls_per_trajectory:.2f}", "tool calls per trajectory"),
        box(success, "tool calls that ran cleanly"),
        box(f"{stats.mean_tokens:,.0f}", "tokens per trajectory"),
        box(f"{stats.mean_duration_s:.1f} s", "time per trajectory"),
    ]
    # components and the total; their sub-scores ("bat.difficulty") stay in each trajectory
    components = {k: v for k, v in stats.mean_rewards.items() if "." not in k}
    boxes += [box(f"{mean:.3f}", f"mean reward: {key}") for key, mean in components.items()]
    return "".join(boxes)


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def _broken(broken: list[tuple[int, str]]) -> str:
    if not broken:
        return ""
    rows = "".join(f"<li>line {n}: {escape(why)}</li>" for n, why in broken)
    return f"<h2>Unreadable lines ({len(broken)})</h2><ul class='problem'>{rows}</ul>"


def _summary_json(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""
    rows = [
        (key, value if isinstance(value, str) else json.dumps(value, indent=1))
        for key, value in summary.items()
    ]
    return f"<details><summary>summary.json</summary>{table(rows)}</details>"


def _system_prompts(trajectories: Iterable[Trajectory]) -> str:
    """Each distinct system prompt once, instead of once per trajectory."""
    prompts = list(dict.fromkeys(t.system for t in trajectories if t.system))
    return "".join(
        f"<details><summary>system prompt {i + 1} of {len(prompts)}</summary>{pre(text)}</details>"
        for i, text in enumerate(prompts)
    )


def _card(t: Trajectory, images: ImageEmbedder, *, open_: bool) -> str:
    v = verdict(t)
    search = f"{t.task.id} {t.task.question}".lower()
    rewards = ", ".join(f"{k} {val:.3g}" for k, val in t.rewards.items()) or "no rewards"
    tokens = t.prompt_tokens + t.completion_tokens
    brief = (
        f"{t.stop} · {rewards} · {t.tool_calls} calls · {tokens:,} tokens · {t.duration_s:.1f} s"
    )
    head = (
        f"<summary><span class='badge b-{v}'>{v.upper()}</span> <b>{escape(t.task.id)}</b>"
        f" <span class='muted'>· {escape(brief)}</span></summary>"
    )
    inputs = "".join(images.figure(p, f"input: {p}") for p in t.input_images)
    body = [
        table(_facts(t)),
        f"<div class='images'>{inputs}</div>" if inputs else "",
        f"<details><summary>prompt</summary>{pre(t.prompt.content_text)}</details>",
        *(_turn(turn, images) for turn in t.turns),
    ]
    return (
        f'<details class="traj v-{v}" id="{anchor(t.task.id)}" data-verdict="{v}"'
        f' data-search="{escape(search)}"'
        f'{" open" if open_ else ""}>{head}<div class="body">{"".join(body)}</div></details>'
    )


def anchor(task_id: str) -> str:
    """The HTML id of a task's card, so reports can link to ``view.html#<anchor>``."""
    return "task-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)


def _facts(t: Trajectory) -> list[tuple[str, str]]:
    model_s = sum(turn.model_s for turn in t.turns)
    sandbox_s = sum(turn.sandbox_s for turn in t.turns)
    rows = [
        ("task", t.task.id),
        ("question", t.task.question),
        ("options", "\n".join(t.task.options or [])),
        (
            "ground truth",
            f"{t.task.answer}  ({t.task.answer_type})" if t.task.answer is not None else "",
        ),
        ("final answer", "(none)" if t.answer is None else t.answer),
        ("rewards", ", ".join(f"{k} = {val:g}" for k, val in t.rewards.items())),
        ("stop", t.stop + (f": {t.error}" if t.error else "")),
        ("framework failure", f"{t.failure}: not the model's, not scored" if t.failure else ""),
        (
            "attempts",
            f"{t.attempts} (the framework failed the earlier ones)" if t.attempts > 1 else "",
        ),
        (
            "tool calls",
            f"{t.tool_calls} ({t.successful_calls} ran cleanly, {t.failed_calls} failed)",
        ),
        ("tokens", f"{t.prompt_tokens:,} prompt, {t.completion_tokens:,} completion"),
        ("time", f"{t.duration_s:.2f} s (model {model_s:.2f} s, sandbox {sandbox_s:.2f} s)"),
        ("run by", " / ".join(x for x in (t.model, t.protocol, t.sandbox) if x)),
    ]
    return [(key, value) for key, value in rows if value]


def _turn(turn: Turn, images: ImageEmbedder) -> str:
    parsed = turn.parsed
    kind = _kind(parsed)
    meta = (
        f"{turn.prompt_tokens:,}+{turn.completion_tokens:,} tokens · model {turn.model_s:.2f} s"
        f" · finish {turn.finish_reason}"
        + (f" · {parsed.call_format}" if parsed.call_format else "")
        + (f" · {parsed.extra_blocks} extra blocks ignored" if parsed.extra_blocks else "")
    )
    parts = [
        f"<section class='turn'><h4>Turn {turn.index} · {escape(kind)} "
        f"<span class='muted'>· {escape(meta)}</span></h4>",
        f"<div class='thought'>{escape(parsed.thought)}</div>" if parsed.thought.strip() else "",
        pre(parsed.code, "code") if parsed.code is not None else "",
        f"<div class='answer'>answer: {escape(parsed.answer)}</div>"
        if parsed.answer is not None
        else "",
        f"<div class='problem'>malformed: {escape(parsed.problem)}</div>" if parsed.problem else "",
    ]
    shown: set[str] = set()
    if turn.execution is not None:
        parts.append(_execution(turn.execution, images, shown))
    if turn.observation is not None:
        parts.append(_observation(turn.observation.parts, images, shown))
    parts.append(
        f"<details><summary>raw model output</summary>{pre(turn.assistant)}</details></section>"
    )
    return "".join(parts)


def _kind(parsed: Parsed) -> str:
    if parsed.code is not None:
        return "code"
    if parsed.answer is not None:
        return "answer"
    return "malformed" if parsed.problem else "no action"


def _execution(record: dict[str, Any], images: ImageEmbedder, shown: set[str]) -> str:
    error = record.get("error") or {}
    failed = bool(error or record.get("timed_out") or record.get("session_died"))
    truncated = ", ".join(record.get("truncated") or [])
    parts = [
        f"<div class='exec{' failed' if failed else ''}'><div class='label'>execution · "
        f"{escape(_outcome(record))}</div>",
        labelled("stdout", record.get("stdout"), ""),
        labelled("stderr", record.get("stderr"), "stderr"),
        f"<div class='muted'>output cut: {escape(truncated)}</div>" if truncated else "",
        _error(error) if error else "",
        f"<div class='muted'>files: {escape(', '.join(record['files']))}</div>"
        if record.get("files")
        else "",
        _exec_images(record.get("images") or [], images, shown),
        "</div>",
    ]
    return "".join(parts)


def _outcome(record: dict[str, Any]) -> str:
    error = record.get("error") or {}
    if record.get("timed_out"):
        words = "timed out"
    elif record.get("session_died"):
        words = "the session died"
    elif error:
        words = f"raised {error.get('type', 'an error')}"
    else:
        words = "ran cleanly"
    restored = f", state {record['restored']}" if record.get("restored") else ""
    return f"{words} in {float(record.get('duration_s', 0.0)):.2f} s{restored}"


def _exec_images(entries: list[Any], images: ImageEmbedder, shown: set[str]) -> str:
    """Saved images by path; unsaved ones (described by size only) as a note."""
    figures = []
    for entry in entries:
        if isinstance(entry, str):
            shown.add(entry)
            figures.append(images.figure(entry, f"output: {entry}"))
        elif isinstance(entry, dict):
            size = f"{entry.get('width', '?')}x{entry.get('height', '?')} {entry.get('mode', '')}"
            figures.append(placeholder(f"image not saved ({size}, {entry.get('source', '')})"))
    return f"<div class='images'>{''.join(figures)}</div>" if figures else ""


def _observation(parts: list[Part], images: ImageEmbedder, shown: set[str]) -> str:
    """What was sent back; images already shown with the execution are not repeated."""
    figures = [
        images.figure(p.path, f"sent back: {p.path}")
        for p in parts
        if p.type == "image" and p.path and p.path not in shown
    ]
    text = "".join(p.text for p in parts if p.type == "text")
    return (
        "<div class='label'>observation sent back</div>"
        + pre(text, "obs")
        + (f"<div class='images'>{''.join(figures)}</div>" if figures else "")
    )


def _error(error: dict[str, Any]) -> str:
    headline = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    traceback = error.get("traceback")
    return f"<div class='problem'>{escape(headline)}</div>" + (
        pre(traceback, "traceback") if traceback else ""
    )


# ---------------------------------------------------------------- entry points


def default_output(out: Path) -> Path:
    """``OUT/view.html`` for a folder; ``<name>.html`` beside a ``.jsonl`` file."""
    return out / "view.html" if out.is_dir() else out.with_suffix(".html")


def write_view(
    out: Path, output: Path | None = None, *, limit: int | None = None, max_side: int = MAX_SIDE
) -> Path:
    """Render the run at ``out`` to ``output`` (default :func:`default_output`) and return it."""
    html = render_html(load_run(out), limit=limit, max_side=max_side)
    return save_page(html, output or default_output(out))


def save_page(html: str, target: Path) -> Path:
    """Write a rendered page to ``target`` (its folder made) and return ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # backslashreplace: undecodable bytes of the sandbox's output (lone surrogates) show
    # as escapes instead of failing the page; the JSONL keeps them exactly.
    target.write_text(html, encoding="utf-8", errors="backslashreplace")
    return target
