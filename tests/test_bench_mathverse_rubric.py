"""MathVerse's rule-based stand-in on the worked examples of MathVerse's own GPT judge prompt.

The official scorer (``evaluation/score_answer_s2.py`` of github.com/ZrrSkywalker/MathVerse,
commit 937b090) asks GPT whether the extracted answer matches the standard answer, with
five worked examples in ``evaluation/prompts.py`` (``demo_prompt_score``). The stand-in
must give their judgements, on rows loaded the way the real records are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codedance.plugins.benchmarks.mathverse import MathVerse
from codedance.runtime.types import Message, Trajectory

CIRCLE = (
    "As shown in the figure, circle O has a radius 1.0, if angle BAC = 60.0, then the length "
    "of BC is ()\nChoices:\nA:2\nB:2\u221a{3}\nC:\u221a{3}\nD:2\u221a{2}"
)
ELLIPSE = (
    "Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at "
    "3 and -3, determine its equation.A. \\frac{x^2}{81} + \\frac{y^2}{9} = 1 B. Can not "
    "determine.\n"
)
# (question, question_type, standard answer, model answer, the prompt's judgement)
EXAMPLES = [
    ("Write the set of numbers represented on the number line in interval notation.",
     "free-form", "(-2,1]", "Extracted Answer: \\((-2, 1)\\)", 0),
    (CIRCLE, "multi-choice", "C", "B:2\u221a{3}", 0),
    ("Find the domain and range of the function f using interval notation.", "free-form",
     "domain: [-4, 0) and range: (-3, 1]", "Range: \\((-4, 1]\\)", 0),
    (CIRCLE, "multi-choice", "C", "null", 0),
    (ELLIPSE, "multi-choice", "A", "\\frac{x^2}{81} + \\frac{y^2}{9} = 1", 1),
]  # fmt: skip


def row(index: int, question: str, kind: str, answer: str) -> dict:
    """A Text Only row in the published schema."""
    return {
        "sample_index": str(index),
        "problem_index": str(index),
        "problem_version": "Text Only",
        "question": question,
        "image": "",
        "answer": answer,
        "question_type": kind,
        "metadata": {"split": "testmini", "source": "x", "subject": "y", "subfield": "z"},
        "query_wo": question,
        "query_cot": question,
    }


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_stand_in_judges_each_worked_example_as_the_prompt_does(tmp_path: Path, index: int):
    question, kind, gold, model_answer, judgement = EXAMPLES[index]
    rows = [row(index, question, kind, gold)]
    (tmp_path / "testmini_text_only.json").write_text(json.dumps(rows), encoding="utf-8")
    bench = MathVerse(tmp_path, {"versions": ["Text Only"]})
    (task,) = bench.tasks(tmp_path / "images")
    trajectory = Trajectory(task, "", Message.text("user", "q"), answer=model_answer)
    assert bench.score(trajectory) == judgement
