"""MetaMath's verdicts, case by case: each row names the line of MetaMath's code that decides it.

Expected verdicts follow MetaMath's code (github.com/meta-math/MetaMath @ fe667b1, eval_gsm8k.py,
eval_math.py, util.py); every row is checked twice: against their functions run verbatim
(`tests/unit/metamath_upstream.py`, the oracle) and against ours (`metamath_compat` through the
"metamath" scorer). CRASH: their script itself raises on this response; ours scores it wrong with
the reason in `score_error`.
"""

import pytest

from metamath_ray.evaluate import metamath_compat as mm
from metamath_ray.evaluate.scoring import score_metamath, score_response
from tests.unit import metamath_upstream as upstream

T, F, CRASH = True, False, upstream.CRASH
A = "The answer is: "
G = "eval_gsm8k.py"
BIG = "9" * 400  # float("9"*400) is inf

# (response, gold, expected, ref); golds are integers as eval_gsm8k.py L80-81 reads them
GSM8K = [
    ("Janet sells 9 eggs.\nThe answer is: 18", "18", T, f"{G}:L25-27 text after 'The answer is: '"),
    ("The answer is 18", "18", F, f"{G}:L25,L49-50 marker needs ': ', else invalid"),
    ("The answer is:18", "18", F, f"{G}:L25 split needs the space after the colon"),
    ("the answer is: 18", "18", F, f"{G}:L25 split is case-sensitive"),
    ("The Answer is: 18", "18", F, f"{G}:L25 split is case-sensitive"),
    ("#### 18", "18", F, f"{G}:L49-50 no marker: invalid"),
    ("", "0", F, f"{G}:L49-50 empty response: invalid"),
    ("The answer is: 3\nThe answer is: 18", "18", T, f"{G}:L27 text[-1]: the last marker"),
    ("The answer is: 18\nThe answer is: 3", "18", F, f"{G}:L27 text[-1]: the last marker"),
    ("The answer is: 18 The answer is: ", "18", F, f"{G}:L47-48 nothing after the last marker"),
    ("The answer is: ", "0", F, f"{G}:L47-48 no number: invalid"),
    ("The answer is: The answer is: 18", "18", T, f"{G}:L27 repeated marker, last part"),
    ("The answer is:  18  ", "18", T, f"{G}:L27 strip"),
    ("The answer is: \n18", "18", T, f"{G}:L27 strip removes the line break"),
    ("The answer is: \t18", "18", T, f"{G}:L27 strip"),
    ("The answer is: 18\x00\x07", "18", T, f"{G}:L28 control characters after the number"),
    ("The answer is: $18", "18", T, f"{G}:L28 first regex match skips '$'"),
    ("The answer is: 18 dollars", "18", T, f"{G}:L28 first match"),
    ("The answer is: She has 18 apples and 3 pears", "18", T, f"{G}:L28 first match"),
    ("The answer is: 3 pears and 18 apples", "18", F, f"{G}:L28 first match, not the last"),
    ("The answer is: (18)", "18", T, f"{G}:L28 first match"),
    ("The answer is: x = 18", "18", T, f"{G}:L28 first match"),
    ("The answer is: 18%", "18", T, f"{G}:L28 first match"),
    ("The answer is: 18.", "18", T, f"{G}:L28 '.' needs a digit after it"),
    ("The answer is: 18,", "18", T, f"{G}:L28 ',' needs a digit after it"),
    ("The answer is: 18\n\nQuestion: next", "18", T, f"{G}:L28 first match"),
    ("The answer is: eighteen", "18", F, f"{G}:L47-48 no digits: invalid"),
    ("The answer is: 1,234", "1234", T, f"{G}:L28,L46 one comma, removed"),
    ("The answer is: 1,234,567", "1234567", F, f"{G}:L28 one separator fits: reads 1,234"),
    ("The answer is: 1,234,567", "1234", T, f"{G}:L28 one separator fits: reads 1,234"),
    ("The answer is: $1,234.50", "1234", T, f"{G}:L28 one separator fits: reads 1,234"),
    ("The answer is: 1.234,5", "1", T, f"{G}:L28,L46 reads 1.234, rounds to 1"),
    ("The answer is: 1,8", "18", T, f"{G}:L46 comma removed anywhere: 1,8 -> 18"),
    ("The answer is: 1,8", "2", F, f"{G}:L46 comma removed, not a decimal point"),
    ("The answer is: 1 000", "1000", F, f"{G}:L28 a space ends the number"),
    ("The answer is: 0018", "18", T, f"{G}:L46 float('0018')"),
    ("The answer is: 18.0", "18", T, f"{G}:L46 round(18.0)"),
    ("The answer is: 18.00", "18", T, f"{G}:L46 round(18.0)"),
    ("The answer is: 17.6", "18", T, f"{G}:L46 lenient rounding"),
    ("The answer is: 17.4", "18", F, f"{G}:L46 rounds to 17"),
    ("The answer is: 18.4999", "18", T, f"{G}:L46 lenient rounding"),
    ("The answer is: 0.5", "1", F, f"{G}:L46 round half to even: 0"),
    ("The answer is: .5", "0", T, f"{G}:L28,L46 '.5' reads 0.5, rounds to 0"),
    ("The answer is: 1.5", "2", T, f"{G}:L46 round half to even"),
    ("The answer is: 2.5", "2", T, f"{G}:L46 round half to even"),
    ("The answer is: 2.5", "3", F, f"{G}:L46 round half to even"),
    ("The answer is: 3.5", "4", T, f"{G}:L46 round half to even"),
    ("The answer is: -4", "-4", T, f"{G}:L28 optional sign"),
    ("The answer is: +4", "4", T, f"{G}:L28 optional sign"),
    ("The answer is: - 4", "-4", F, f"{G}:L28 the sign must touch the digits"),
    ("The answer is: - 4", "4", T, f"{G}:L28 the sign must touch the digits"),
    ("The answer is: \u22124", "4", T, f"{G}:L28 U+2212 minus is not in the pattern"),
    ("The answer is: -.5", "0", T, f"{G}:L46,L112 round(-0.5) == 0, -0.0 == 0.0"),
    ("The answer is: 1e5", "1", T, f"{G}:L28 no exponent in the pattern: reads 1"),
    ("The answer is: 1e5", "100000", F, f"{G}:L28 no exponent in the pattern"),
    ("The answer is: 12:30", "12", T, f"{G}:L28 first match"),
    ("The answer is: 3^2", "9", F, f"{G}:L28 reads 3"),
    ("The answer is: 3 / 4", "3", T, f"{G}:L28 spaces end the number: reads 3"),
    ("The answer is: \u0661\u0668", "18", T, f"{G}:L28,L46 \\d and float() take Arabic-Indic digits"),
    ("The answer is: \u00b2", "2", F, f"{G}:L47-48 superscript two is not \\d"),
    ("The answer is: 999999999999999999", "999999999999999999", T, f"{G}:L112 float comparison"),
    ("The answer is: 1000000000000000001", "1000000000000000000", T, f"{G}:L112 float comparison"),
    ("The answer is: 1" + "0" * 308, "18", F, f"{G}:L46 1e308 is finite, rounds, compares"),
    ("The answer is: 1" + "0" * 309, "18", F, f"{G}:L44-45 float is inf: invalid"),
    (A + BIG, "18", F, f"{G}:L44-45 float is inf: invalid"),
    (A + "-" + BIG, "18", CRASH, f"{G}:L46 round(-inf): OverflowError"),
    # fractions: L30-42 through the PyPI "fraction" package
    ("The answer is: 2/3", "1", T, f"{G}:L37-40 round(2/3)"),
    ("The answer is: 3/4", "1", T, f"{G}:L37-40 round(3/4)"),
    ("The answer is: 1/4", "0", T, f"{G}:L37-40 round(1/4)"),
    ("The answer is: 1/3", "0", T, f"{G}:L37-40 round(1/3)"),
    ("The answer is: 2/3", "0", F, f"{G}:L37-40 round(2/3) is 1"),
    ("The answer is: -1/3", "0", T, f"{G}:L37-40 round(-1/3) == 0"),
    ("The answer is: 5/2", "2", T, f"{G}:L40 round(2.5), half to even"),
    ("The answer is: 7/2", "4", T, f"{G}:L40 round(3.5)"),
    ("The answer is: -7/2", "-4", T, f"{G}:L40 round(-3.5)"),
    ("The answer is: +3/4", "1", T, f"{G}:L33,L37 '+3' is a number"),
    ("The answer is: 36/4", "9", T, f"{G}:L37-40"),
    ("The answer is: 12/4/2", "3", T, f"{G}:L28 one separator: reads 12/4"),
    ("The answer is: 3/4.5", "1", T, f"{G}:L28 one separator: reads 3/4"),
    ("The answer is: 1.5/3", "2", T, f"{G}:L28 one separator: reads 1.5"),
    ("The answer is: 4.5/1.5", "4", T, f"{G}:L28,L46 reads 4.5, round half to even"),
    ("The answer is: 1,000/4", "1000", T, f"{G}:L28 one separator: reads 1,000"),
    ("The answer is: 1,000/4", "250", F, f"{G}:L28 one separator: reads 1,000"),
    ("The answer is: \u0661\u0668/\u0662", "9", T, f"{G}:L33,L37 Arabic-Indic digits pass is_number and Fraction"),
    ("The answer is: /5", "5", F, f"{G}:L33,L41-42 empty numerator is not a number: invalid"),
    ("The answer is: -/5", "5", F, f"{G}:L33,L41-42 '-' is not a number: invalid"),
    ("The answer is: 7/0", "7", T, f"{G}:L34-35 denominator '0': round(numerator)"),
    ("The answer is: -7/0", "-7", T, f"{G}:L34-35 denominator '0': round(numerator)"),
    ("The answer is: 0/0", "0", T, f"{G}:L34-35 denominator '0': round(numerator)"),
    ("The answer is: 36/00", "36", CRASH, f"{G}:L37 Fraction('36/00'): FractionException"),
    ("The answer is: 0/00", "0", CRASH, f"{G}:L37 Fraction('0/00'): FractionException"),
    ("The answer is: 5/000", "5", CRASH, f"{G}:L37 Fraction('5/000'): FractionException"),
    (A + BIG + "/0", "18", CRASH, f"{G}:L35 round(inf): OverflowError"),
    (A + BIG + "/3", "18", CRASH, f"{G}:L37 fraction's fromdecimal: round(inf), OverflowError"),
    (A + "9" * 305 + "/3", "18", CRASH, f"{G}:L37 fromdecimal scales 1e305 by 10**6: inf"),
    (A + "1" + "0" * 305 + "/1" + "0" * 305, "1", CRASH, f"{G}:L37 fromdecimal overflows (exactly 1)"),
    (A + "9" * 300 + "/11111", "18", F, f"{G}:L37-40 1e300 fits: a huge, wrong prediction"),
    (A + "1" + "0" * 20 + "/1" + "0" * 20, "1", T, f"{G}:L37-40 through floats, still 1"),
    ("The answer is: 10000000000000001/10000000000000000", "1", T, f"{G}:L37-40 through floats"),
]

M = "util.py"
E = "eval_math.py"
# (response, gold, expected, ref); gold as eval_math.py L68 leaves it (None: no \boxed{} gold)
MATH = [
    ("So x=5.\nThe answer is: 5", "5", T, f"{E}:L23-25 text after the last marker"),
    ("The answer is 5", "5", F, f"{E}:L37-40 no marker: invalid"),
    ("Thus \\boxed{5}", "5", F, f"{E}:L37-40 a box is not the marker"),
    ("The answer is: 3\nThe answer is: 4", "4", T, f"{E}:L25 split_ans[-1]"),
    ("The answer is: 4\nThe answer is: 3", "4", F, f"{E}:L25 split_ans[-1]"),
    ("The answer is: 5.", "5", T, f"{E}:L28-29 one trailing '.' dropped"),
    ("The answer is: 5..", "5", F, f"{E}:L28-29 only one '.' dropped"),
    ("The answer is: 5.\nNext we check", "5", T, f"{E}:L26 cut at the first '.\\n'"),
    ("The answer is: 3.\n14", "3", T, f"{E}:L26 cut at the first '.\\n'"),
    ("The answer is: 3.14", "3.14", T, f"{E}:L26 '.' without a line break stays"),
    ("The answer is: 5\nBecause x", "5", F, f"{E}:L26 a bare line break does not cut; {M}:L166 joins"),
    ("The answer is: 5 \n", "5", T, f"{E}:L27 strip"),
    ("The answer is:  5 .", "5", T, f"{E}:L27-32 strip, drop '.', strip"),
    ("The answer is: ", "0", F, f"{E}:L27 empty answer"),
    ("The answer is: 5", None, F, f"{M}:L233-234 no gold"),
    ("The answer is: \\frac{1}\n{2}", "\\frac{1}{2}", T, f"{M}:L166 line breaks removed"),
    ("The answer is: \\dfrac{1}{2}", "\\frac{1}{2}", T, f"{M}:L175-176 dfrac -> frac"),
    ("The answer is: \\tfrac{1}{2}", "\\frac{1}{2}", T, f"{M}:L175-176 tfrac -> frac"),
    ("The answer is: \\frac12", "\\frac{1}{2}", T, f"{M}:L109-116 fix_fracs"),
    ("The answer is: \\frac1{2}", "\\frac{1}{2}", T, f"{M}:L117-122 fix_fracs"),
    ("The answer is: \\frac{1}2", "\\frac{1}{2}", F, f"{M}:L102-103 fix_fracs leaves '{{' openings"),
    ("The answer is: \\frac {1}{2}", "\\frac{1}{2}", T, f"{M}:L214 spaces go before fix_fracs"),
    ("The answer is: \\frac x2", "\\frac{x}{2}", T, f"{M}:L214,L109-116 spaces then fix_fracs"),
    ("The answer is: \\frac{3}{4}", "\\frac34", T, f"{M}:L109-116 fix_fracs on the gold"),
    ("The answer is: \\frac1", "\\frac{1}", F, f"{M}:L105-108 too short: string unchanged"),
    ("The answer is: \\frac", "\\frac", T, f"{M}:L102 IndexError; L243-244 raw equality"),
    ("The answer is: \\frac", "\\frac{}", F, f"{M}:L102 IndexError; L243-244 raw equality"),
    ("The answer is: 0.5", "\\frac{1}{2}", T, f"{M}:L220-221 0.5 -> \\frac{{1}}{{2}}"),
    ("The answer is: .5", "\\frac{1}{2}", T, f"{M}:L202-203,L220-221"),
    ("The answer is: 0.50", "\\frac12", F, f"{M}:L220 only the exact string 0.5"),
    ("The answer is: 1/2", "\\frac{1}{2}", T, f"{M}:L126-136 fix_a_slash_b"),
    ("The answer is: 1 / 2", "\\frac{1}{2}", T, f"{M}:L214,L126-136 spaces then a/b"),
    ("The answer is: 1/2", "0.5", T, f"{M}:L220-224 both become \\frac{{1}}{{2}}"),
    ("The answer is: \\frac{1}{2}", "1/2", T, f"{M}:L126-136 on the gold"),
    ("The answer is: 2/4", "\\frac{1}{2}", F, f"{M}:L242 string equality, no algebra"),
    ("The answer is: 6/3", "2", F, f"{M}:L242 string equality, no algebra"),
    ("The answer is: 6/3", "\\frac{6}{3}", T, f"{M}:L126-136"),
    ("The answer is: -1/2", "\\frac{-1}{2}", T, f"{M}:L132-135 int('-1')"),
    ("The answer is: -1/2", "-\\frac{1}{2}", F, f"{M}:L132-135 gives \\frac{{-1}}{{2}}"),
    ("The answer is: 01/2", "\\frac{1}{2}", F, f"{M}:L134,L137-138 assert fails: unchanged"),
    ("The answer is: +1/2", "\\frac{1}{2}", F, f"{M}:L134,L137-138 assert fails: unchanged"),
    ("The answer is: a/b", "\\frac{a}{b}", F, f"{M}:L132 int() ValueError uncaught; L243-244 raw"),
    ("The answer is:  a / b", "a/b", F, f"{M}:L132 ValueError; L243-244 raw 'a / b' != 'a/b'"),
    ("The answer is: a / b", "a/b", F, f"{M}:L132 ValueError; L243-244 raw equality"),
    ("The answer is: a/b", "a/b", T, f"{M}:L132 ValueError; L243-244 raw equality"),
    ("The answer is: 1.5/2", "1.5/2", T, f"{M}:L132 ValueError; L243-244 raw equality"),
    ("The answer is: x/2", "\\frac{x}{2}", F, f"{M}:L132 ValueError; L243-244 raw equality"),
    ("The answer is: \\pi/2", "\\frac{\\pi}{2}", F, f"{M}:L132 ValueError; L243-244 raw equality"),
    ("The answer is: 3/4 cm", "\\frac34", F, f"{M}:L132 int('4cm') ValueError; raw equality"),
    ("The answer is: \\left(a/b\\right)", "(a/b)", F, f"{M}:L132 ValueError; L243-244 raw, \\left kept"),
    ("The answer is: x / 2", "x/2", F, f"{M}:L132 ValueError; L243-244 raw, spaces kept"),
    ("The answer is: 1.5 / 2", "1.5/2", F, f"{M}:L132 ValueError; L243-244 raw, spaces kept"),
    ("The answer is: a/b/c", "a/b/c", T, f"{M}:L127-128 three parts: unchanged"),
    ("The answer is: 1/2/3", "\\frac{1}{2}/3", F, f"{M}:L127-128 three parts: unchanged"),
    ("The answer is: 50\\%", "50", T, f"{M}:L193 remove \\%"),
    ("The answer is: 50 \\%", "50", T, f"{M}:L193,L214"),
    ("The answer is: 50%", "50\\%", F, f"{M}:L193-194 both remove '\\%' only: bare % stays"),
    ("The answer is: 50%", "50", F, f"{M}:L193-194 bare % stays"),
    ("The answer is: 50%", "50%", T, f"{M}:L242 equal after normalising"),
    ("The answer is: 5\\%", "5\\%", T, f"{M}:L193"),
    ("The answer is: \\frac{1}{2}\\%", "\\frac{1}{2}", T, f"{M}:L193"),
    ("The answer is: 90^\\circ", "90", T, f"{M}:L184 remove ^\\circ"),
    ("The answer is: 90^{\\circ}", "90", T, f"{M}:L183 remove ^{{\\circ}}"),
    ("The answer is: 90\\circ", "90", F, f"{M}:L183-184 only ^\\circ"),
    ("The answer is: 90\u00b0", "90", F, f"{M}:L183-184 the degree sign stays"),
    ("The answer is: \\$18", "18", T, f"{M}:L187 remove \\$"),
    ("The answer is: \\$ 5.00", "5.00", T, f"{M}:L187,L214"),
    ("The answer is: $18", "18", F, f"{M}:L187 a bare $ stays"),
    ("The answer is: 5 dollars", "5", F, f"{M}:L242 no unit without \\text{{ "),
    ("The answer is: \\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", T, f"{M}:L179-180,L214"),
    ("The answer is: (3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", T, f"{M}:L179-180"),
    ("The answer is: \\left[ 1,2 \\right]", "[1,2]", T, f"{M}:L179-180"),
    ("The answer is: \\left(1\\right)", "(1)", T, f"{M}:L179-180"),
    ("The answer is: x\\rightarrow 1", "xarrow1", T, f"{M}:L180 '\\right' removed from '\\rightarrow'"),
    ("The answer is: [1, 2)", "[1,2)", T, f"{M}:L214 spaces"),
    ("The answer is: 10\\text{ cm}", "10", T, f"{M}:L142-145 remove_right_units"),
    ("The answer is: 10 \\text{ cm}", "10", T, f"{M}:L142-145,L214"),
    ("The answer is: 10\\text{ cm}^2", "10", T, f"{M}:L145 everything after is dropped"),
    ("The answer is: 10\\text{cm}", "10", F, f"{M}:L142 needs '\\text{{ ' with a space"),
    ("The answer is: 10\\text{ inches}", "10\\text{ in}", T, f"{M}:L142-145 both become 10"),
    ("The answer is: 3\\text{ m} by 4\\text{ m}", "3\\text{ m} by 4\\text{ m}", T, f"{M}:L144 assert; raw"),
    ("The answer is: 3\\text{ m} by 4\\text{ m}", "3by4", F, f"{M}:L144 AssertionError; L243-244 raw"),
    ("The answer is: x = 5", "5", T, f"{M}:L206-208 short left side dropped"),
    ("The answer is: k=5", "5", T, f"{M}:L206-208"),
    ("The answer is: xy = 5", "5", F, f"{M}:L207 'xy ' is three characters: kept"),
    ("The answer is: x = y = 5", "5", F, f"{M}:L206 three parts: kept"),
    ("The answer is: y = 2x + 3", "2x+3", T, f"{M}:L206-208,L214"),
    ("The answer is: 5", "x=5", T, f"{M}:L206-208 on the gold"),
    ("The answer is: \\frac{1}{2} = x", "x", F, f"{M}:L207 left side too long"),
    ("The answer is: \\sqrt3", "\\sqrt{3}", T, f"{M}:L155-157 fix_sqrt"),
    ("The answer is: \\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", T, f"{M}:L155-157"),
    ("The answer is: \\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}", T, f"{M}:L175-176"),
    ("The answer is: 2\\sqrt 3", "2\\sqrt{3}", F, f"{M}:L211,L214 fix_sqrt wraps the space first"),
    ("The answer is: \\sqrt{4}", "2", F, f"{M}:L242 no algebra"),
    ("The answer is: \\sqrt", "\\sqrt", T, f"{M}:L155 IndexError; L243-244 raw equality"),
    ("The answer is: \\sqrt", "\\sqrt{}", F, f"{M}:L155 IndexError; L243-244 raw equality"),
    ("The answer is: \\\\frac{1}{2}", "\\frac{1}{2}", T, f"{M}:L172 '\\\\\\\\' -> '\\\\'"),
    ("The answer is: \\!1,\\!000", "1,000", T, f"{M}:L169 remove \\!"),
    ("The answer is: 1,000", "1000", F, f"{M}:L242 commas stay"),
    ("The answer is: 1\\,000", "1000", F, f"{M}:L242 thin spaces stay"),
    ("The answer is: {.5}", "{0.5}", T, f"{M}:L198 '{{.' -> '{{0.'"),
    ("The answer is: x + .5", "x+0.5", T, f"{M}:L197 ' .' -> ' 0.'"),
    ("The answer is: x+.5", "x+0.5", F, f"{M}:L197 needs the space"),
    ("The answer is: -\\frac{1}{2}", "-0.5", F, f"{M}:L220 only the exact 0.5"),
    ("The answer is: 2+x", "x+2", F, f"{M}:L242 no algebra"),
    ("The answer is: x^2+2x+1", "x^2 + 2x + 1", T, f"{M}:L214 spaces"),
    ("The answer is: (x+1)^2", "x^2+2x+1", F, f"{M}:L242 no algebra"),
    ("The answer is: 2\\pi", "2 \\pi", T, f"{M}:L214 spaces"),
    ("The answer is: \\pi", "3.14", F, f"{M}:L242 no numeric check"),
    ("The answer is: \\infty", "\\infty", T, f"{M}:L242"),
    ("The answer is: 3.0", "3", F, f"{M}:L242 no numeric check"),
    ("The answer is: 03", "3", F, f"{M}:L242 no numeric check"),
    ("The answer is: \\dfrac34", "0.75", F, f"{M}:L242 no numeric check"),
    ("The answer is: \u00bd", "\\frac{1}{2}", F, f"{M}:L242 vulgar fraction stays"),
    ("The answer is: \\text{(A)}", "\\text{(A)}", T, f"{M}:L242"),
    ("The answer is: A", "\\text{(A)}", F, f"{M}:L242 no choice letter matching"),
    ("The answer is: \\{1,2\\}", "\\{1,2\\}", T, f"{M}:L242"),
    ("The answer is: 12:30", "12:30", T, f"{M}:L242"),
]

# (solution, gold) for eval_math.py L68: remove_boxed(util.last_boxed_only_string(solution))
MATH_GOLD = [
    ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", f"{M}:L10-35, {E}:L13-20"),
    ("\\boxed{1} then \\boxed{2}", "2", f"{M}:L11 rfind: the last box"),
    ("\\boxed{\\boxed{3}}", "3", f"{M}:L11 rfind: the innermost last box"),
    ("\\boxed{x} and \\fbox{y}", "x", f"{M}:L11-13 \\fbox only without \\boxed"),
    ("\\fbox{7}", None, f"{E}:L16 remove_boxed accepts \\boxed{{ only"),
    ("\\boxed 7", None, f"{M}:L30-31 no closing brace"),
    ("\\boxed {5}", None, f"{E}:L16 '\\boxed {{' is not '\\boxed{{'"),
    ("\\boxed{5", None, f"{M}:L30-31 unbalanced"),
    ("\\boxed{1}\\boxed", None, f"{M}:L11,L30-31 the last \\boxed has no braces"),
    ("no box", None, f"{M}:L14-15"),
    ("\\boxed{}", "", f"{E}:L18"),
    ("\\boxed{a}{b}", "a", f"{M}:L25-27 stops at the matching brace"),
    ("}\\boxed{1}}", "1", f"{M}:L17-28 counts from the box"),
    ("\\boxed{\\text{(A)}}", "\\text{(A)}", f"{M}:L10-35"),
]


def _ours(kind: str, response: str, gold):
    scores = score_metamath(kind, response, gold)
    if scores["score_error"]:
        assert scores["correct_metamath"] is False and scores["extracted_metamath"] is None
        return CRASH
    return scores["correct_metamath"]


def test_table_is_large_and_each_row_names_its_line():
    rows = GSM8K + MATH
    assert len(rows) + len(MATH_GOLD) >= 150
    assert all(ref.split(":")[0] in (G, E, M) and ":L" in ref for *_, ref in rows + MATH_GOLD)
    assert len({(r, g) for r, g, *_ in GSM8K}) == len(GSM8K)
    assert len({(r, g) for r, g, *_ in MATH}) == len(MATH)


@pytest.mark.parametrize("response, gold, expected, ref", GSM8K, ids=[f"gsm8k{i}" for i in range(len(GSM8K))])
def test_gsm8k_upstream_verdict(response, gold, expected, ref):
    assert upstream.gsm8k_verdict(response, int(gold)) == expected, ref


@pytest.mark.parametrize("response, gold, expected, ref", GSM8K, ids=[f"gsm8k{i}" for i in range(len(GSM8K))])
def test_gsm8k_our_verdict(response, gold, expected, ref):
    assert _ours("numeric", response, gold) == expected, ref


@pytest.mark.parametrize("response, gold, expected, ref", MATH, ids=[f"math{i}" for i in range(len(MATH))])
def test_math_upstream_verdict(response, gold, expected, ref):
    assert upstream.math_verdict(response, gold) == expected, ref


@pytest.mark.parametrize("response, gold, expected, ref", MATH, ids=[f"math{i}" for i in range(len(MATH))])
def test_math_our_verdict(response, gold, expected, ref):
    assert _ours("math", response, gold) == expected, ref


@pytest.mark.parametrize("solution, gold, ref", MATH_GOLD)
def test_math_gold_matches_upstream(solution, gold, ref):
    assert upstream.math_gold(solution) == gold, ref
    assert mm.math_gold(solution) == gold, ref


@pytest.mark.parametrize(
    "response, reason",
    [
        ("The answer is: 36/00", "eval_gsm8k.py:L37-40 Fraction('36/00') raises FractionException"),
        ("The answer is: -" + BIG, "eval_gsm8k.py:L46 round(-inf) raises OverflowError"),
        (A + BIG + "/0", "eval_gsm8k.py:L35 round(inf) raises OverflowError"),
    ],
)
def test_a_crash_of_their_script_is_wrong_with_the_reason(response, reason):
    scores = score_response("numeric", response, "36", "36")
    assert scores["correct_metamath"] is False
    assert scores["score_error"].startswith(f"metamath: {reason}")
    assert len(scores["score_error"]) < 300  # a 400-digit number is shortened, not copied


def test_no_reason_when_the_answer_was_compared():
    assert score_response("numeric", "The answer is: 17", "18", "18")["score_error"] is None
    assert score_response("math", "The answer is: a/b", "a/b", "a/b")["score_error"] is None


def test_the_reason_reaches_the_samples_table():
    import pyarrow as pa

    from metamath_ray.pipeline.evaluate import sample_schema, score_rows

    rows = [{"generated_text": text, "kind": "numeric", "gold": "36", "gold_metamath": "36", "prompt": "p",
             "decoding": "greedy", "item_id": f"gsm8k/{i}", "dataset": "gsm8k"}
            for i, text in enumerate(["The answer is: 36/00", "The answer is: 36"])]
    table = pa.Table.from_pylist(score_rows(rows), schema=sample_schema())
    errors = table.column("score_error").to_pylist()
    assert errors[0].startswith("metamath: eval_gsm8k.py:L37-40") and errors[1] is None
    assert table.column("correct_metamath").to_pylist() == [False, True]
