"""Report sections about how a run was made: grader, data problems, tasks, paper numbers.

:mod:`codedance.evaluation.report` renders the accuracy tables; this module renders
what makes a number trustworthy and reproducible, in markdown and HTML:

* **Scoring**: which grader decided (the ported official rule, a rule-based stand-in
  for an LLM grader, or the LLM judge) and the manifest's key facts;
* **Data problems**: every row skipped and every reference scored by the fallback
  (:mod:`codedance.evaluation.problems`);
* **Paper vs this run**: the paper's reported number beside ours;
* **Tasks** (HTML only): each task linked to its card in ``view.html``
  (``codedance view`` writes it; the anchor is :func:`codedance.runtime.viewer.anchor`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from codedance.evaluation.problems import DataProblem

__all__ = ["VIEW_PAGE", "manifest_lines", "problems_html", "problems_lines", "task_links_html"]

VIEW_PAGE = "view.html"
_SHOWN = 200  # problems listed in full; the rest are counted


def manifest_lines(manifest: Mapping[str, Any]) -> list[str]:
    """The scorer and the run's settings, as markdown lines (empty without a manifest)."""
    if not manifest:
        return []
    scorer = manifest.get("scorer", {})
    files = manifest.get("dataset_files", [])
    listed = ", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]}…)" for f in files[:5])
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    return [
        "",
        "Scoring and settings:",
        "",
        f"- scorer: {scorer.get('mode', '?')}; grader: {scorer.get('grader', '?')}",
        f"- model: {manifest.get('model')} (endpoint {manifest.get('endpoint') or '-'}), "
        f"protocol {manifest.get('protocol')}, max turns {manifest.get('max_turns')}, "
        f"max pixels {manifest.get('image_max_pixels')}",
        f"- codedance {manifest.get('codedance_version')}; data {manifest.get('data')}: "
        f"{listed or 'no data files'}{more} (all in report.json)",
    ]


def problems_lines(problems: Sequence[DataProblem]) -> list[str]:
    """The "Data problems" section as markdown lines (says "none" when there are none)."""
    lines = ["", f"Data problems ({len(problems)}):", ""]
    if not problems:
        return [*lines, "None: every row loaded and every reference was read by its rule."]
    lines += ["| where | action | reason |", "|---|---|---|"]
    lines += [f"| {_cell(p.where)} | {p.action} | {_cell(p.reason)} |" for p in problems[:_SHOWN]]
    if len(problems) > _SHOWN:
        lines.append(f"\n... and {len(problems) - _SHOWN} more (report.json lists them all).")
    return lines


def problems_html(problems: Sequence[DataProblem]) -> str:
    """The "Data problems" section as HTML."""
    head = f"<h2>Data problems ({len(problems)})</h2>"
    if not problems:
        return head + "<p>None: every row loaded and every reference was read by its rule.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(p.where)}</td><td>{html.escape(p.action)}</td>"
        f"<td style='text-align:left'>{html.escape(p.reason)}</td></tr>"
        for p in problems[:_SHOWN]
    )
    return f"{head}<table><tr><th>where</th><th>action</th><th>reason</th></tr>{rows}</table>"


def task_links_html(results: Sequence[tuple[str, float]]) -> str:
    """Each task id linked to its trajectory card in ``view.html``, with its score."""
    from codedance.runtime.viewer import anchor

    if not results:
        return ""
    items = "".join(
        f'<li><a href="{VIEW_PAGE}#{anchor(task_id)}">{html.escape(task_id)}</a> '
        f"{'✓' if score >= 1.0 else '✗'} {score:.2f}</li>"
        for task_id, score in results
    )
    return (
        f"<details><summary>Tasks ({len(results)}): each links to its trajectory in "
        f"{VIEW_PAGE} (<code>codedance view</code>)</summary><ul>{items}</ul></details>"
    )


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:300]
