"""is_equivalent and extraction against real data: public graders' labelled cases, MATH, GSM8K.

Skipped where /work/shared/data is absent (the package never reads it at run time).
"""

import json
import os
from pathlib import Path

import pytest

from metamath_ray.answers import extract_answer, extract_boxed, extract_gsm8k_gold, is_equivalent, warm_up

DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))
PEER = DATA / "peer_grader_cases" / "cases.jsonl"

# Deliberate disagreements on `borderline` rows (the verdict rests on a convention we reject):
CONVENTION_DISAGREEMENTS = {
    "mathverify-006": "decimal comma: 1000,99 is not read as 1000.99",
    "mathverify-007": "decimal comma",
    "mathverify-015": "decimal comma",
    "mathverify-030": "malformed pred with a stray \\$",
    "mathverify-083": "x \\approx 11 is not the exact answer 11",
    "mathverify-103": "a truncated decimal of 1/12 is not 1/12 (exact rule)",
    "mathverify-110": "0.33 is not 1/3 (exact rule)",
    "mathverify-116": "2.6667 is not 8/3 (exact rule)",
    "mathverify-120": "{1,3} is a set, (1,3) an ordered pair",
    "mathverify-129": "doubled backslashes (\\\\le) are not LaTeX",
    "mathverify-130": "doubled backslashes (\\\\le) are not LaTeX",
    "mathverify-131": "a 15-digit decimal is not sqrt(17) (exact rule)",
    "mathverify-136": "|z| inequality vs a union of intervals",
    "mathverify-155": "garbled gold; W(n) vs W(x)",
    "lighteval-003": "'C Cecile' without parentheses is not read as a choice",
    "hendrycks-002": "bare lists are unordered (Hendrycks compares them in order)",
    "hendrycks-004": "doubled backslash in gold",
    "hendrycks-009": "bare lists are unordered",
}
# Non-borderline rows we still get wrong (False, the safe side), with the reason:
KNOWN_MISSES = {
    "mathverify-100": "unevaluated matrix sum in the prediction is not evaluated",
    "mathverify-101": "unevaluated matrix product in the prediction is not evaluated",
    "mathverify-193": "\\sum is refused by the symbolic guard",
}


def _peer_rows():
    if not PEER.exists():
        return []
    return [json.loads(line) for line in PEER.open()]


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up()


@pytest.mark.skipif(not PEER.exists(), reason="shared data not available")
@pytest.mark.parametrize("row", [pytest.param(r, id=r["id"]) for r in _peer_rows()])
def test_peer_grader_case(row):
    got = is_equivalent(row["pred"], row["gold"])
    if row["id"] in CONVENTION_DISAGREEMENTS:
        assert row.get("borderline"), "disagreements are allowed on borderline rows only"
        assert got is not row["equivalent"], "listed disagreement now agrees: remove it from the list"
    elif row["id"] in KNOWN_MISSES:
        assert got is False and row["equivalent"] is True
    else:
        assert got is row["equivalent"]


@pytest.mark.skipif(not (DATA / "math" / "test.jsonl").exists(), reason="shared data not available")
def test_math_test_boxed_answer_matches_gold_for_every_row():
    rows = [json.loads(line) for line in (DATA / "math" / "test.jsonl").open()]
    wrong = [r["unique_id"] for r in rows if not is_equivalent(extract_boxed(r["solution"]), r["answer"])]
    assert wrong == []


@pytest.mark.skipif(not (DATA / "math" / "test500.jsonl").exists(), reason="shared data not available")
def test_math500_answer_equals_itself_with_delimiters():
    rows = [json.loads(line) for line in (DATA / "math" / "test500.jsonl").open()]
    wrong = [r["answer"] for r in rows if not is_equivalent("$\\boxed{" + r["answer"] + "}$", r["answer"])]
    assert wrong == []


@pytest.mark.skipif(not (DATA / "gsm8k" / "train.jsonl").exists(), reason="shared data not available")
def test_gsm8k_train_extract_answer_returns_gold():
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "train.jsonl").open()]
    wrong = [r["answer"][-60:] for r in rows
             if not is_equivalent(extract_answer(r["answer"]) or "", extract_gsm8k_gold(r["answer"]))]
    assert wrong == []


@pytest.fixture(autouse=True)
def _verdicts_not_timing(monkeypatch):
    """These tests check verdicts. A loaded CI box can stretch a 0.25 s comparison past the 0.9 s
    per-call budget, which then (correctly, conservatively) says False; the budget itself is
    tested in test_answers_robustness.py, so give verdict tests room here."""
    from metamath_ray.answers import equivalence

    monkeypatch.setattr(equivalence, "TIME_BUDGET_S", 10.0)


_SOUP = ("whe", "ook", "disindraw", "perimeter", "will", "ThereidThe", "gravelve", "nowcils", "anut", "swall")


@pytest.mark.skipif(not (DATA / "math" / "test.jsonl").exists(), reason="shared data not available")
def test_junk_around_every_real_gold_is_never_equal():
    """Issue 16's junk category on real golds (GSM8K test, MATH500): soup around the gold, a
    number gold inside a word, binary noise, long soup ending in the gold. Zero may be equal."""
    golds = [extract_gsm8k_gold(json.loads(line)["answer"]) for line in (DATA / "gsm8k" / "test.jsonl").open()]
    golds += [json.loads(line)["answer"] for line in (DATA / "math" / "test500.jsonl").open()]
    equal = []
    for i, gold in enumerate(golds):
        soup = " ".join(_SOUP[(i + k) % len(_SOUP)] for k in range(3))
        junks = [f"{soup} {gold} {soup}", f"\x00\x01{gold}\ufffd", f"{soup} " * 8 + gold]
        if gold.lstrip("-").replace(".", "", 1).isdigit():
            junks.append(f"row{gold}")  # ("rowx = 4" for "x = 4" is an equation, not junk)
        equal += [(junk, gold) for junk in junks if is_equivalent(junk, gold)]
    assert equal == []
