"""Chain-of-thought prompts and the judging of recorded responses."""

import pytest

from metamath_ray.augment import cot


def test_prompts_share_a_prefix_per_dataset():
    a, b = cot.solve_prompt("Q1?", "gsm8k"), cot.solve_prompt("Q2?", "gsm8k")
    prefix = a[: a.rindex("Question:")]
    assert b.startswith(prefix) and a.endswith("Question: Q1?\nAnswer:")
    assert "\\boxed" in cot.solve_prompt("Q", "math") and "\\boxed" not in prefix
    with pytest.raises(ValueError):
        cot.solve_prompt("Q", "svamp")


@pytest.mark.parametrize(
    "response, expected, dataset, accepted, reason",
    [
        ("He buys 3 + 2 = 5 apples.\nThe answer is: 5", "5", "gsm8k", True, None),
        ("3 + 2 = 5.\nThe answer is 5\nQuestion: next one", "5", "gsm8k", True, None),
        ("3 * 2 = 6.\nThe answer is: 6", "5", "gsm8k", False, "wrong_answer"),
        ("It costs $1,200 in total.\nThe answer is: $1,200", "1200", "gsm8k", True, None),
        ("Half of it is $\\boxed{\\frac{1}{2}}$.", "0.5", "math", True, None),
        ("So $x=\\boxed{2\\frac12}$.", "\\frac{5}{2}", "math", True, None),
        ("2 * 40000 = 80000. The value of x is 80,000.", "80000", "gsm8k", True, None),
        ("gibberish ending in a number 17", "17", "gsm8k", False, "no_answer"),  # no stated answer
        ("", "5", "gsm8k", False, "empty_response"),
        ("The answer is: 5", "5", "gsm8k", False, "no_reasoning"),
        ("0.333 is close.\nThe answer is: 0.333", "\\frac{1}{3}", "math", False, "wrong_answer"),
        # issue 16: a random model's soup ending in the gold is junk, not a right answer
        ("ook swall 48 clips\n#### row13 disindraw whe perimeter 100 ook will", "100", "gsm8k", False,
         "malformed_answer"),
        ("whe 5 ook\nThe answer is: \x00\x015", "5", "gsm8k", False, "malformed_answer"),
        ("She has 36 apples left.\nThe answer is: She has 36 apples", "36", "gsm8k", True, None),
        ("The side is $8\\sqrt{3}$.\nThe answer is: 8\\sqrt{3} square inches", "8\\sqrt{3}", "math", True, None),
        ("It took 5 hours and 30 minutes.\nThe answer is: 5 hours and 30 minutes", "5 hours and 30 minutes",
         "gsm8k", True, None),
        ("ThereidThe gravelve nowcils disindraw termediate whe ook swallIf anut palind\nThe answer is: 100",
         "100", "gsm8k", False, "malformed_response"),
        ("perimeter\ufffd\ufffd 100 ook\nThe answer is: 100", "100", "gsm8k", False, "malformed_response"),
    ],
)
def test_judge(response, expected, dataset, accepted, reason):
    v = cot.judge(response, expected, dataset)
    assert (v.accepted, v.reject_reason) == (accepted, reason)
    if accepted:
        assert v.response.splitlines()[-1].startswith("The answer is: ")
        assert v.response.count("The answer is:") == 1
