"""Both scorers on recorded responses, including where they disagree."""

import pytest

from metamath_ray.evaluate.scoring import score_response

CASES = [
    # (kind, response, gold, gold_metamath, strict, metamath)
    ("numeric", "5 + 13 = 18 apples.\nThe answer is: 18", "18", "18", True, True),
    ("numeric", "Total 17.6 dollars.\nThe answer is: 17.6", "18", "18", False, True),  # lenient rounding
    ("numeric", "The answer is: 1,234,567", "1234567", "1234567", True, False),  # their comma quirk
    ("numeric", "So she has #### 18", "18", "18", True, False),  # no "The answer is: "
    ("numeric", "The answer is: 9", "18", "18", False, False),
    ("numeric", "I am not sure.", "18", "18", False, False),
    ("math", "The answer is: \\frac{2}{4}", "\\frac{1}{2}", "\\frac{1}{2}", True, False),  # string match
    ("math", "The answer is: \\dfrac{1}{2}.", "\\frac{1}{2}", "\\frac{1}{2}", True, True),
    ("math", "so \\boxed{0.5}", "\\frac{1}{2}", "\\frac{1}{2}", True, False),  # no marker
    ("math", "The answer is: (3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)",
     "\\left( 3, \\frac{\\pi}{2} \\right)", True, True),
    ("math", "The answer is: 7", "7", None, True, False),  # MetaMath could not read this gold
]


@pytest.mark.parametrize("kind, response, gold, gold_mm, strict, metamath", CASES)
def test_scorers_side_by_side(kind, response, gold, gold_mm, strict, metamath):
    scores = score_response(kind, response, gold, gold_mm)
    assert scores["correct_strict"] is strict
    assert scores["correct_metamath"] is metamath


@pytest.mark.parametrize(
    "kind, a, b",
    [
        ("numeric", "The answer is: 18", "The answer is: 18.0"),
        ("math", "The answer is: \\frac{1}{2}", "The answer is: \\dfrac12"),
    ],
)
def test_equal_answers_share_vote_keys(kind, a, b):
    sa, sb = score_response(kind, a, "0", "0"), score_response(kind, b, "0", "0")
    assert sa["vote_key"] == sb["vote_key"] is not None
    assert sa["vote_key_metamath"] == sb["vote_key_metamath"] is not None


def test_extraction_failure_is_none_for_both():
    scores = score_response("math", "I give up", "1", "1")
    assert scores["extracted"] is None and scores["extracted_metamath"] is None
    assert scores["vote_key"] is None and scores["vote_key_metamath"] is None
