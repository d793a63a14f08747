"""extract_answer, extract_boxed, extract_gsm8k_gold and normalize_answer."""

import pytest

from metamath_ray.answers import extract_answer, extract_boxed, extract_gsm8k_gold, normalize_answer


@pytest.mark.parametrize("text, expected", [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
    ("#### 1,200", "1200"),
    ("The answer is: 18", "18"),
    ("The answer is 18.", "18"),
    ("So the total is 5.\nThe answer is: 18", "18"),
    ("The answer is: \\frac{1}{2}", "\\frac{1}{2}"),
    ("The answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("The answer is **42**.", "42"),
    ("The answer is: 3.5", "3.5"),
    ("The answer is: 9 p.m.", "9 p.m"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("Final Answer: The final answer is 7. I hope it is correct.", "7"),
    ("so $x = \\boxed{2-2p}$.", "2-2p"),
    ("first \\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}} done", "\\frac{1}{\\sqrt{2}}"),
    ("\\fbox{12}", "12"),
    ("The value of x is 12.", "12"),
    ("The value of unknown variable x is 3.5.", "3.5"),
    ("The value of $x$ is 7.", "7"),
    ("We get 3 apples and then 4.", "4"),
    ("", None),
    ("no numbers here", None),
    ("The answer is 8 cookies. Later the total is 9.\n#### 9", "9"),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{5}", "5"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("a \\boxed{1} b \\boxed{2}", "2"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed 5", "5"),
    ("\\fbox{x}", "x"),
    ("\\boxed{{a}{b}}", "{a}{b}"),
    ("\\boxed{unclosed", None),
    ("nothing", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("solution, expected", [
    ("steps\n#### 72", "72"),
    ("steps\n#### 1,000", "1000"),
    ("steps\n####-5", "-5"),
    ("no marker", None),
])
def test_extract_gsm8k_gold(solution, expected):
    assert extract_gsm8k_gold(solution) == expected


@pytest.mark.parametrize("answers", [
    ["1,000", "1000.0", "1000", "$1000$", "\\boxed{1000}", "1 000"],
    ["\\frac{1}{2}", "0.5", "\\dfrac12", "1/2", ".5"],
    ["\\frac{1}{3}", "\\dfrac{1}{3}", "2/6"],
    ["-7", "-7.00", "$-7$"],
])
def test_normalize_answer_gives_one_key_per_value(answers):
    assert len({normalize_answer(a) for a in answers}) == 1


@pytest.mark.parametrize("a, b", [("1000", "100"), ("\\frac{1}{3}", "0.33"), ("(1,2)", "[1,2]")])
def test_normalize_answer_keeps_different_values_apart(a, b):
    assert normalize_answer(a) != normalize_answer(b)
