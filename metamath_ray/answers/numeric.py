"""Exact rational parsing of numeric answers: the fast path that decides most pairs.

`parse_number` reads an already cleaned answer (see normalize.clean_latex) as a
`fractions.Fraction`, never a float, so equality is exact: 0.1 + 0.2 style drift cannot
happen and a rounded decimal never equals a non-terminating value (0.33 != 1/3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_NUMBER_CHARS = 200  # a numeric answer longer than this is not a numeric answer
MAX_EXPONENT = 400  # 10^k with |k| above this is refused (huge integers cost time)

_DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SDEC = r"[-+]?" + _DEC
_PERCENT = re.compile(r"\s*(?:\\?%|percent(?:age)?|pct)\s*$")
_CURRENCY = re.compile(r"^(?:\\?\$|€|£|¥|USD\b|US\$)\s*|\s*(?:\\?\$|€|£|¥|dollars?|USD)\s*$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_THOUSANDS_SPACE = re.compile(r"^\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_DECIMAL = re.compile(r"^" + _DEC + r"$")
_SCI_E = re.compile(r"^(" + _DEC + r")[eE]([-+]?\d+)$")
_SCI_TIMES = re.compile(r"^(" + _DEC + r")(?:\\times|\\cdot|\*|×)10\^(?:\{([-+]?\d+)\}|(\d))$")
_POW10 = re.compile(r"^10\^(?:\{([-+]?\d+)\}|(\d))$")
_FRAC = re.compile(
    r"^\\frac(?:\{(" + _SDEC + r")\}|(\d))(?:\{(" + _SDEC + r")\}|(\d))$"
)
_SLASH = re.compile(r"^(" + _SDEC + r")/(" + _SDEC + r")$")
_MIXED_FRAC = re.compile(r"^(\d+)(\\frac.*)$")
_MIXED_SLASH = re.compile(r"^(\d+) (\d+/\d+)$")


@dataclass(frozen=True, slots=True)
class Number:
    value: Fraction
    percent: bool = False


def _decimal(text: str) -> Fraction | None:
    if _DECIMAL.match(text):
        return Fraction(text if not text.endswith(".") else text[:-1])
    return None


def _signed_decimal(text: str) -> Fraction | None:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    value = _decimal(body)
    return None if value is None else sign * value


def _pow10(exponent: str) -> Fraction | None:
    k = int(exponent)
    if abs(k) > MAX_EXPONENT:
        return None
    return Fraction(10) ** k


def _unsigned(body: str) -> Fraction | None:
    """An unsigned numeric literal: decimal, thousands, scientific, fraction or mixed number."""
    value = _decimal(body)
    if value is not None:
        return value
    if _THOUSANDS.match(body):
        return Fraction(body.replace(",", ""))
    if _THOUSANDS_SPACE.match(body):
        return Fraction(body.replace(" ", ""))
    m = _MIXED_SLASH.match(body)
    if m:
        frac = _unsigned(m.group(2))
        if frac is not None and 0 < frac < 1:
            return int(m.group(1)) + frac
        return None
    compact = body.replace(" ", "")
    m = _FRAC.match(compact)
    if m:
        num = _signed_decimal(m.group(1) or m.group(2))
        den = _signed_decimal(m.group(3) or m.group(4))
        if num is None or not den:
            return None
        return num / den
    m = _SLASH.match(compact)
    if m:
        num, den = _signed_decimal(m.group(1)), _signed_decimal(m.group(2))
        if num is None or not den:
            return None
        return num / den
    m = _MIXED_FRAC.match(compact)
    if m:
        # 2\frac12 is the mixed number 5/2, never the product 2 * 1/2
        frac = _unsigned(m.group(2))
        if frac is not None and 0 < frac < 1 and "-" not in m.group(2):
            return int(m.group(1)) + frac
        return None
    m = _SCI_E.match(compact)
    if m:
        scale = _pow10(m.group(2))
        return None if scale is None else Fraction(m.group(1)) * scale
    m = _SCI_TIMES.match(compact)
    if m:
        scale = _pow10(m.group(2) or m.group(3))
        return None if scale is None else Fraction(m.group(1)) * scale
    m = _POW10.match(compact)
    if m:
        return _pow10(m.group(1) or m.group(2))
    return None


def parse_number(text: str) -> Number | None:
    """Read a cleaned answer as an exact number, or None if it is not a plain number."""
    if not text or len(text) > MAX_NUMBER_CHARS:
        return None
    s = text.strip()
    percent = False
    m = _PERCENT.search(s)
    if m:
        percent = True
        s = s[: m.start()]
    s = _CURRENCY.sub("", s).strip()
    sign = 1
    while s[:1] in ("-", "+"):
        if s[0] == "-":
            sign = -sign
        s = s[1:].lstrip()
    s = _CURRENCY.sub("", s).strip()  # "-$5" and "$-5" both
    if s[:1] == "-":
        sign, s = -sign, s[1:].lstrip()
    if s.startswith("(") and s.endswith(")") and s.count("(") == 1:
        s = s[1:-1].strip()  # "(5)" and "-(5)"; tuples never reach here with one element
    if not s or not (s[0].isdigit() or s[0] in ".\\"):
        return None
    value = _unsigned(s)
    if value is None:
        return None
    return Number(sign * value, percent)


def format_number(value: Fraction) -> str:
    """Canonical display: integers plainly, terminating decimals as decimals, else \\frac."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den == 1 and max(twos, fives) <= 12:
        digits = max(twos, fives)
        scaled = abs(value.numerator) * (10**digits // value.denominator)
        text = str(scaled).rjust(digits + 1, "0")
        out = text[:-digits] + "." + text[-digits:]
        return ("-" if value < 0 else "") + out
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
