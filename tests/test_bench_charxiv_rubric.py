"""CharXiv's rule-based stand-in on the 26 worked examples of CharXiv's own grading rubrics.

The official grader is GPT-4o prompted with a rubric per answer kind
(``src/constants.py`` of github.com/princeton-nlp/CharXiv, commit 7ebe88f:
``DESCRIPTIVE_GRADING_ICL`` and ``REASONING_GRADING_INST``); each rubric shows worked
examples (a response, the ground truth, the score GPT must give). The stand-in must give
the same score on every one, reading the whole response as a model would send it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance.plugins.benchmarks.charxiv import CharXivBenchmark
from codedance.runtime.types import Message, Task, Trajectory

# (rubric, rule the loader gives it, response, ground truth, the rubric's score)
EXAMPLES = [
    ("title", "term", 'The title of the plot is "The number of students in each grade".',
     "The variance of students in each grade", 0),
    ("title", "term", "There is no title.", "Not Applicable", 1),
    ("title", "term", "A_v^t", "A^t_v", 1),
    ("ocr", "term", "The answer is 1.0", "1.00", 1),
    ("ocr", "term", "By manually inspecting the plot, the final answer should be 0.",
     "Not Applicable", 0),
    ("ocr", "term", "A_v^t", "A^t_v", 1),
    ("quant", "number", "5", "6", 0),
    ("quant", "number", "0", "Not Applicable", 0),
    ("quant", "number", "4", "4", 1),
    ("bool", "yes_no", "No, there are no intersections.", "no", 1),
    ("bool", "yes_no", "No, all the lines are parallel.", "Yes", 0),
    ("bool", "yes_no", "There are no lines in the plot.", "Not Applicable", 1),
    ("enum", "ordered_terms", "Here are the names of the labels: A, B, C", "B, A, C", 0),
    ("enum", "ordered_terms", "The labels are T56, B33.", "T56,B33,A12", 0),
    ("enum", "ordered_terms", "\\alpha, \\beta, \\gamma^t_v", "\u03b1, \u03b2, \u03b3_v^t", 1),
    ("trend", "phrase", "there is an increase in the data from left to right", "Decreases", 0),
    ("trend", "phrase", "the curves move up and stay constant", "Increases then stabilizes", 1),
    ("trend", "phrase", "Decreases", "Decreases then increases", 0),
    ("layout", "layout", "2 by 3", "3 by 2", 0),
    ("layout", "layout", "the layout is 1 by 1", "1 by 1", 1),
    ("layout", "layout", "there are two rows and three columns", "2 by 3", 1),
    ("reasoning 1", "terms", "There is only one curve that intersects y=\\lambda exactly three "
     "times. The name of the curve is written as P55762.", "P56962", 0),
    ("reasoning 1", "terms", "The letter of the subplot where all bars are above 35 is b.",
     "(b)", 1),
    ("reasoning 2", "phrase", "The red curve is increasing between t=10 and t=25.",
     "increasing then decreasing", 0),
    ("reasoning 2", "phrase", "The interval where the blue curve achieves the maximum value is "
     "[50, 100].", "[50, 100]", 1),
    ("reasoning 3/4", "number", "The value of the red curve at t=10 is 0.012.", "0.01", 0),
    ("reasoning 3/4", "number", "The value of the blue curve at t=50 is 1.5e3.", "1500", 1),
]  # fmt: skip


def score(rule: str, response: str, gold: str) -> float:
    task = Task("t", "q", answer=gold, metadata={"rule": rule})
    trajectory = Trajectory(task, "", Message.text("user", "q"), answer=response)
    return CharXivBenchmark(Path(".")).score(trajectory)


def test_every_worked_example_of_the_rubrics_is_here() -> None:
    """7 descriptive rubrics x 3 examples, and 2 for each reasoning rubric (3 and 4 share)."""
    assert len(EXAMPLES) == 21 + 6
    assert len({(r, resp) for r, _, resp, _, _ in EXAMPLES}) == len(EXAMPLES)


@pytest.mark.parametrize(("rubric", "rule", "response", "gold", "expected"), EXAMPLES)
def test_stand_in_scores_each_rubric_example_as_the_rubric_does(
    rubric: str, rule: str, response: str, gold: str, expected: int
) -> None:
    assert score(rule, response, gold) == expected, rubric
