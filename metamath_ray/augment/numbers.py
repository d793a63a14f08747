"""Finding the numbers of a question that can be masked as an unknown (FOBAR, SV).

A *maskable* number is a quantity the question states: "$80,000", "20%", "1,360 meals",
"two", "half as many" (GSM8K) or a literal in the LaTeX of a MATH problem ("$2^{10}$").
Not maskable: ordinals ("5th"), times ("3:00"), ranges ("3-5"), digits glued to letters
("2x", "a_1", "\\frac12"), subscripts and number bases ("10101_3"), and anything inside an
[asy] figure. Only the digits (or the number word) are replaced, so "$", "%", units and
punctuation around the number stay where they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class NumberSpan:
    """One maskable number: `text[start:end]` is replaced by `replacement(var)`."""

    start: int
    end: int
    surface: str  # the text as written: "80,000", "two", "half"
    value: str  # the value x must take: "80000", "2", "50"
    suffix: str = ""  # text the mask needs after the variable ("half" -> "x%")

    def replacement(self, var: str) -> str:
        return var + self.suffix


# --- GSM8K -------------------------------------------------------------------------------

_GSM_NUMBER = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,360 / 80,000.50
    r"|\d+(?:\.\d+)?(?:/\d+)?"  # 12 / 5.50 / 1/2
    r"|\.\d+"  # .5
)

# Values as MetaMath's GSM8K-Backward questions use them; "half" becomes "x%" (x = 50).
NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
    "eighty": "80", "ninety": "90",
}
_WORD_RE = re.compile(r"\b(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True) + ["half"]) + r")\b",
                      re.IGNORECASE)
# "no one", "the one", "one another": pronoun uses of "one" carry no quantity.
_ONE_NOT_BEFORE = {"no", "any", "every", "each", "some", "this", "that", "which", "the", "another",
                   "someone", "little"}
_ONE_NOT_AFTER = {"another", "other", "day", "way", "thing", "or", "and", "by"}
# "half an hour", "half a dozen": "x% an hour" would not be a sentence.
_HALF_NOT_AFTER = {"a", "an"}


def _word_before(text: str, pos: int) -> str:
    m = re.search(r"([A-Za-z']+)\W*$", text[:pos])
    return m.group(1).lower() if m else ""


def _word_after(text: str, pos: int) -> str:
    m = re.match(r"\s*([A-Za-z']+)", text[pos:])
    return m.group(1).lower() if m else ""


def _gsm_digit_spans(text: str) -> list[NumberSpan]:
    spans = []
    for m in _GSM_NUMBER.finditer(text):
        s, e = m.span()
        before = text[s - 1] if s > 0 else " "
        after = text[e] if e < len(text) else " "
        after2 = text[e + 1] if e + 1 < len(text) else " "
        if before.isalnum() or before in "_.:/":
            continue  # "A4", "3:00", part of a longer token
        if after.isalpha() or after in "_:/" or (after == "," and after2.isdigit()):
            continue  # "5th", "10am", "3:00", a list written without spaces
        if after == "." and after2.isdigit():
            continue  # an IP-like or version string "1.2.3"
        if before in "-–" or (after in "-–" and not after2.isalpha()):
            continue  # ranges and minus signs ("3-5", "-4"); "5-year-old" is kept
        surface = m.group(0)
        spans.append(NumberSpan(s, e, surface, _plain_value(surface.replace(",", ""))))
    return spans


def _gsm_word_spans(text: str) -> list[NumberSpan]:
    spans = []
    for m in _WORD_RE.finditer(text):
        s, e = m.span()
        word = m.group(1).lower()
        if (s > 0 and text[s - 1] in "-–") or (e < len(text) and text[e] in "-–"):
            continue  # "twenty-five", "one-third", "two-thirds"
        before, after = _word_before(text, s), _word_after(text, e)
        if word == "half":
            if after in _HALF_NOT_AFTER:
                continue
            spans.append(NumberSpan(s, e, m.group(1), "50", suffix="%"))
            continue
        if word == "one" and (before in _ONE_NOT_BEFORE or after in _ONE_NOT_AFTER):
            continue
        spans.append(NumberSpan(s, e, m.group(1), NUMBER_WORDS[word]))
    return spans


def gsm8k_spans(text: str) -> list[NumberSpan]:
    """Maskable numbers of a GSM8K question, in reading order."""
    spans = _gsm_digit_spans(text) + _gsm_word_spans(text)
    return sorted(spans, key=lambda sp: sp.start)


# --- MATH --------------------------------------------------------------------------------

_MATH_NUMBER = re.compile(r"\d{1,3}(?:\{,\}\d{3})+|\d+(?:\.\d+)?|\.\d+")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
# Arguments of these commands are labels or formats, not quantities.
_NON_QUANTITY_ARGS = re.compile(r"\\(?:begin|end|label|ref|color|textcolor|hspace|vspace)\{[^{}]*\}")


def _blocked_ranges(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _ASY.finditer(text)] + [m.span() for m in _NON_QUANTITY_ARGS.finditer(text)]


def math_spans(text: str) -> list[NumberSpan]:
    """Maskable literals of a MATH problem (inside or outside $...$), in reading order."""
    blocked = _blocked_ranges(text)
    spans = []
    for m in _MATH_NUMBER.finditer(text):
        s, e = m.span()
        if any(bs <= s < be for bs, be in blocked):
            continue
        before = text[s - 1] if s > 0 else " "
        after = text[e] if e < len(text) else " "
        if before.isalnum() or before in "_\\.":
            continue  # "a_1", "x2", "\frac12" (the "c" before "12"), "3.5" fragments
        if text[max(0, s - 2):s] == "_{":
            continue  # "a_{10}": an index, not a quantity
        if after.isalpha() or after == "_":
            continue  # "2x" (coefficient glued to a variable), "10101_3" (base notation)
        if after == "." and e + 1 < len(text) and text[e + 1].isdigit():
            continue
        surface = m.group(0)
        spans.append(NumberSpan(s, e, surface, _plain_value(surface.replace("{,}", ""))))
    return spans


# --- shared ------------------------------------------------------------------------------

def _plain_value(number: str) -> str:
    """'.5' -> '0.5'; everything else as written (commas already removed)."""
    return "0" + number if number.startswith(".") else number


def spans_for(text: str, dataset: str) -> list[NumberSpan]:
    if dataset == "gsm8k":
        return gsm8k_spans(text)
    if dataset == "math":
        return math_spans(text)
    raise ValueError(f"unknown dataset {dataset!r}")


def unknown_var(dataset: str) -> str:
    """MetaMathQA writes the unknown as x in GSM8K questions and X in MATH problems."""
    return "X" if dataset == "math" else "x"


def has_free_variable(text: str, var: str) -> bool:
    """True when `var` already appears as a standalone symbol (masking would be ambiguous)."""
    return re.search(rf"(?<![A-Za-z\\]){re.escape(var)}(?![A-Za-z])", text) is not None


def mask(text: str, span: NumberSpan, var: str) -> str:
    return text[: span.start] + span.replacement(var) + text[span.end:]


def numbers_in(text: str) -> list[str]:
    """Every number written in digits in `text`, commas removed ("1,360" -> "1360")."""
    found = re.findall(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+", text)
    return [n.replace(",", "") for n in found]
