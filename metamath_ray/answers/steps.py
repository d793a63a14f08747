"""Arithmetic step checking: recompute every explicit arithmetic claim of a chain of thought.

A *claim* is two sides of an `=` (or `≈`) that are both plain arithmetic: `5 * 4 = 20`,
`48/2 = $24 clips`, `$20 \\times 5.50 = 110$`, `\\frac{3}{4} \\cdot 8 = 6`, every link of a chain
`a = b = c`, and GSM8K calculator annotations `<<48/2=24>>`. Both sides are recomputed exactly as
`fractions.Fraction` by a small recursive-descent parser (never `eval`).

Conservative by design: a false "wrong step" throws away a correct solution, so a side that holds a
variable (`2x = 10`, `x + 5 = 10`), a function (`\\sin 30`, `f(2)`), an irrational value (`\\sqrt{2}`),
an ambiguous form (`2\\frac{1}{2}`: mixed number or product; `2^10` in LaTeX) or anything else the
parser does not read is skipped, never guessed. Rounding the text states is allowed within the
stated precision: a result written with fewer decimals than its exact value (`10/3 = 3.33`, money
to cents, `7/2 = 3` whole items), and, after "≈" / "about" / "approximately" / "rounded", to the
stated last digit (`≈ 1,200`). A percent is read both as /100 and as a plain number.

Reading prose as GSM8K writes it: unit words between the numbers of one calculation are space
(`4 houses * 3 gnomes = 12`, `$3/day * 365 days`), but a conversion (`2 hours = 120 minutes`) or a
sum of different measures (`4 pounds - 6 ounces`) is skipped; `a / b/c` is also read as a / (b/c),
`3 x 4` as a product. A side that is a bare number after a word is a label (`Week 2 = 35`, `half of
48 = 24`), not a calculation; lines about units digits, congruences or parity are skipped.

Bounded time: the text, the number of claims, literal sizes, exponents and intermediate values
are capped (see the constants below); anything past a cap is skipped.

Measured on the 14,973 GSM8K + MATH training reference solutions (benchmarks/step_checker.py): 0.25%
flagged (all but two are equations false as written in the dataset), 95% / 91% of perturbed copies
caught at the changed step, about 1,800 solutions/s on one core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

MAX_TEXT_CHARS = 20_000  # a longer response is checked on its first 20,000 characters
MAX_CLAIMS = 300  # `=` signs examined per response
MAX_LITERAL_DIGITS = 40  # a longer number literal is not arithmetic a solution states
MAX_EXPONENT = 64  # |n| in a^n
MAX_VALUE_BITS = 4_096  # numerator/denominator size of any intermediate value
MAX_SIDE_TOKENS = 80  # a longer side is not one stated calculation


class Unreadable(Exception):
    """A side the parser does not read exactly: the claim is skipped."""


@dataclass(frozen=True)
class WrongStep:
    """An arithmetic claim that does not hold: `claim` as written, `computed` = what the
    calculation side really is, `stated` = the side the text gives as its result."""

    claim: str
    computed: Fraction
    stated: str

    def describe(self) -> str:
        return f"{self.claim!r}: {self.stated} stated, {_show(self.computed)} computed"


@dataclass
class StepReport:
    """All claims of one text: how many were recomputed, skipped, and the wrong ones in order."""

    checked: int = 0
    skipped: int = 0
    wrong: list[WrongStep] = field(default_factory=list)


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    return f"{value.numerator}/{value.denominator} (≈{as_float:.6g})"


# ---------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"(?P<NL>\n|(?:\\q?quad(?![A-Za-z])\s*)+)"  # `\qquad` separates like a line break
    r"|(?P<SP>[ \t\r\f\v]+|\\\$|\$|~|&|\\[,;:! ]|\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])|\\displaystyle"
    r"|\\[()\[\]]|\^\s*\{?\s*\\circ\s*\}?|°)"
    r"|(?P<REL><=|>=|==|=>|=<|!=|:=|≤|≥|≠|\\neq?\b)"
    r"|(?P<EQ>=|≈|\\approx(?![A-Za-z]))"
    r"|(?P<NUM>\d{1,3}(?:(?:,|\{,\}|,\\!)\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<OP>\\times(?![A-Za-z])|\\cdot(?![A-Za-z])|\\div(?![A-Za-z])|[+\-*/^×·÷−–⋅∙])"
    r"|(?P<PCT>\\%|%)"
    r"|(?P<LP>\()|(?P<RP>\))|(?P<LB>\{)|(?P<RB>\})"  # `[x]` is often the floor: not a group
    r"|(?P<FRAC>\\[dt]?frac(?![A-Za-z]))|(?P<SQRT>\\sqrt(?![A-Za-z]))"
    r"|(?P<TEXT>\\(?:text|mbox|textbf|textit|textrm)\s*\{[^{}]*\})"
    r"|(?P<FUNC>\\(?:operatorname|mathrm|mathbf|mathit)\s*\{[^{}]*\})"  # `\operatorname{cis}`: functions
    r"|(?P<CMD>\\[A-Za-z]+|\\.)"
    r"|(?P<WORD>[^\W\d_]+(?:['’-][^\W\d_]+)*)"  # `non-useful` is a word, not a subtraction
    r"|(?P<PUNCT>.)",
    re.DOTALL,
)
_OP_NORMAL = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "⋅": "*", "∙": "*",
              "\\div": "/", "÷": "/", "−": "-", "–": "-"}
_ARITH = {"NUM", "OP", "PCT", "LP", "RP", "LB", "RB", "FRAC", "SQRT", "SP"}
_OPENERS, _CLOSERS = {"LP", "LB"}, {"RP", "RB"}
# Words and commands that may sit next to a side without being part of it (units, prose, layout).
_SAFE_CMDS = {"\\quad", "\\qquad", "\\implies", "\\Rightarrow", "\\rightarrow", "\\to", "\\Longrightarrow",
              "\\therefore", "\\hline", "\\boxed", "\\fbox", "\\text",
              "\\%", "\\$", "\\le", "\\ge", "\\leq", "\\geq", "\\lt", "\\gt", "\\ne", "\\neq", "\\approx",
              "\\iff", "\\because", "\\and", "\\mbox", "\\textbf", "\\label", "\\tag", "\\nonumber"}
_SAFE_PUNCT = set(',.;:?"')
_APPROX_WORDS = {"about", "approximately", "approx", "roughly", "around", "nearly", "almost"}
_APPROX_CONTEXT = re.compile(r"approx|about|round|nearest|estimat|≈|\\approx", re.IGNORECASE)
_FRESH_LETTERS = {"a", "A", "I"}  # one-letter words that are English, not variables
_HUNDREDTHS_WORDS = {"cents", "cent", "percent", "pence"}  # `$1 / 2 = 50 cents`
# Lines about digits and remainders use `=` for congruence: `7 \cdot 3 = 1` (the units digit).
_MODULAR_CONTEXT = re.compile(
    r"(?:units|ones|last|final|tens|rightmost)(?: two| three)? digits?|\\?mod\b|\\equiv|\\pmod|parity", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    start: int
    end: int
    source: str = ""  # as written, before normalising (`\\times` for the OP `*`)


def _tokens(text: str) -> list[Token]:
    out = []
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        kind = "CMD" if kind == "FUNC" else kind
        if kind == "OP":
            value = _OP_NORMAL.get(value, value)
        out.append(Token(kind, value, m.start(), m.end(), m.group()))
    return _times_letters(_units_as_space(out))


# Words that never name a unit, even between a number and an operator.
_NOT_UNITS = {"and", "or", "is", "are", "was", "were", "so", "then", "to", "the", "an", "if", "which", "that",
              "for", "in", "on", "at", "with", "as", "but", "gives", "makes", "equals", "total", "because",
              "since", "thus", "hence", "therefore", "also", "has", "have", "had", "will", "would", "can",
              "could", "should", "be", "been", "it", "he", "she", "they", "we", "you", "there", "this",
              "these", "those", "from", "not", "no", "all", "only", "just", "left", "remaining", "gets",
              "get", "got", "pays", "paid", "costs", "cost", "means", "mod", "modulo"}
_UNIT_WORD = re.compile(r"[A-Za-z][a-z'’-]*")  # `AB`, `PQ` name points, not units
_GLUED_UNITS = {"ml", "cm", "mm", "km", "kg", "mg", "lb", "lbs", "oz", "ft", "hr", "hrs", "min", "mins", "sec",
                "secs", "mph", "pm", "am", "gb", "mb"}  # `10ml`, `80cm`: a unit written onto its number
# Measures of one quantity: adding `4 pounds - 6 ounces` needs a conversion the text does not show.
_MEASURES = {"pound", "ounce", "lb", "oz", "hour", "minute", "second", "day", "week", "month", "year", "hr",
             "min", "sec", "foot", "feet", "inche", "inch", "yard", "mile", "meter", "centimeter", "kilometer",
             "millimeter", "cm", "km", "mm", "ft", "gram", "kilogram", "kg", "liter", "milliliter", "ml", "cup",
             "gallon", "quart", "pint", "tablespoon", "teaspoon", "dollar", "cent", "penny", "pennie", "nickel",
             "dime", "quarter", "ton"}


def _is_unit(token: Token) -> bool:
    if token.kind == "TEXT":  # `\text{ cm}`, never `\text{ and }`
        words = re.findall(r"[A-Za-z-]+", token.text.split("{", 1)[1])
        return bool(words) and all(_is_unit_word(w) for w in words)
    return token.kind == "WORD" and _is_unit_word(token.text)


def _is_unit_word(word: str) -> bool:
    return (len(word) > 1 and bool(_UNIT_WORD.fullmatch(word)) and word not in _NOT_UNITS
            and word not in _OPERATOR_WORDS and word not in _MULTIPLIER_WORDS and word not in _APPROX_WORDS)


def _units_as_space(tokens: list[Token]) -> list[Token]:
    """`4 houses * 3 gnomes = 12`, `$5/hour x 4 hours`, `5\text{ cm} + 3\text{ cm}`: up to three unit
    words after a number, when an operator or `=` follows them, are read as space."""
    out = list(tokens)
    for i, t in enumerate(out):
        if t.kind != "NUM":
            continue
        j, unit = _unit_after(out, i)
        first = out[unit[0]] if unit else None
        touching = first is not None and first.start == t.end and first.kind == "WORD"
        if touching and first.text.lower() not in _GLUED_UNITS:
            continue  # `2lw`, `3ab`: variables
        rate = first is not None and first.text == "/"  # `$2190/year`: a rate is always a unit
        if unit and (rate or _continues_calculation(out, i, j, any(out[k].kind == "TEXT" for k in unit))):
            for k in unit:
                out[k] = Token("SP", " ", out[k].start, out[k].end, out[k].text)
    return out


def _unit_after(tokens: list[Token], number: int) -> tuple[int, list[int]]:
    """(index after it, indexes of its tokens) of the unit after tokens[number]: up to five words,
    `/word` rates, `of`/`per` inside (`6 tubs of lip gloss`, `2 hours per game`)."""
    j, unit = number + 1, []
    while j < len(tokens) and len(unit) < 7:
        u, nxt = tokens[j], tokens[j + 1] if j + 1 < len(tokens) else None
        if u.kind == "SP" and (u.text.isspace() or u.text in ("$", "\\$")):
            j += 1
        elif u.kind == "OP" and u.text == "/" and nxt is not None and _is_unit(nxt) and u.end == nxt.start:
            unit.append(j)  # `snakes/jaguar`, `$60/large painting`
            j += 1
        elif unit and u.kind == "WORD" and u.text in ("of", "per") and _next_is_unit(tokens, j + 1):
            unit.append(j)
            j += 1
        elif _is_unit(u):
            unit.append(j)
            j += 1
        else:
            break
    return j, unit


def _next_is_unit(tokens: list[Token], j: int) -> bool:
    nxt = next((t for t in tokens[j:j + 3] if t.kind != "SP"), None)
    return nxt is not None and _is_unit(nxt)


def _unit_words(tokens: list[Token], start: int) -> list[str]:
    words = []
    for t in tokens[start:]:
        if t.kind == "SP" or (t.kind == "OP" and t.text == "/"):
            continue
        if not _is_unit(t):
            break
        words.append(t.text.lower().rstrip("s"))
    return words


def _same_units(tokens: list[Token], number: int, j: int) -> bool:
    """The number after the `+`/`-` at j has no unit or the same one as tokens[number]."""
    nxt = next((k for k in range(j + 1, min(len(tokens), j + 4)) if tokens[k].kind == "NUM"), None)
    theirs = _unit_words(tokens, nxt + 1) if nxt is not None else []
    ours = _unit_words(tokens, number + 1)
    return not (theirs and ours and theirs != ours and theirs[0] in _MEASURES and ours[0] in _MEASURES)


def _continues_calculation(tokens: list[Token], number: int, j: int, latex_unit: bool) -> bool:
    """Whether the unit after tokens[number] sits inside a calculation: an operator follows it
    (not `^`: `cm^2`; not `/`: `5 minutes/100 meters` is a rate), or `=` follows and an operator
    precedes the number (`4 houses * 3 gnomes = 12`, never `2 hours = 120` or `1/4 cup = 4 tbsp`)."""
    nxt = tokens[j] if j < len(tokens) else None
    after = next((t for t in tokens[j + 1:] if t.kind != "SP"), None)
    if nxt is None:
        return False
    if nxt.kind == "OP" and nxt.text in "+-":
        return _same_units(tokens, number, j)  # `4 pounds - 6 ounces = 58 ounces` mixes units
    if nxt.kind == "OP" and nxt.text == "/":
        return not (after is not None and after.kind == "NUM" and after.start == nxt.end)  # `5 minutes/100 meters`
    if nxt.kind == "OP":
        return nxt.text != "^"
    if nxt.kind == "WORD" and nxt.text in ("x", "X"):
        return after is not None and after.kind == "NUM"
    if nxt.kind != "EQ" or latex_unit:
        return False
    before = next((t for t in reversed(tokens[:number]) if t.kind != "SP"), None)
    tight_fraction = before is not None and before.text == "/" and before.end == tokens[number].start
    return before is not None and (before.kind == "OP" or before.text in ("x", "X")) and not tight_fraction


def _times_letters(tokens: list[Token]) -> list[Token]:
    """`3 x 4` and `3x4` are products (GSM8K writes them); any other `x` is a variable."""
    solid = [t for t in tokens if t.kind != "SP"]
    index = {id(t): i for i, t in enumerate(solid)}
    out = []
    for t in tokens:
        if t.kind == "WORD" and t.text in ("x", "X"):
            i = index[id(t)]
            before = solid[i - 1] if i > 0 else None
            after = solid[i + 1] if i + 1 < len(solid) else None
            if (before and before.kind in ("NUM", "RP", "PCT") and after and after.kind in ("NUM", "LP")
                    and not (before.end == t.start and t.end == after.start and before.kind != "NUM")):
                t = Token("OP", "*", t.start, t.end, t.text)
        out.append(t)
    return out


# ---------------------------------------------------------------------------------------------
# Exact evaluation of one side


def _checked(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_VALUE_BITS or value.denominator.bit_length() > MAX_VALUE_BITS:
        raise Unreadable("value too large")
    return value


def _literal(text: str) -> Fraction:
    digits = re.sub(r"\{,\}|,\\!|,", "", text)
    if len(digits) > MAX_LITERAL_DIGITS:
        raise Unreadable("literal too long")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        raise Unreadable("a clock time or a code: 0900")
    return Fraction(digits)


class _Parser:
    """expr := term (+|- term)*; term := unary (*|/|implicit unary)*; unary := -unary | power;
    power := postfix (^ exponent)?; postfix := primary %?; primary := number | (expr) | {expr}
    | \\frac{a}{b} | \\sqrt{a}. `percent` says what `%` means: /100 (True) or nothing (False)."""

    def __init__(self, tokens: list[Token], percent: bool, division: str = "left"):
        self.toks = [t for t in tokens if t.kind != "SP"]
        self.i = 0
        self.percent = percent
        # How `a / b / c` groups: "left" (a/b)/c; "nested" a/(b/c) (`14 / 1 / 4 = 56`); "tight": a
        # `/` written without spaces binds first (`7/12 / 1/12 = 7`, `25 / 1/3 = 75`), as GSM8K means it.
        self.division = division

    def parse(self) -> Fraction:
        if not self.toks or len(self.toks) > MAX_SIDE_TOKENS:
            raise Unreadable("empty or too long")
        value = self.expr()
        if self.i != len(self.toks):
            raise Unreadable(f"unread {self.toks[self.i].text!r}")
        return value

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self, kind: str, text: str | None = None) -> Token:
        t = self.peek()
        if t is None or t.kind != kind or (text is not None and t.text != text):
            raise Unreadable(f"expected {text or kind}")
        self.i += 1
        return t

    def expr(self) -> Fraction:
        value = self.term()
        while (t := self.peek()) and t.kind == "OP" and t.text in "+-":
            self.i += 1
            rhs = self.term()
            value = _checked(value + rhs if t.text == "+" else value - rhs)
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while (t := self.peek()) is not None:
            if t.kind == "OP" and t.text in "*/":
                self.i += 1
                rhs = self.unary()
                if t.text == "/" and self.division == "nested" and (n := self.peek()) and n.kind == "OP" and n.text == "/":
                    self.i += 1
                    divisor = self.unary()
                    rhs = rhs / divisor if divisor else rhs
                if t.text == "/" and rhs == 0:
                    raise Unreadable("division by zero")
                value = _checked(value * rhs if t.text == "*" else value / rhs)
            elif t.kind in ("LP", "SQRT") and self.toks[self.i - 1].kind in ("NUM", "RP", "RB"):
                value = _checked(value * self.unary())  # 2(3+4), (2)(3), 2\sqrt{9}
            elif t.kind in ("NUM", "FRAC", "LB"):
                raise Unreadable("juxtaposed numbers")  # `2\frac12` (mixed number or product?), `2 3`
            else:
                break
        return value

    def unary(self) -> Fraction:
        t = self.peek()
        if t is not None and t.kind == "OP" and t.text in "+-":
            self.i += 1
            value = self.unary()
            return -value if t.text == "-" else value
        return self.power()

    def power(self) -> Fraction:
        base = self.postfix()
        t = self.peek()
        if t is None or t.kind != "OP" or t.text != "^":
            return base
        self.i += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "NUM":
            if len(nxt.text) != 1:
                raise Unreadable("2^10: LaTeX reads 2^1 0, prose 2^{10}")
            self.i += 1
            exponent = Fraction(nxt.text)
        elif nxt is not None and nxt.kind in ("LB", "LP"):
            exponent = self.primary()
        elif nxt is not None and nxt.kind == "OP" and nxt.text == "-":
            self.i += 1
            exponent = -self.power_operand()
        else:
            raise Unreadable("exponent")
        return _power(base, exponent)

    def power_operand(self) -> Fraction:
        t = self.peek()
        if t is not None and t.kind == "NUM" and len(t.text) == 1:
            self.i += 1
            return Fraction(t.text)
        return self.primary()

    def postfix(self) -> Fraction:
        value = self.primary()
        t = self.peek()
        if t is not None and t.kind == "PCT":
            self.i += 1
            value = value / 100 if self.percent else value
        return value

    def primary(self) -> Fraction:
        t = self.peek()
        if t is None:
            raise Unreadable("missing operand")
        if t.kind == "NUM":
            self.i += 1
            slash, den = self.peek(), self.peek(1)
            if (self.division == "tight" and slash is not None and den is not None and slash.text == "/"
                    and den.kind == "NUM" and t.end == slash.start and slash.end == den.start):
                self.i += 2
                if _literal(den.text) == 0:
                    raise Unreadable("division by zero")
                return _literal(t.text) / _literal(den.text)
            return _literal(t.text)
        if t.kind in _OPENERS:
            self.i += 1
            value = self.expr()
            self.take("RB" if t.kind == "LB" else "RP")
            return value
        if t.kind == "FRAC":
            self.i += 1
            num, den = self.group(), self.group()
            if den == 0:
                raise Unreadable("division by zero")
            return _checked(num / den)
        if t.kind == "SQRT":
            self.i += 1
            return _exact_sqrt(self.group())
        raise Unreadable(f"unexpected {t.text!r}")

    def group(self) -> Fraction:
        self.take("LB")
        value = self.expr()
        self.take("RB")
        return value


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        raise Unreadable("exponent")
    n = int(exponent)
    if base == 0 and n < 0:
        raise Unreadable("division by zero")
    size = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if size * abs(n) > MAX_VALUE_BITS:
        raise Unreadable("power too large")
    return base**n


def _exact_sqrt(value: Fraction) -> Fraction:
    """The square root when it is rational; anything else is skipped, not approximated."""
    if value < 0:
        raise Unreadable("negative root")
    num, den = _isqrt_exact(value.numerator), _isqrt_exact(value.denominator)
    if num is None or den is None:
        raise Unreadable("irrational root")
    return Fraction(num, den)


def _isqrt_exact(n: int) -> int | None:
    from math import isqrt

    r = isqrt(n)
    return r if r * r == n else None


def side_values(tokens: list[Token]) -> set[Fraction]:
    """Every reading of one side: one, or two when a `%` may mean /100 or a plain number."""
    percents = (True, False) if any(t.kind == "PCT" for t in tokens) else (True,)
    groupings = ("left", "nested", "tight") if sum(t.text == "/" for t in tokens) >= 2 else ("left",)
    return {_Parser(tokens, percent, grouping).parse() for percent in percents for grouping in groupings}


# ---------------------------------------------------------------------------------------------
# Finding the two sides of each `=`

# Words that join numbers into one calculation ("20% of 50 + 10"): a side next to one is unread.
# Words that join a number next to them into a calculation (`20% of 50 + 10`, `5 times 3`) ...
_OPERATOR_WORDS = {"of", "times", "by", "plus", "minus", "over", "per", "divided", "multiplied", "into",
                   "than", "squared", "cubed", "less", "more", "x"}
# ... and words that are a calculation by themselves (`twice 5 + 3`).
_MULTIPLIER_WORDS = {"twice", "half", "double", "triple", "thrice", "quarter", "third"}
_LATEX_PREP = [
    (re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}"), "\n"),
    (re.compile(r"\\\\\s*(?:\\hline\s*)?&"), " "),  # align rows continue the previous one: `\\ &= 7`
    (re.compile(r"\\\\"), "\n"),
    (re.compile(r"(\\[dt]?frac)\s*(\d)\s*(\d)"), r"\1{\2}{\3}"),  # \frac12
    (re.compile(r"(\\[dt]?frac)\s*(\{[^{}]*\})\s*(\d)"), r"\1\2{\3}"),  # \frac{1}2
    (re.compile(r"(\\[dt]?frac)\s*(\d)\s*\{"), r"\1{\2}{"),  # \frac1{2}
    (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),
    (re.compile(r"\\(?:boxed|fbox)\s*(?=\{)"), ""),  # `= \boxed{16}`: the braces stay, a group
]
_ANNOTATION = re.compile(r"<<([^<>]{1,400})>>")


@dataclass(frozen=True)
class _Claim:
    left: list[Token]
    right: list[Token]
    text: str
    approx: bool
    tally: bool = False  # the right side opens with a running total: `5 + 3 = 8 + 2 = 10`
    hundredths: bool = False  # the result is stated in cents or percent: `$1 / 2 = 50 cents`
    chained: bool = False  # the left side is the right side of the `=` before: `3 + 4 = 7 = 8`


def _strip_space(run: list[Token]) -> list[Token]:
    lo, hi = 0, len(run)
    while lo < hi and run[lo].kind == "SP":
        lo += 1
    while hi > lo and run[hi - 1].kind == "SP":
        hi -= 1
    return run[lo:hi]


def _balanced_core(run: list[Token], open_edge: bool) -> list[Token] | None:
    """Drop unmatched openers at the start (`open_edge`, left sides: `(48/2 = 24`) or unmatched
    closers at the end (right sides: `= 24)`); any other imbalance is unread."""
    depth = lowest = 0
    for t in run:
        depth += (t.kind in _OPENERS) - (t.kind in _CLOSERS)
        lowest = min(lowest, depth)
    solid = [t for t in run if t.kind != "SP"]
    if open_edge and depth > 0 and lowest == 0 and all(t.kind in _OPENERS for t in solid[:depth]):
        run = _strip_space(run[run.index(solid[depth - 1]) + 1:])
    elif not open_edge and depth < 0 and all(t.kind in _CLOSERS for t in solid[depth:]):
        run = _strip_space(run[:run.index(solid[depth])])
    elif depth != 0 or lowest != 0:
        return None
    depth = lowest = 0
    for t in run:
        depth += (t.kind in _OPENERS) - (t.kind in _CLOSERS)
        lowest = min(lowest, depth)
    return run if run and depth == 0 and lowest == 0 else None


def _neighbour(tokens: list[Token], index: int, step: int) -> Token | None:
    while 0 <= index < len(tokens):
        if tokens[index].kind != "SP":
            return tokens[index]
        index += step
    return None


def _touching(tokens: list[Token], lo: int, hi: int) -> bool:
    """No space and no `$` between tokens lo and hi (`a\\left(`, `2x`, `355\\boxed{680}`)."""
    return all(not t.text.isspace() and "$" not in t.text for t in tokens[lo + 1:hi])


def _fence_is_foreign(tokens: list[Token], stop_index: int, edge_index: int, step: int) -> bool:
    """Whether the token that ends a side (`stop`) makes the side part of something larger:
    a variable or function (`2x`, `f(2)`, `\\sin 30`), an operator word (`20% of 50`), a time
    (`2:30`), a factorial, a series (`3 + 7 + \\ldots`), a calculation going on past a line
    break or a unit (`7\\cdot 6\\cdot\\n5`, `5 apples + 3`)."""
    if not 0 <= stop_index < len(tokens):
        return False
    stop = tokens[stop_index]
    if stop.kind in ("EQ", "REL"):
        return False
    touching = _touching(tokens, *sorted((stop_index, edge_index)))
    beyond = _neighbour(tokens, stop_index + step, step)
    if beyond is not None and beyond.kind == "OP" and not (step > 0 and beyond.text == "/" and stop.kind == "WORD"):
        return True  # ... except `= 800 minutes/day`
    if stop.kind == "NL":  # LaTeX goes on across lines: `\log_{2002}\n\frac{1}{2002}`
        return beyond is not None and beyond.kind in ("RB", "CMD")
    if stop.kind in ("WORD", "TEXT"):
        word = stop.text.lower()
        numeric_beyond = beyond is not None and beyond.kind in ("NUM", "PCT", "RP", "RB", "LP", "FRAC", "SQRT")
        if stop.kind == "WORD" and (touching or word in _MULTIPLIER_WORDS
                                    or ((word in _OPERATOR_WORDS or (word == "and" and step < 0)) and numeric_beyond)
                                    or (len(stop.text) == 1 and stop.text not in _FRESH_LETTERS)):
            return True
        return numeric_beyond and beyond.kind != "NUM"
    if stop.kind == "CMD":
        return stop.text not in _SAFE_CMDS or (touching and stop.text in ("\\boxed", "\\fbox"))
    if stop.kind == "PUNCT":
        if step < 0:  # `2:30`, `3.5`-like `. 84`, `14, 400` (a thousands comma with a space)
            edge = tokens[edge_index]
            glued_number = beyond is not None and beyond.kind == "NUM" and beyond.end == stop.start
            return ((touching and stop.text not in '":' ) or (stop.text == ":" and glued_number)
                    or (stop.text == "." and beyond is not None and beyond.kind == "NUM")
                    or (stop.text == "," and glued_number and len(edge.text) == 3 and edge.text.isdigit()))
        glued = beyond is not None and beyond.start == stop.end
        # `3,5`, `2:30`, `8.333...`, `83.\overline{3}`; a sentence's `.` or `,` is no part of the number
        return touching and (stop.text not in _SAFE_PUNCT or (stop.text in ",:" and glued and beyond.kind == "NUM")
                             or (stop.text == "." and glued and not beyond.text.isspace()))
    return False


def _left_side(tokens: list[Token], eq: int) -> tuple[list[Token], int, int] | None:
    """The side before `=`: (tokens, where it starts in the text, index of the token before it)."""
    j = eq - 1
    while j >= 0 and tokens[j].kind in _ARITH and eq - j <= 4 * MAX_SIDE_TOKENS:
        j -= 1
    if j >= 0 and tokens[j].kind in _ARITH:
        return None  # far longer than any stated calculation
    edge = j + 1
    while edge < eq and tokens[edge].kind == "SP":
        edge += 1
    raw = _strip_space(tokens[j + 1:eq])
    if not raw or _fence_is_foreign(tokens, j, edge, -1):
        return None
    run = _balanced_core(raw, open_edge=True)
    if not run or run[-1].kind == "OP":
        return None
    first = run[0]
    opens_math = edge > 0 and tokens[edge - 1].text in ("$", "\\(", "\\[")  # `equals $-80 + 2(81)`
    if first.kind == "OP" and (first.text != "-" or (_minus_is_binary(tokens, j) and not opens_math)):
        return None  # `x + 5 = 10`, `knives - 5 = 10`: the left side continues past the stop
    stop = tokens[j] if j >= 0 else None
    if stop is not None and stop.kind in ("WORD", "TEXT") and (
            all(t.kind not in ("OP", "FRAC", "SQRT") for t in run) or _is_hyphen_chain(run)):
        return None  # `Week 2 = ...`, `half of 48 = 24`, `Weeks 1-2 = 96 - 70`: labels and phrases
    return run, raw[0].start, j


def _minus_is_binary(tokens: list[Token], stop_index: int) -> bool:
    stop = tokens[stop_index] if stop_index >= 0 else None
    if stop is not None and stop.kind == "NL":  # `= 24\n- 4 = 20`: the line goes on from the last one
        before = _neighbour(tokens, stop_index - 1, -1)
        return before is not None and before.kind in ("NUM", "RP", "RB", "PCT")
    return stop is not None and (stop.kind in ("WORD", "TEXT", "CMD", "NUM")
                                 or (stop.kind == "PUNCT" and stop.text in "!|'_[]"))


def _is_hyphen_chain(run: list[Token]) -> bool:
    """`6-8-10`, `1-2`: rising numbers joined by touching hyphens (a triangle's sides, a range)."""
    solid = [t for t in run if t.kind != "SP"]
    if len(solid) < 3 or len(solid) != len(run) or len(solid) % 2 == 0:
        return False
    if not (all(t.kind == ("NUM" if i % 2 == 0 else "OP") and (i % 2 == 0 or t.text == "-")
                for i, t in enumerate(solid)) and all(a.end == b.start for a, b in zip(solid, solid[1:]))):
        return False
    try:
        numbers = [_literal(t.text) for t in solid[::2]]
    except Unreadable:
        return True
    return all(a < b for a, b in zip(numbers, numbers[1:]))  # `15-12` is a subtraction


def _right_side(tokens: list[Token], eq: int) -> tuple[list[Token], bool, int] | None:
    """The side after `=`: (tokens, approximate?, index of the token that ends it)."""
    j = eq + 1
    approx = tokens[eq].text != "="
    while j < len(tokens) and tokens[j].kind == "SP":
        j += 1
    if j < len(tokens) and tokens[j].kind == "WORD" and tokens[j].text.lower() in _APPROX_WORDS:
        approx, j = True, j + 1
    start = j
    while j < len(tokens) and tokens[j].kind in _ARITH and j - start <= 4 * MAX_SIDE_TOKENS:
        j += 1
    if j < len(tokens) and tokens[j].kind in _ARITH:
        return None
    edge = j - 1
    while edge >= start and tokens[edge].kind == "SP":
        edge -= 1
    raw = _strip_space(tokens[start:j])
    if not raw or _fence_is_foreign(tokens, j, edge, 1):
        return None
    run = _balanced_core(raw, open_edge=False)
    if not run or run[-1].kind == "OP" or (run[0].kind == "OP" and run[0].text != "-"):
        return None
    return run, approx, j



def _claims(text: str) -> Iterator[_Claim]:
    tokens = _tokens(text)
    equals = [k for k, t in enumerate(tokens) if t.kind == "EQ"][:MAX_CLAIMS]
    for k in equals:
        left, right = _left_side(tokens, k), _right_side(tokens, k)
        if left is None or right is None:
            yield _Claim([], [], "", False)  # counted as skipped
            continue
        (lhs, start, before), (rhs, approx, after) = left, right
        line_start = max(text.rfind("\n", 0, start) + 1, start - 200)  # the claim's line, at most
        line_end = text.find("\n", rhs[-1].end, rhs[-1].end + 200)  # 200 characters either side
        line = text[line_start: line_end if line_end >= 0 else rhs[-1].end + 200]
        stop_after = tokens[after] if after < len(tokens) else None
        if _MODULAR_CONTEXT.search(line) or (
                before >= 0 and tokens[before].text == "," and stop_after is not None and stop_after.text == ","):
            yield _Claim([], [], "", False)  # congruences; element-wise lists `2/6, 2/8 = 1/3, 1/4`
            continue
        solid = [t for t in rhs if t.kind != "SP"]
        tally = (solid[0].kind == "NUM" and len(solid) > 1 and solid[1].kind == "OP"
                 and _neighbour(tokens, after, 1) is not None and _neighbour(tokens, after, 1).kind == "EQ")
        hundredths = stop_after is not None and stop_after.text.lower() in _HUNDREDTHS_WORDS
        chained = before >= 0 and tokens[before].kind == "EQ"
        yield _Claim(lhs, rhs, text[start:rhs[-1].end], approx or bool(_APPROX_CONTEXT.search(line)),
                     tally, hundredths, chained)


def _annotation_claims(annotations: list[str]) -> Iterator[_Claim]:
    """GSM8K calculator annotations `<<48/2=24>>`: calculator syntax, every `=` a claim."""
    for note in annotations:
        sides = [_strip_space(_tokens(part)) for part in note.split("=")]
        for lhs, rhs in zip(sides, sides[1:]):
            readable = all(t.kind in _ARITH or t.text in "xX" for t in lhs + rhs)
            lhs = [Token("OP", "*", t.start, t.end, t.text) if t.text in "xX" else t for t in lhs]
            rhs = [Token("OP", "*", t.start, t.end, t.text) if t.text in "xX" else t for t in rhs]
            yield _Claim(lhs if readable else [], rhs, f"<<{note}>>", False, False)


def _stated_readings(side: list[Token]) -> list[tuple[Fraction, Fraction, Fraction]] | None:
    """A side that is one stated number (`24`, `-3.50`, `12%`): its readings as (value, the unit
    of its last written digit, how far off "≈ value" may be); None for any other side."""
    core = [t for t in side if t.kind != "SP"]
    while len(core) > 2 and core[0].kind in _OPENERS and core[-1].kind in _CLOSERS:
        core = core[1:-1]  # `\boxed{16}`, `(5)`
    percent = bool(core) and core[-1].kind == "PCT"
    core = core[:-1] if percent else core
    sign = -1 if core and core[0].kind == "OP" and core[0].text == "-" else 1
    core = core[1:] if sign < 0 else core
    if len(core) != 1 or core[0].kind != "NUM":
        return None
    try:
        value = sign * _literal(core[0].text)
    except Unreadable:
        return None
    digits = re.sub(r"\{,\}|,\\!|,", "", core[0].text)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    zeros = 0 if decimals else len(digits) - len(digits.rstrip("0"))
    unit = Fraction(1, 10**decimals)
    slack = Fraction(10**zeros, 2) if zeros else unit  # ≈ 1,200 is good to the hundred
    readings = [(value, unit, slack)]
    return readings + [(value / 100, unit / 100, slack / 100)] if percent else readings


def _rounds_to(exact: Fraction, stated: Fraction, unit: Fraction, slack: Fraction, approx: bool) -> bool:
    """Is `stated` the exact value written to the precision the text itself shows?"""
    diff = abs(exact - stated)
    if (exact / unit).denominator != 1 and diff < unit:
        return True  # 10/3 = 3.33, $2.675 -> $2.68, 7/2 = 3 whole boxes: fewer digits than exact
    return approx and diff <= slack  # ≈ 1,200; about 33


def _holds(claim: _Claim, lhs: set[Fraction], rhs: set[Fraction]) -> bool:
    if lhs & rhs:
        return True
    for stated_side, exact_values in ((claim.right, lhs), (claim.left, rhs)):
        readings = _stated_readings(stated_side) or []
        if any(_rounds_to(e, value, unit, slack, claim.approx)
               for e in exact_values for value, unit, slack in readings):
            return True
    if claim.hundredths and _holds(_Claim(claim.left, claim.right, claim.text, claim.approx),
                                   {v * 100 for v in lhs}, rhs):
        return True
    if claim.tally:  # `5 + 3 = 8 + 2 = 10`: the next link checks the running total
        return bool({_literal(next(t for t in claim.right if t.kind != "SP").text)} & lhs)
    return False


def _is_calculation(claim: _Claim) -> bool:
    """At least one side computes something; `Day 1 = 5` and `x = 5` state, they do not calculate."""
    if not claim.chained and _stated_readings(claim.left) and _stated_readings(claim.right):
        return False  # `-6 = 2, which is impossible`: a statement, not a calculation
    if _is_hyphen_chain(claim.left) and _is_hyphen_chain(claim.right):
        return False  # `a 6-8-10 triangle = 3-4-5`
    stars = {t.source for t in claim.left + claim.right if t.kind == "OP" and t.text == "*"}
    if "*" in stars and len(stars) > 1:
        return False  # `3*2 = 3^2 + 3\cdot 2`: `*` is an operation the problem defined
    return claim.chained or any(t.kind in ("OP", "FRAC", "SQRT") for t in claim.left + claim.right)


def _prepare(text: str) -> tuple[str, list[str]]:
    text = (text or "")[:MAX_TEXT_CHARS]
    annotations = _ANNOTATION.findall(text)
    text = _ANNOTATION.sub("", text)
    for pattern, replacement in _LATEX_PREP:
        text = pattern.sub(replacement, text)
    return text, annotations


def _judged_claims(text: str) -> Iterator[tuple[_Claim, WrongStep | None] | None]:
    """Each claim in order: (claim, the wrong step or None), or None for a skipped claim."""
    prepared, annotations = _prepare(text)
    for claim in list(_annotation_claims(annotations)) + list(_claims(prepared)):
        if not claim.left or not claim.right or not _is_calculation(claim):
            yield None
            continue
        try:
            lhs, rhs = side_values(claim.left), side_values(claim.right)
        except (Unreadable, ValueError, ZeroDivisionError, OverflowError):
            yield None
            continue
        if _holds(claim, lhs, rhs):
            yield claim, None
            continue
        stated_right = _stated_readings(claim.right) is not None or _stated_readings(claim.left) is None
        computed, stated = (lhs, claim.right) if stated_right else (rhs, claim.left)
        yield claim, WrongStep(claim.text, min(computed), "".join(t.text for t in stated).strip())


def check_steps(text: str) -> StepReport:
    """Every arithmetic claim of `text`: counts and the wrong ones. Never raises."""
    report = StepReport()
    for judged in _judged_claims(text):
        if judged is None:
            report.skipped += 1
            continue
        report.checked += 1
        if judged[1] is not None:
            report.wrong.append(judged[1])
    return report


def first_wrong_step(text: str) -> WrongStep | None:
    """The first arithmetic claim of `text` that does not hold, or None. Never raises."""
    for judged in _judged_claims(text):
        if judged is not None and judged[1] is not None:
            return judged[1]
    return None
