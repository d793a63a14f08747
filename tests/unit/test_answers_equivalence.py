"""is_equivalent, by category. Each case: (pred, gold, expected, why)."""

import pytest

from metamath_ray.answers import is_equivalent

INTEGERS = [
    ("5", "5", True, "identical"),
    ("-5", "-5", True, "identical negative"),
    ("5", "-5", False, "sign differs"),
    ("5", "50", False, "a dropped zero is a different number"),
    ("50", "5", False, "an extra zero is a different number"),
    ("18", "18.0", True, "trailing .0 is the same integer"),
    ("18.00", "18", True, "trailing zeros"),
    ("007", "7", True, "leading zeros do not change the value"),
    ("+7", "7", True, "explicit plus sign"),
    ("1000000", "10^6", True, "power of ten"),
    ("12", "13", False, "off by one"),
    ("0", "-0", True, "signed zero is zero"),
    ("123456789123456789", "123456789123456789", True, "big integers exactly"),
    ("123456789123456789", "123456789123456788", False, "big integers differ in the last digit"),
]

SEPARATORS_AND_CURRENCY = [
    ("1,000", "1000", True, "thousands comma"),
    ("1000", "1,000", True, "thousands comma in gold"),
    ("7,425,000", "7425000", True, "several groups"),
    ("1,000.5", "1000.5", True, "thousands comma with decimals"),
    ("85,\\!184", "85184", True, "MATH thin-space thousands separator"),
    ("1 000", "1000", True, "space as a thousands separator"),
    ("\\$18", "18", True, "escaped dollar sign"),
    ("$18", "18", True, "dollar sign"),
    ("18 dollars", "18", True, "currency word"),
    ("\\$1,234.50", "1234.5", True, "currency, separator and trailing zero"),
    ("€5", "5", True, "euro sign"),
    ("-\\$5", "-5", True, "negative amount"),
    ("\\$18", "19", False, "currency does not rescue a wrong number"),
]

DECIMALS_AND_FRACTIONS = [
    ("0.5", "\\frac{1}{2}", True, "terminating decimal equals the fraction exactly"),
    ("\\frac{1}{2}", "0.5", True, "symmetric"),
    (".5", "0.5", True, "no leading zero"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}", True, "dfrac is display style only"),
    ("\\tfrac{3}{4}", "0.75", True, "tfrac is text style only"),
    ("\\frac12", "\\frac{1}{2}", True, "brace-less frac"),
    ("\\frac1{2}", "1/2", True, "half-braced frac"),
    ("3/4", "\\frac{3}{4}", True, "slash fraction"),
    ("\\frac{2}{4}", "\\frac{1}{2}", True, "unsimplified fraction has the same value"),
    ("\\frac{-3}{4}", "-\\frac{3}{4}", True, "sign inside the numerator"),
    ("-\\frac{3}{4}", "\\frac{3}{4}", False, "sign differs"),
    ("0.33", "\\frac{1}{3}", False, "a rounded non-terminating decimal is not the exact value"),
    ("0.333333", "\\frac{1}{3}", False, "more digits are still rounded"),
    ("\\frac{1}{3}", "0.33", False, "rounded gold is not 1/3 either"),
    ("0.0833333333333333", "\\frac{1}{12}", False, "truncated decimal is not the exact value"),
    ("1.4142", "\\sqrt{2}", False, "an irrational never equals a decimal"),
    ("1.4142135623730951", "\\sqrt{2}", False, "even to double precision"),
    ("2.5", "\\frac{5}{2}", True, "exact decimal"),
    ("0.1", "\\frac{1}{10}", True, "no binary floating point error"),
    ("\\frac{1}{0}", "0", False, "division by zero is not a number"),
    ("1.5e3", "1500", True, "scientific notation e"),
    ("2.5\\times10^{3}", "2500", True, "scientific notation times ten"),
    ("3 \\cdot 10^{-2}", "0.03", True, "negative exponent"),
]

MIXED_NUMBERS = [
    ("2\\frac{1}{2}", "\\frac{5}{2}", True, "a mixed number is a sum"),
    ("2\\frac12", "2.5", True, "brace-less mixed number"),
    ("2\\frac{1}{2}", "1", False, "never read as the product 2 * 1/2"),
    ("918\\frac{1}{2}", "918.5", True, "large mixed number"),
    ("2 1/2", "2.5", True, "mixed number with a slash"),
    ("-2\\frac{1}{2}", "-2.5", True, "negative mixed number"),
]

PERCENT = [
    ("10\\%", "10", True, "percent sign dropped (MATH writes both)"),
    ("10%", "10", True, "plain percent sign"),
    ("10 percent", "10\\%", True, "percent word"),
    ("10%", "0.1", True, "percent as a fraction of one"),
    ("0.1", "10\\%", True, "symmetric"),
    ("10", "0.1", False, "without a percent sign 10 is not 0.1"),
    ("12\\%", "10\\%", False, "different percentages"),
    ("28 pct", "28\\%", True, "abbreviation"),
]

ROOTS_PI_EXPRESSIONS = [
    ("2\\sqrt{2}", "\\sqrt{8}", True, "unsimplified radical has the same value"),
    ("\\sqrt3", "\\sqrt{3}", True, "brace-less sqrt"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True, "rationalised denominator"),
    ("\\sqrt{2}", "\\sqrt{3}", False, "different radicands"),
    ("4\\sqrt{2}", "4", False, "dropped radical"),
    ("2\\pi", "\\pi \\cdot 2", True, "commuted product"),
    ("\\frac{9}{4}\\pi", "\\frac{9\\pi}{4}", True, "pi in or out of the fraction"),
    ("\\frac94\\pi", "\\frac{9\\pi}{4}", True, "brace-less frac before pi"),
    ("3\\pi", "9.42", False, "rounded value of 3 pi"),
    ("8\\pi - 16", "-16 + 8\\pi", True, "reordered sum"),
    ("\\frac{1 + \\sqrt{5}}{4}", "\\frac{1}{4} + \\frac{\\sqrt{5}}{4}", True, "split fraction"),
    ("\\sqrt{6}", "\\!\\sqrt{6}", True, "negative thin space"),
    ("2i", "i + i", True, "imaginary unit terms"),
    ("3 + 5i", "5i + 3", True, "complex number reordered"),
    ("3 - 5i", "3 + 5i", False, "conjugate"),
    ("x^2+2x+1", "(x+1)^2", True, "polynomial identity"),
    ("(x+1)^2", "x^2+2x+2", False, "different polynomial"),
    ("x^2 + 2*x + 1", "x^2+2x+1", True, "explicit multiplication"),
    ("(r+5)(r+5)", "(r+5)^2", True, "square written as product"),
    ("\\frac{x}{7}+\\frac{2}{7}", "\\frac{x+2}{7}", True, "combined fraction"),
    ("21y+14", "7(3y+2)", True, "factored"),
    ("x+1", "x+2n+1", False, "extra term"),
    ("\\sec^2 x", "\\tan^2 x + 1", True, "trigonometric identity"),
    ("\\sin x", "\\cos x", False, "different functions"),
    ("(a+5)(b+2)", "ab + 2a + 5b + 10", True, "expanded product"),
    ("(+5)(b+2)", "(a+5)(b+2)", False, "missing variable"),
    ("\\binom{5}{2}", "10", True, "binomial coefficient"),
    ("5!", "120", True, "factorial"),
    ("\\log_2 8", "3", True, "logarithm"),
    ("e^{2}", "e \\cdot e", True, "Euler's number"),
]

EQUATIONS = [
    ("x=5", "5", True, "assignment of the answer variable"),
    ("5", "x = 5", True, "symmetric"),
    ("k = \\frac{1}{3}", "\\frac{1}{3}", True, "named value"),
    ("x=5", "6", False, "wrong value behind an assignment"),
    ("11a+c", "7 = 11a+c", False, "only one side of an equation"),
    ("0", "a + 3z = 0", False, "right-hand side of an equation is not the answer"),
    ("y = 2x + 1", "2x + 1", True, "named expression"),
    ("y=-\\frac{1}{2}x+\\frac{3}{4}", "2x+4y-3=0", True, "same line, rearranged"),
    ("-34x-45y+20z-100=0", "34x+45y-20z+100=0", True, "plane equation times -1"),
    ("x - 3z = 0", "x + 3z = 0", False, "different plane"),
    ("f(x) = 3", "3", True, "function value"),
    ("(p,q)=(3,2)", "(3,2)", True, "named tuple"),
    ("p=3, q=2", "(3,2)", True, "assignments in variable order"),
    ("x = -5, p = \\frac{14}{3}", "-5, \\frac{14}{3}", True, "assignments as a list"),
]

INTERVALS_AND_INEQUALITIES = [
    ("[0,1)", "[0,1)", True, "identical"),
    ("(0,1)", "[0,1)", False, "bracket type matters"),
    ("[0,1]", "[0,1)", False, "closed versus half-open"),
    ("(5,\\infty)", "(5, \\infty)", True, "spacing"),
    ("(5,∞)", "(5,\\infty)", True, "unicode infinity"),
    ("(5,\\infty]", "(5,\\infty)", False, "infinity is never included"),
    ("(-\\infty, -2] \\cup [2, \\infty)", "(-\\infty,-2]\\cup[2,\\infty)", True, "union spacing"),
    ("[2, \\infty) \\cup (-\\infty, -2]", "(-\\infty,-2]\\cup[2,\\infty)", True, "union order is irrelevant"),
    ("(-\\infty, -2) \\cup [2, \\infty)", "(-\\infty,-2]\\cup[2,\\infty)", False, "one bracket differs"),
    ("x > 5", "(5, \\infty)", True, "inequality as an interval"),
    ("x \\geq 5", "[5, \\infty)", True, "non-strict inequality"),
    ("x \\ge 5", "(5, \\infty)", False, "strictness matters"),
    ("5 \\leq x", "x \\geq 5", True, "sides swapped"),
    ("x < 3", "(-\\infty, 3)", True, "upper bound"),
    ("-2 \\le x \\le 7", "[-2,7]", True, "double inequality"),
    ("-2 < x \\le 7", "[-2,7]", False, "double inequality, strict left"),
    ("x \\in [-2,7]", "[-2,7]", True, "membership prefix"),
    ("x < 5", "x > 5", False, "opposite direction"),
    ("-x > -1", "x < 1", True, "negated variable"),
    ("\\left[ -\\frac{1}{2}, 3 \\right)", "[-0.5, 3)", True, "left/right and exact endpoints"),
]

TUPLES_SETS_LISTS = [
    ("(1,2)", "(1,2)", True, "identical"),
    ("(2,1)", "(1,2)", False, "tuples are ordered"),
    ("(1,2)", "[1,2]", False, "tuple is not a closed interval"),
    ("(1, 4.5)", "(1,\\frac{9}{2})", True, "elementwise exact values"),
    ("(3,-3,1)", "(3, -3, 1)", True, "spacing"),
    ("(3,-3,1)", "(3, -3)", False, "different length"),
    ("\\{1,2\\}", "\\{2,1\\}", True, "sets are unordered"),
    ("1, 2, 3", "3, 2, 1", True, "bare lists are unordered"),
    ("1, 2, 3", "1, 2", False, "missing element"),
    ("1, 2", "1, 2, 3", False, "extra element"),
    ("-2, 1", "1, -2", True, "roots in another order"),
    ("1 and 2", "1, 2", True, "list with and"),
    ("12\\text{ and }13", "12, 13", True, "text and"),
    ("(1,2), (3,4)", "(3,4), (1,2)", True, "list of tuples unordered"),
    ("(1,2), (4,3)", "(3,4), (1,2)", False, "inner tuples stay ordered"),
    ("6 + 8i, 6 + 17i", "6+17i, 6+8i", True, "complex roots reordered"),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True, "plus-minus is a pair"),
    ("\\pm 2021", "-2021, 2021", True, "plus-minus alone"),
    ("2021", "\\pm 2021", False, "one of the pair only"),
    ("\\{-1\\}", "-1", True, "singleton set"),
    ("\\sqrt{67}", "\\sqrt{67},-\\sqrt{85}", False, "one of two answers"),
    ("70, 110", "70,110", True, "MATH list written without a space"),
    ("32, 349", "32349", False, "comma and space is a list, not a separator"),
]

MATRICES = [
    ("\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}", True, "spacing"),
    ("\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\end{bmatrix}", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", True, "bracket style"),
    ("\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", False, "one cell"),
    ("\\begin{pmatrix} 2/5 \\\\ -1/5 \\end{pmatrix}", "\\begin{pmatrix}0.4\\\\-0.2\\end{pmatrix}", True, "exact cells"),
    ("\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False, "row is not column"),
    ("(1,-2)", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}", True, "vector written as a tuple"),
    ("(-2,1)", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}", False, "vector order matters"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2&0\\\\3&4&0\\end{pmatrix}", False, "shape"),
]

CHOICES_BASES_DEGREES = [
    ("A", "A", True, "same letter"),
    ("(C)", "C", True, "parenthesised letter"),
    ("\\text{(C)}", "C", True, "text-wrapped letter"),
    ("B", "C", False, "different letter"),
    ("\\text{B, E, G}", "E, G, B", True, "several letters in any order"),
    ("B, E", "B, E, G", False, "a letter missing"),
    ("D", "(D) Alina", True, "letter with its option text"),
    ("52_8", "52_{8}", True, "base subscript braces"),
    ("52_8", "52_9", False, "base must match"),
    ("53_8", "52_8", False, "digits must match"),
    ("1011_2", "1011_{2}", True, "binary"),
    ("52_8", "42", False, "a base-8 numeral is not its decimal value"),
    ("45^\\circ", "45", True, "degree sign"),
    ("45^{\\circ}", "45^\\circ", True, "braced degree sign"),
    ("45°", "45", True, "unicode degree sign"),
    ("90^\\circ", "45^\\circ", False, "different angle"),
]

TEXT_AND_UNITS = [
    ("5\\text{ inches}", "5", True, "unit text"),
    ("5 inches", "5", True, "plain unit"),
    ("45\\text{ mph}", "45", True, "rate unit"),
    ("18 \\text{ integers}", "18", True, "counted noun"),
    ("5\\text{ inches}", "6", False, "unit does not rescue a wrong number"),
    ("9 p.m.", "9 a.m.", False, "a.m. and p.m. are different times"),
    ("9 p.m.", "9 p.m.", True, "same time"),
    ("9 pm", "9 p.m.", True, "p.m. spelling"),
    ("1:00", "12:00", False, "different clock time"),
    ("7:32", "7:32", True, "same ratio"),
    ("\\text{no solution}", "no solution", True, "text wrapper"),
    ("\\emptyset", "\\varnothing", True, "two symbols for the empty set"),
    ("\\emptyset", "no solution", True, "empty solution set"),
    ("\\text{all real numbers}", "(-\\infty,\\infty)", True, "all reals as an interval"),
    ("\\mathbb{R}", "all real numbers", True, "blackboard R"),
    ("\\infty", "∞", True, "infinity symbols"),
    ("-\\infty", "\\infty", False, "sign of infinity"),
    ("\\text{odd}", "odd", True, "text word"),
    ("\\text{oddd}", "odd", False, "misspelt word"),
    ("\\text{even}", "\\text{odd}", False, "different words"),
    ("\\textbf{A}", "A", True, "bold letter"),
    ("\\mathrm{E}", "E", True, "roman letter"),
    ("\\mathrm{E}*2", "E", False, "letter times two"),
    ("\\sec x", "\\sec x", True, "same function"),
]

WRAPPERS = [
    ("$5$", "5", True, "inline math"),
    ("\\boxed{5}", "5", True, "boxed"),
    ("\\fbox{5}", "5", True, "fbox"),
    ("$\\boxed{\\frac{1}{2}}$", "0.5", True, "boxed in math"),
    ("\\(5\\)", "5", True, "paren delimiters"),
    ("\\[5\\]", "5", True, "display delimiters"),
    ("**5**", "5", True, "markdown bold"),
    ("5.", "5", True, "trailing period"),
    ("The answer is: 5", "5", True, "a whole MetaMath answer line"),
    ("The answer is $\\boxed{2-2p}$", "2-2p", True, "answer line with a box"),
    ("Therefore $x \\geq 5$ is the solution.", "x \\ge 5", True, "answer in prose"),
    ("\\boxed{1}, \\boxed{2}", "1, 2", True, "several boxes form a list"),
]

# Junk that ends in, wraps or hides the gold (issue 16): a random model's subword soup, the gold
# inside a word, binary noise. The last-number reduction used to call most of these equal.
_SOUP = "whe perimeter ook disindraw will ThereidThe gravelve nowcils " * 3
JUNK = [
    ("row13 disindraw whe perimeter 100 ook will", "100", False, "soup around the gold (the issue's case)"),
    ("disindraw whe 100", "100", False, "non-words before the gold"),
    ("100 ook will disindraw", "100", False, "non-words after the gold"),
    ("mefter o n digit minutes 100", "100", False, "a non-word among words, then the gold"),
    ("13 zorbs 100", "100", False, "unrelated numbers among non-words"),
    ("row100", "100", False, "the gold inside a word"),
    ("row13", "13", False, "the gold at the end of a word"),
    ("100ook", "100", False, "the gold glued to a non-word"),
    ("ro11day which people 100", "100", False, "a number inside a word, then the gold"),
    ("\x00\x01\x02100".encode().decode("unicode_escape"), "100", False, "control bytes before the gold"),
    ("100\x07\x1b".encode().decode("unicode_escape"), "100", False, "control bytes after the gold"),
    ("\ufffd\ufffd100", "100", False, "decoding errors around the gold"),
    ("\x89PNG\r\n\x1a\n 100".encode().decode("unicode_escape"), "100", False, "binary file header"),
    ("Ã©Ã¨ 100", "100", False, "mojibake before the gold"),
    (_SOUP + "100", "100", False, "long token soup ending in the gold"),
    ("the will of perimeter " * 8 + "100", "100", False, "long soup of real words ending in the gold"),
    ("7 " * 600 + "7", "7", False, "far longer than any answer form"),
    ("=<< discount 100", "100", False, "calculator markup left in the answer"),
    ("coordinates}} 100", "100", False, "unbalanced braces"),
    ("\\frac{1}{2} ook disindraw", "\\frac{1}{2}", False, "soup after a fraction"),
    # and what must still match next to it
    ("She has 36 apples", "36", True, "a sentence with the answer"),
    ("Jebediah has 36 apples", "36", True, "a name not in the word list"),
    ("8\\sqrt{3} square inches", "8\\sqrt{3}", True, "a unit phrase after a root"),
    ("5 hours and 30 minutes", "5 hours and 30 minutes", True, "two numbers among words"),
]

ALL_CASES = [
    pytest.param(p, g, e, id=f"{name}:{why}")
    for name, group in [
        ("int", INTEGERS), ("sep", SEPARATORS_AND_CURRENCY), ("frac", DECIMALS_AND_FRACTIONS),
        ("mixed", MIXED_NUMBERS), ("pct", PERCENT), ("expr", ROOTS_PI_EXPRESSIONS),
        ("eq", EQUATIONS), ("interval", INTERVALS_AND_INEQUALITIES),
        ("collection", TUPLES_SETS_LISTS), ("matrix", MATRICES),
        ("choice", CHOICES_BASES_DEGREES), ("text", TEXT_AND_UNITS), ("wrap", WRAPPERS), ("junk", JUNK),
    ]
    for p, g, e, why in group
]


@pytest.mark.parametrize("pred, gold, expected", ALL_CASES)
def test_is_equivalent(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected


@pytest.mark.parametrize("pred, gold, expected", ALL_CASES)
def test_is_equivalent_is_symmetric_on_these_cases(pred, gold, expected):
    # every case above is a value comparison, so swapping the roles must not change it
    assert is_equivalent(gold, pred) is expected


@pytest.fixture(autouse=True)
def _verdicts_not_timing(monkeypatch):
    """These tests check verdicts. A loaded CI box can stretch a 0.25 s comparison past the 0.9 s
    per-call budget, which then (correctly, conservatively) says False; the budget itself is
    tested in test_answers_robustness.py, so give verdict tests room here."""
    from metamath_ray.answers import equivalence

    monkeypatch.setattr(equivalence, "TIME_BUDGET_S", 10.0)
