"""MetaMath's scoring quirks, reproduced: recorded responses with the verdicts their scripts give."""

import re

import pytest

from metamath_ray.evaluate import metamath_compat as mm


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("She pays 5 * 3 = 15 dollars.\nThe answer is: 15", 15),
        ("The answer is: 1,234", 1234),
        # only one separator fits the pattern: 1,234,567 reads as 1234
        ("The answer is: 1,234,567", 1234),
        ("The answer is: $1,234.50", 1234),
        # lenient rounding, half to even (Python round)
        ("The answer is: 17.6", 18),
        ("The answer is: 2.5", 2),
        ("The answer is: 3.5", 4),
        ("The answer is: -4", -4),
        ("The answer is: 3/4", 1),
        ("The answer is: 7/0", 7),
        # the last marker wins; text before it is ignored
        ("The answer is: 3\nWait. The answer is: 12 apples", 12),
        ("The answer is 12", None),  # needs the colon and space
        ("no marker 12", None),
        ("The answer is: none", None),
    ],
)
def test_gsm8k_extract(completion, expected):
    assert mm.gsm8k_extract(completion) == expected


@pytest.mark.parametrize(
    "completion, line",
    [
        # "00" is not the "0" that L34 special-cases: the fraction package divides by zero
        ("The answer is: 36/00", "L37-40 Fraction('36/00') raises FractionException"),
        ("The answer is: " + "9" * 400 + "/3", "L37-40 Fraction"),  # float('9'*400) is inf inside fraction
        ("The answer is: " + "9" * 400 + "/0", "L35 round(inf)"),
        ("The answer is: -" + "9" * 400, "L46 round(-inf)"),  # +inf is caught at L44, -inf is not
    ],
)
def test_gsm8k_extract_raises_where_their_script_crashes(completion, line):
    with pytest.raises(mm.MetaMathCrash, match=re.escape(line)):
        mm.gsm8k_extract(completion)
    verdict = mm.gsm8k_verdict(completion, "36")
    assert verdict.correct is False and verdict.extracted is None and line.split(" ")[0] in verdict.reason


def test_gsm8k_verdict_with_a_gold_that_is_not_a_number():
    verdict = mm.gsm8k_verdict("The answer is: 5", "1/2")
    assert verdict.correct is False and verdict.extracted == "5" and "not a number" in verdict.reason


@pytest.mark.parametrize(
    "completion, gold, correct",
    [
        ("The answer is: 17.6", 18.0, True),  # wrong under strict scoring, right under MetaMath's
        ("The answer is: 18", 18.0, True),
        ("The answer is: 1,234,567", 1234567.0, False),
        ("#### 18", 18.0, False),
        ("The answer is: 0.5", 0.5, False),  # round(0.5) == 0
    ],
)
def test_gsm8k_correct(completion, gold, correct):
    assert mm.gsm8k_correct(completion, gold) is correct


@pytest.mark.parametrize(
    "answer, gold",
    [("He has 5 + 13 = <<5+13=18>>18.\n#### 18", 18.0), ("#### 1,000", 1000.0), ("80000", 80000.0), (51.0, 51.0)],
)
def test_gsm8k_gold(answer, gold):
    assert mm.gsm8k_gold(answer) == gold


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("So x = 2.\nThe answer is: \\frac{1}{2}", "\\frac{1}{2}"),
        ("The answer is: 5.\nNext we", "5"),
        ("The answer is: 3.14", "3.14"),
        ("The answer is: (1, 2).", "(1, 2)"),
        ("Thus \\boxed{4}", None),
    ],
)
def test_math_extract(completion, expected):
    assert mm.math_extract(completion) == expected


@pytest.mark.parametrize(
    "solution, gold",
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\fbox{7}", None),  # MetaMath's remove_boxed only accepts \boxed{...}
        ("no box", None),
    ],
)
def test_math_gold(solution, gold):
    assert mm.math_gold(solution) == gold


@pytest.mark.parametrize(
    "pred, gold, equal",
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
        ("0.5", "\\frac12", True),
        ("1/2", "\\frac{1}{2}", True),
        ("x = 5", "5", True),
        ("50\\%", "50", True),
        ("90^\\circ", "90", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
        ("10\\text{ cm}", "10", True),
        (".5", "\\frac{1}{2}", True),
        # string match, not algebra: equal values in other forms are wrong
        ("2/4", "\\frac{1}{2}", False),
        ("0.50", "\\frac{1}{2}", False),
        ("\\sqrt{4}", "2", False),
        ("2+x", "x+2", False),
        # the normaliser raises on a dangling \sqrt: raw equality decides
        ("\\sqrt", "\\sqrt", True),
        # util.py L193-194 remove only "\%": a bare % stays
        ("50%", "50\\%", False),
        # util.py L132: int() raises on a non-integer a/b, uncaught, so raw equality decides
        (" a / b", "a/b", False),
        ("a/b", "a/b", True),
        ("x / 2", "\\frac{x}{2}", False),
        ("5", None, False),
    ],
)
def test_is_equiv(pred, gold, equal):
    assert mm.is_equiv(pred, gold) is equal


def test_math_correct_uses_last_marker_and_cut():
    completion = "The answer is: 3.\nActually no.\nThe answer is: \\frac{3}{4}.\nDone."
    assert mm.math_correct(completion, "\\frac34")
    assert not mm.math_correct("\\boxed{\\frac34}", "\\frac34")
