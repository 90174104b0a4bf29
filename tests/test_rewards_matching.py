"""codedance.rewards.score_answer and extract_answer: the case table, extraction, errors.

Every row of tests/data/answer_cases.jsonl is one test. ChartQA scoring is also
checked against pix2struct's ``relaxed_correctness``, re-typed below as the
reference, on the table and on a grid of synthetic pairs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from codedance.core.errors import CodedanceError, MissingDependencyError
from codedance.rewards import (
    ANSWER_TYPES,
    InvalidAnswerError,
    UnknownAnswerTypeError,
    extract_answer,
    relaxed_correctness,
    score_answer,
)
from codedance.rewards.numbers import Number, parse_number, pick_number

CASES_PATH = Path(__file__).parent / "data" / "answer_cases.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in CASES_PATH.read_text(encoding="utf-8").splitlines() if line
]


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['type']}:{case['note'][:50]}"


def _score(case: dict[str, Any]) -> float:
    return score_answer(
        case["prediction"], case["answer"], case["type"], options=case.get("options")
    )


# --- the case table ------------------------------------------------------------------


def test_case_table_is_large_and_covers_every_type() -> None:
    assert len(CASES) >= 200
    assert {case["type"] for case in CASES} == set(ANSWER_TYPES)
    for case in CASES:
        assert set(case) <= {"prediction", "answer", "type", "expected", "note", "options"}
        assert case["expected"] in (0.0, 1.0)
        assert case["note"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(case: dict[str, Any]) -> None:
    assert _score(case) == case["expected"], case["note"]


# --- ChartQA against the official function -------------------------------------------


# Reference: pix2struct/metrics.py `relaxed_correctness` (google-research/pix2struct,
# commit 5b086ef), re-typed here unchanged in behaviour to check agreement with ours.
def reference_relaxed_correctness(
    target: str, prediction: str, max_relative_change: float = 0.05
) -> bool:
    def _to_float(text: str) -> float | None:
        try:
            if text.endswith("%"):
                # Convert percentages to floats.
                return float(text.rstrip("%")) / 100.0
            else:
                return float(text)
        except ValueError:
            return None

    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    else:
        return prediction.lower() == target.lower()


CHARTQA_CASES = [case for case in CASES if case["type"] == "chartqa"]
TARGETS = ["0", "0.0", "1", "10", "36", "-5.2", "2018", "0.5", "50%", "12.5%", "1e2"]
TARGETS += ["Asia", "yes", "No", "1,000", "inf", "nan", "", "%"]
FACTORS = [1.0, 0.94, 0.949, 0.95, 0.951, 1.049, 1.05, 1.051, 1.06, -1.0, 0.0]


def _grid_predictions(target: str) -> list[str]:
    value = _reference_float(target)
    numbers = [] if value is None else [repr(value * f) for f in FACTORS]
    percents = [] if value is None else [f"{value * 100 * f!r}%" for f in FACTORS]
    texts = [target, target.upper(), target.lower(), target + "%", "asia", "YES", "0", "n/a"]
    return numbers + percents + texts


def _reference_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


GRID = [(t, p) for t in TARGETS for p in _grid_predictions(t)]


@pytest.mark.parametrize("case", CHARTQA_CASES, ids=_case_id)
def test_chartqa_case_agrees_with_the_reference(case: dict[str, Any]) -> None:
    """On the extracted answer, score_answer('chartqa') is the official function.

    The reference is read both as written and, like the extracted prediction, without
    a trailing full stop (so "The answer is U.S." answers "U.S.").
    """
    gold, pred = case["answer"].strip(), extract_answer(case["prediction"])
    golds = {gold, gold[:-1].rstrip() if gold.endswith(".") and not gold.endswith("..") else gold}
    expected = any(reference_relaxed_correctness(g, pred) for g in golds if g)
    assert _score(case) == float(expected)


def test_relaxed_correctness_agrees_with_the_reference_on_a_grid() -> None:
    assert len(GRID) > 300
    disagreements = [
        (t, p) for t, p in GRID if relaxed_correctness(t, p) != reference_relaxed_correctness(t, p)
    ]
    assert disagreements == []


def test_chartqa_score_agrees_with_the_reference_on_plain_spans() -> None:
    """Plain spans pass through extraction unchanged, so the scores are the reference's."""
    plain = [(t, p) for t, p in GRID if t and p and extract_answer(p) == p]
    assert len(plain) > 300
    for target, prediction in plain:
        expected = float(reference_relaxed_correctness(target, prediction))
        assert score_answer(prediction, target, "chartqa") == expected, (target, prediction)


def test_chartqa_boundaries() -> None:
    assert score_answer("10.49", "10", "chartqa") == 1.0  # 4.9%
    assert score_answer("10.51", "10", "chartqa") == 0.0  # 5.1%
    assert score_answer("0.5", "50%", "chartqa") == 1.0
    assert score_answer("0.0", "0", "chartqa") == 0.0  # target 0: string equality


# --- extraction ----------------------------------------------------------------------

EXTRACTIONS = [
    ("<think>x</think><answer>42</answer>", "42"),
    ("<answer>1</answer> then <answer> $\\frac{1}{2}$ </answer>", "\\frac{1}{2}"),
    ("<ANSWER>7</ANSWER>", "7"),
    ("<answer>unclosed", "<answer>unclosed"),
    ("<answer>\\boxed{5}</answer>", "5"),
    ("\\boxed{1} ... <answer>2</answer>", "2"),
    ("so \\boxed{\\frac{\\sqrt{2}}{2}}.", "\\frac{\\sqrt{2}}{2}"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{3} and \\boxed{4", "3"),
    ("\\fbox{9}", "9"),
    ("The answer is 3.5.", "3.5"),
    ("The answer is (B) Paris. Because x", "(B) Paris"),
    ("the final answer is: 12", "12"),
    ("**Answer:** 12", "12"),
    ("Answer:\n  yes", "yes"),
    ("First answer: 1. Final Answer: $x=2$", "x=2"),
    ("<answer>The answer is 5.</answer>", "5"),
    ("<answer>Apple Inc.</answer>", "Apple Inc."),
    ("<answer>\\text{Monday}</answer>", "Monday"),
    ("$$12$$", "12"),
    ("\\(x\\)", "x"),
    ("\\[x+1\\]", "x+1"),
    ("$5 and $6", "$5 and $6"),
    ("`B`", "B"),
    ("  7.  ", "7"),
    ("", ""),
]


@pytest.mark.parametrize(("response", "expected"), EXTRACTIONS)
def test_extract_answer(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


def test_reference_answers_are_unwrapped() -> None:
    assert score_answer("12", "\\boxed{12}", "number") == 1.0
    assert score_answer("12", "$12$", "math") == 1.0
    assert score_answer("yes", "<answer>Yes</answer>", "yes_no") == 1.0


def test_a_reference_is_not_searched_for_answer_phrases() -> None:
    assert score_answer("Answer: Paris", "Answer: Paris", "text") == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000", Number(1000.0)),
        ("\\$5", Number(5.0)),
        ("50\\%", Number(50.0, percent=True)),
        ("\\dfrac12", Number(0.5)),
        ("2.5 \\times 10^{3}", Number(2500.0)),
        ("twenty-one", Number(21.0)),
        ("5 \\text{cm}^2", Number(5.0)),
        ("2x", None),
        ("2\\sqrt{2}", None),
        ("1,5", None),
    ],
)
def test_parse_number(text: str, expected: Number | None) -> None:
    assert parse_number(text) == expected


def test_pick_number_prefers_the_first_marked_and_the_last_unmarked_number() -> None:
    assert pick_number("6 (2 rows of 3)", marked=True) == Number(6.0)
    assert pick_number("2 rows of 3 make 6", marked=False) == Number(6.0)
    assert pick_number("2 x 3 = 6 apples", marked=True) == Number(6.0)


# --- API and errors ------------------------------------------------------------------


def test_unknown_answer_type_names_the_value_and_the_valid_types() -> None:
    with pytest.raises(UnknownAnswerTypeError) as raised:
        score_answer("1", "1", "integer")
    message = str(raised.value)
    assert "'integer'" in message
    assert all(name in message for name in ANSWER_TYPES)
    assert isinstance(raised.value, CodedanceError)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("answer", "answer_type"),
    [
        ("", "text"),
        ("  ", "math"),
        ("no box here", "box"),
        ("3.5", "count"),
        ("maybe", "yes_no"),
        ("many", "number"),
    ],
)
def test_unreadable_reference_raises(answer: str, answer_type: str) -> None:
    with pytest.raises(InvalidAnswerError, match=answer_type):
        score_answer("1", answer, answer_type)


def test_choice_reference_beyond_the_options_raises() -> None:
    with pytest.raises(InvalidAnswerError, match="one of 2 options"):
        score_answer("A", "C", "multiple_choice", options=["x", "y"])


def test_math_without_math_verify_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "math_verify", None)
    with pytest.raises(MissingDependencyError, match=r"codedance\[rewards\]"):
        score_answer("1", "1", "math")
    assert score_answer("1", "1", "number") == 1.0


def test_iou_threshold_is_validated_and_used() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        score_answer("[0,0,1,1]", "[0,0,1,1]", "box", iou_threshold=0)
    half = ("[0, 0, 10, 10]", "[5, 0, 15, 10]")  # IoU 1/3
    assert score_answer(*half, "box") == 0.0
    assert score_answer(*half, "box", iou_threshold=0.3) == 1.0


def test_scores_are_floats() -> None:
    for case in CASES[:20]:
        assert type(_score(case)) is float


# --- import weight and threads -------------------------------------------------------


def test_importing_rewards_does_not_import_sympy_or_math_verify() -> None:
    code = (
        "import sys, codedance.rewards; "
        "print(sorted(m for m in ('sympy', 'math_verify') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


MATH_CASES = [case for case in CASES if case["type"] == "math"]


def test_math_scoring_works_from_worker_threads() -> None:
    """math-verify's SIGALRM timeouts are off away from the main thread, not an error."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        scores = list(pool.map(_score, MATH_CASES))
    assert scores == [case["expected"] for case in MATH_CASES]


def test_costly_math_is_skipped_quickly_off_the_main_thread() -> None:
    result: list[float] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: result.append(_tower()))
    worker.start()
    worker.join(timeout=30)
    assert result == [0.0]
    assert time.monotonic() - start < 3


def _tower() -> float:
    return score_answer("10^{10^{10}}", "1", "math")


def test_math_scoring_keeps_a_pending_alarm() -> None:
    """A caller's own SIGALRM timer is neither cancelled nor replaced."""
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    try:
        assert score_answer("\\sqrt{8}", "2\\sqrt{2}", "math") == 1.0
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
        assert signal.getsignal(signal.SIGALRM) is handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


def test_every_answer_type_has_a_row_scoring_one_and_a_row_scoring_zero() -> None:
    for answer_type, expected in product(ANSWER_TYPES, (0.0, 1.0)):
        assert any(c["type"] == answer_type and c["expected"] == expected for c in CASES)
