"""Hostile responses against both scorers (hypothesis): neither raises, each call is bounded in time,
and the "metamath" scorer gives the verdict of MetaMath's own code (run verbatim as the oracle in
`tests/unit/metamath_upstream.py`), crash for crash."""

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metamath_ray.answers import warm_up_once
from metamath_ray.evaluate import metamath_compat as mm
from metamath_ray.evaluate.scoring import SCORE_COLUMNS, score_response
from tests.unit import metamath_upstream as upstream

MARKER = "The answer is: "
MAX_CHARS = 110_000  # past 100 KB

ATOMS = st.sampled_from([
    MARKER, "The answer is:", "\\boxed{", "\\boxed", "\\fbox{", "{", "}", "\\frac", "\\dfrac", "\\sqrt", "/",
    "0", "00", "/0", "/00", "-", "+", ",", ".", ".\n", "\n", "%", "\\%", "\\$", "\\text{ ", "\\text{ cm}", "=",
    "x = ", "\\left(", "\\right)", "^\\circ", "####", "\\\\", "\\!", " ", "\t", "\x00", "\x1b", "\x7f",
    "\u200b", "\u2212", "\u0661", "\u00b2", "e", "x", "a/b",
])
NUMBERS = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.integers(1, 600).map(lambda n: "9" * n),  # past float range from 309 digits
    st.floats(allow_nan=False).map(repr),
    st.fractions().map(str),
)


def _repeat(piece_and_count: tuple[str, int]) -> str:
    """Deep braces, repeated markers, 100 KB runs, without building anything bigger first."""
    piece, count = piece_and_count
    return piece * min(count, MAX_CHARS // max(1, len(piece)))


RUNS = st.tuples(st.one_of(ATOMS, NUMBERS), st.integers(1, MAX_CHARS)).map(_repeat)
PIECES = st.one_of(ATOMS, NUMBERS, st.text(max_size=16), RUNS)
RESPONSES = st.lists(PIECES, max_size=8).map("".join)
NUMERIC_GOLDS = st.one_of(st.integers(-(10**6), 10**6).map(str), st.sampled_from(["18", "0", "1/2", "", "x", "1e400"]))
MATH_GOLDS = st.one_of(st.none(), RESPONSES.map(lambda s: s[:200]), st.sampled_from(["\\frac{1}{2}", "50\\%", "a/b"]))
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(kind=st.sampled_from(["numeric", "math"]), response=RESPONSES, gold=MATH_GOLDS, numeric_gold=NUMERIC_GOLDS)
def test_neither_scorer_raises_and_each_call_is_bounded(kind, response, gold, numeric_gold):
    warm_up_once()  # sympy's first import is not the scorer's time
    gold_mm = numeric_gold if kind == "numeric" else gold
    start = time.monotonic()
    scores = score_response(kind, response, gold or "0", gold_mm)
    # the strict scorer's budget is 0.9 s per comparison; generous for a loaded 2-core machine
    assert time.monotonic() - start < 6.0
    assert set(scores) == set(SCORE_COLUMNS)
    assert isinstance(scores["correct_strict"], bool) and isinstance(scores["correct_metamath"], bool)
    # the safety net in scoring._guarded must stay unused: a scorer that raised is a bug
    assert "internal error" not in (scores["score_error"] or "")


def _upstream_gsm8k(response: str):
    try:
        return upstream.extract_answer_number(response)
    except Exception:  # noqa: BLE001 - their script stops here
        return upstream.CRASH


def _ours_gsm8k(response: str):
    try:
        return mm.gsm8k_extract(response)
    except mm.MetaMathCrash:
        return upstream.CRASH


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(response=RESPONSES, gold=st.integers(-50, 50))
def test_gsm8k_prediction_is_upstreams_crash_for_crash(response, gold):
    assert _ours_gsm8k(response) == _upstream_gsm8k(response)
    verdict = mm.gsm8k_verdict(response, str(gold))
    assert (upstream.CRASH if verdict.reason else verdict.correct) == upstream.gsm8k_verdict(response, gold)


@settings(max_examples=200, deadline=None)
@given(
    sign=st.sampled_from(["", "-", "+"]),
    numerator=st.one_of(st.integers(0, 10**6), st.integers(0, 10**330)),
    denominator=st.one_of(st.integers(0, 10**6), st.integers(0, 10**330)),
    zeros=st.integers(0, 3),
)
def test_fractions_follow_the_fraction_package(sign, numerator, denominator, zeros):
    """An "a/b" answer goes through the PyPI fraction package in MetaMath (floats, overflow, "00")."""
    response = f"{MARKER}{sign}{numerator}/{'0' * zeros}{denominator}"
    assert _ours_gsm8k(response) == _upstream_gsm8k(response)


def _near_miss(gold: str) -> st.SearchStrategy[str]:
    """Responses that should often match: the gold rewritten the ways models write answers."""
    return st.sampled_from([
        gold, f" {gold} ", f"{gold}.", gold.replace(" ", ""), f"{gold}%", gold.replace("\\%", "%"),
        gold.replace("\\frac", "\\dfrac"), f"x = {gold}", gold.replace("/", " / "), f"\\left({gold}\\right)",
    ])


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), gold=st.one_of(MATH_GOLDS, NUMBERS), prefix=st.sampled_from(["", "The answer is: 3.\n", "So"]),
       suffix=st.sampled_from(["", ".", ".\nCheck", "\n"]))
def test_math_verdict_is_upstreams(data, gold, prefix, suffix):
    body = data.draw(_near_miss(gold)) if gold is not None else data.draw(RESPONSES)
    for response in (f"{prefix}{MARKER}{body}{suffix}", body):
        assert mm.math_verdict(response, gold).correct is upstream.math_verdict(response, gold)
        assert mm.math_gold(response) == upstream.math_gold(response)
