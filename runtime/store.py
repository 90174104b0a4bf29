"""Run folders: trajectories as JSONL plus image files, safe to kill and resume.

Layout of ``OUT``::

    trajectories.jsonl        one Trajectory.to_json() per line, in completion order
    images/<task>/t<turn>_<n>.png   images the executions produced
    inputs/<task>/<n>.png     the input images as the model saw them (after resizing)
    summary.json              written at the end of a run

A trajectory's images are written before its line, and its line is written with
one ``write`` and flushed, so a killed run leaves only whole trajectories (a
line cut short by the kill is dropped on resume, never duplicated). A task the
framework failed (``Trajectory.failure``) is run again on resume; its new line
supersedes the failed one when the run is read.

Lines are UTF-8 JSON whatever the sandbox returned: a lone surrogate (an
undecodable byte of a file name or of output, as Python's ``surrogateescape``
keeps it) is written as its JSON escape (backslash, ``udcXX``), which reads back as the
same string, so ``os.fsencode`` recovers the original bytes. (One case JSON itself
cannot keep apart: a lone high surrogate right before a lone low one reads back
as the character the pair encodes; undecodable bytes only ever give low ones.)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from codedance.core.errors import CodedanceError
from codedance.runtime.types import Trajectory

__all__ = ["RunWriter", "json_line", "read_trajectories"]

TRAJECTORIES = "trajectories.jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(data: Any) -> str:
    """``data`` as one line of JSON that always encodes as UTF-8 (see the module docstring).

    A raw surrogate can only appear inside a JSON string here (``json.dumps``
    escapes quotes and backslashes), so its ``\\uXXXX`` escape is read back exactly.
    """
    line = json.dumps(data, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


class RunWriter:
    """Appends finished trajectories to ``OUT/trajectories.jsonl``."""

    def __init__(self, out: Path, resume: bool = False) -> None:
        self.out = out
        self.path = out / TRAJECTORIES
        out.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not resume and self.path.stat().st_size:
            raise CodedanceError(
                f"{self.path} already holds trajectories. Fix: pass --resume to continue that "
                f"run, or choose another --out folder."
            )
        self.done: set[str] = _repair_and_read_ids(self.path) if resume else set()
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, trajectory: Trajectory) -> None:
        """Save the images, then the trajectory's line (flushed to disk)."""
        folder = _safe(trajectory.task.id)
        _save_turn_images(self.out, folder, trajectory)
        self._file.write(json_line(trajectory.to_json()) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(trajectory.task.id)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.out / "summary.json"
        path.write_text(json.dumps(summary, indent=2, ensure_ascii=True), encoding="utf-8")
        return path

    def close(self) -> None:
        self._file.close()


def _safe(task_id: str) -> str:
    return _UNSAFE.sub("_", task_id)[:80] or "task"


def _save_turn_images(out: Path, folder: str, trajectory: Trajectory) -> None:
    for turn in trajectory.turns:
        record = turn.record
        if record is None or not record.images or turn.execution is None:
            continue
        paths = []
        for number, image in enumerate(record.images):
            relative = f"images/{folder}/t{turn.index}_{number}.png"
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            image.save(out / relative)
            paths.append(relative)
        turn.execution["images"] = paths
        _link_observation_images(turn, paths)


def _link_observation_images(turn: Any, paths: list[str]) -> None:
    """Observation image parts point at the saved files of the images the model saw."""
    if turn.observation is None:
        return
    shown = turn.execution.get("shown_images", range(len(paths)))
    image_parts = [p for p in turn.observation.parts if p.type == "image"]
    for part, index in zip(image_parts, shown, strict=False):
        part.path = paths[index]


def _repair_and_read_ids(path: Path) -> set[str]:
    """Ids of whole trajectories in ``path``; a torn last line is cut off."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):  # a line cut short by a kill
        with path.open("r+b") as handle:
            handle.truncate(keep)
    ids = set()
    for number, line in enumerate(data[:keep].decode("utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            task_id = str(row["task"]["id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CodedanceError(
                f"{path}:{number} is not a trajectory line; cannot resume"
            ) from None
        if not row.get("failure"):
            ids.add(task_id)
    return ids  # tasks the framework failed (and nothing else) are run again


def _superseded(trajectories: list[Trajectory]) -> list[Trajectory]:
    """Drop the framework-failed attempts of tasks that a resumed run completed later."""
    last = {t.task.id: index for index, t in enumerate(trajectories)}
    return [
        t for index, t in enumerate(trajectories) if t.failure is None or last[t.task.id] == index
    ]


def read_trajectories(path: Path) -> list[Trajectory]:
    """The trajectories of a run folder or a trajectories JSONL file."""
    file = path / TRAJECTORIES if path.is_dir() else path
    if not file.is_file():
        raise CodedanceError(
            f"no trajectories at {file}. Fix: pass a run folder (--out of codedance run)."
        )
    lines = file.read_text(encoding="utf-8").splitlines()
    return _superseded([Trajectory.from_json(json.loads(line)) for line in lines if line.strip()])
