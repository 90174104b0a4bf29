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

__all__ = [
    "VIEW_PAGE",
    "common_tasks_lines",
    "manifest_html",
    "manifest_lines",
    "problems_html",
    "problems_lines",
    "task_links_html",
]

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


def manifest_html(manifest: Mapping[str, Any]) -> str:
    """The scorer and the run's settings as an HTML list (empty without a manifest)."""
    lines = manifest_lines(manifest)[3:]
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line[2:].replace('`', ''))}</li>" for line in lines)
    return f"<h2>Scoring and settings</h2><ul>{items}</ul>"


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


def common_tasks_lines(first: Any, second: Any, a: str, b: str) -> list[str]:
    """For two runs over different task sets (subsets, limits, benchmarks): what is shared.

    The per-category table compares each run on its own tasks; this adds the counts,
    each run's scorer, and the accuracy of both on the tasks they both ran, the only
    like-for-like number when the sets differ.
    """
    x, y = dict(first.results), dict(second.results)
    shared = [task for task in x if task in y]
    lines = ["", f"Tasks: {a} {len(x)}, {b} {len(y)}, in both {len(shared)}."]
    scorers = [run.manifest.get("scorer", {}).get("mode") for run in (first, second)]
    if scorers[0] != scorers[1]:
        lines.append(f"Scorers differ: {a} {scorers[0] or '?'}, {b} {scorers[1] or '?'}.")
    if shared and (len(shared) < len(x) or len(shared) < len(y)):
        left = 100.0 * sum(x[t] for t in shared) / len(shared)
        right = 100.0 * sum(y[t] for t in shared) / len(shared)
        lines.append(
            f"On the {len(shared)} tasks in both: {a} {left:.1f}%, {b} {right:.1f}% "
            f"(delta {right - left:+.1f})."
        )
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:300]
