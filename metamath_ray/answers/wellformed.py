"""Does a text read as an answer (or as prose at all)? Pure, bounded checks run before comparing.

`is_equivalent` reduces prose to its last number, so "row13 disindraw whe perimeter 100 ook will"
used to equal 100. A random model's output is exactly such subword soup: pieces glued into
non-words, numbers inside words, control bytes. `malformed_answer(text)` names what makes a final
answer unusable, or returns None; "36 dollars", "She has 36 apples", "8\\sqrt{3} square inches",
"\\frac{3}{2}", "(1, 2)", matrices and "5 hours and 30 minutes" are all well formed.

Words are judged against a list of the ~10,000 words of GSM8K and MATH training text
(`data/words/words.txt.gz`, rebuilt by tools/build_wordlist.py). The same token scan
(`scan_tokens`) serves the rewrite checks in `augment.text_quality`, so there is one notion
of "reads as text" in the package.
"""

from __future__ import annotations

import functools
import gzip
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources

# Gold answers of GSM8K and MATH are at most ~160 characters (MATH's 3x3 matrices); an answer
# ten times that long is a chain of thought or noise, not a final answer.
MAX_ANSWER_CHARS = 1_000
# Words one final answer may hold: "She has 36 apples left" has four; more is a sentence chain.
MAX_ANSWER_WORDS = 24
# Unknown words one answer may hold before it reads as soup: a name ("Devon"), a rare unit.
MAX_UNKNOWN_WORDS = 1

# Control bytes other than whitespace (tab, line breaks, \v and \f: "\frac" typed into a
# non-raw Python string becomes "\x0crac", a known artefact of hand-written test answers).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_UNPRINTABLE_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}  # control, surrogate, private use, unassigned
# LaTeX markup is not prose: environment names ("pmatrix") and command names ("\frac") go first.
_LATEX_ENV = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
# A token: a run of letters and digits (any script), with decimal/thousands parts of a number.
_TOKEN = re.compile(r"[^\W_]+(?:[.,]\d+)*")
_GREEK = re.compile(r"[\u0370-\u03ff]$")
_LOOK = 16  # characters looked at around a token for its neighbours
_ORDINALS = frozenset({"st", "nd", "rd", "th", "sts", "nds", "rds", "ths"})
_MATH_MARKS = set("+-*/=^_(){}[]<>|&")
_RUNS = re.compile(r"[A-Za-z]+|\d[\d.,]*|[^\W\d_]+")
# Letter runs that do precede a number in real math text ("sin2x", "log10", "cos3").
_FUNCTION_NAMES = frozenset("sin cos tan cot sec csc log exp arcsin arccos arctan sinh cosh tanh".split())
# Two-letter English words and units; other two-letter runs are neither words nor evidence.
_SHORT_WORDS = frozenset(
    "a an am as at be by do go he if in is it me my no of on or so to up us we ok oz lb kg km cm mm "
    "ml mg ft hr pm mi sq yd mph".split()
)


@functools.lru_cache(maxsize=1)
def known_words() -> frozenset[str]:
    """The lower-cased words of GSM8K and MATH training text (3+ letters, seen 3+ times)."""
    blob = (resources.files("metamath_ray") / "data" / "words" / "words.txt.gz").read_bytes()
    return frozenset(gzip.decompress(blob).decode("utf-8").split())


def has_unprintable(text: str) -> bool:
    """Control bytes, surrogates, private-use or unassigned code points, or U+FFFD (a decoding
    error's replacement character); tabs and line breaks are fine."""
    if _ASCII_CONTROL.search(text):
        return True
    if text.isascii():
        return False
    return any(
        ch == "\ufffd" or unicodedata.category(ch) in _UNPRINTABLE_CATEGORIES
        for ch in text if not ch.isascii()
    )


@dataclass
class TokenScan:
    """What the tokens of a text are: known words, unknown words, numbers glued into words."""

    known: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    glued: list[str] = field(default_factory=list)  # "row13", "abc123": a number inside a word
    numbers: int = 0

    @property
    def words(self) -> int:
        return len(self.known) + len(self.unknown)


def _is_glued(token: str, known, in_prose: bool) -> bool:
    """A number inside a word. "10mph", "3rd", "x2", "H2O", "sin2x" are not; "row13", "2If100" are,
    and so is "227ru" among words (alone or in a formula, "2xy" is a product)."""
    runs = _RUNS.findall(token)
    for i, run in enumerate(runs):
        if not run.isascii() or run[0].isdigit():  # "比例为13/28" is prose in another script
            continue
        if len(run) < 2:
            continue  # a variable: "2x", "x2", "H2O"
        if i > 0 and i == len(runs) - 1 and _unit_suffix(run.lower(), known, in_prose):
            continue  # a unit or ordinal written onto its number: "100apples", "10mph", "4ths", "5cm"
        if run.lower() not in _FUNCTION_NAMES:
            return True
    return False


def _unit_suffix(run: str, known, in_prose: bool) -> bool:
    if len(run) == 2:
        return run in _SHORT_WORDS or run in _ORDINALS or not in_prose
    return known(run) or run in _ORDINALS


def _neighbours(text: str, start: int, end: int) -> str:
    """The nearest non-blank characters before and after text[start:end] (a local look, so a
    scan stays linear in the text's length)."""
    return text[max(0, start - _LOOK):start].rstrip()[-1:] + text[end:end + _LOOK].lstrip()[:1]


def _in_math(neighbours: str) -> bool:
    """Whether a token sits in a formula ("ab + ac", "(xy)^2", "xyz=6")."""
    return any(ch in _MATH_MARKS for ch in neighbours)


def _classify_word(token: str, in_math: bool, scan: TokenScan, known) -> None:
    if not token.isascii():
        # a single Greek letter is a variable; other non-ASCII runs here are mojibake or noise
        if len(token) > 1 or not _GREEK.match(token):
            scan.unknown.append(token)
    elif known(token.lower()) if len(token) >= 3 else token.lower() in _SHORT_WORDS:
        scan.known.append(token)
    elif len(token) == 1 or (in_math and len(token) <= 3) or (token.isupper() and len(token) <= 6):
        pass  # a variable, a product of variables ("ab + ac"), a vertex label ("ABC", "MBCN")
    else:
        scan.unknown.append(token)


def scan_tokens(text: str, extra_words: frozenset[str] = frozenset()) -> TokenScan:
    """Classify the prose tokens of `text`; LaTeX environment and command names are skipped.

    `extra_words` (lower-case) count as known, e.g. the words of the seed question a rewrite
    comes from (names, rare nouns). Letters inside a formula are variables, not words.
    """
    vocabulary = known_words()

    def known(word: str) -> bool:
        return word in vocabulary or word in extra_words

    scan = TokenScan()
    text = _LATEX_COMMAND.sub(" ", _LATEX_ENV.sub(" ", text))
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        around = _neighbours(text, match.start(), match.end())
        has_digit = any(ch.isdigit() for ch in token)
        if has_digit and not any(ch.isalpha() for ch in token):
            scan.numbers += 1
        elif has_digit and _is_glued(token, known, in_prose=any(ch.isalpha() for ch in around)):
            scan.glued.append(token)
        elif has_digit:
            scan.numbers += 1  # "10mph", "2xy", "H2O"
        else:
            _classify_word(token, _in_math(around), scan, known)
    return scan


def malformed_answer(answer: str) -> str | None:
    """Why `answer` cannot be a final answer ("<what>: <evidence>"), or None when it can.

    Only text that no answer form explains is refused, so a real answer keeps its verdict
    (every GSM8K and MATH gold answer is well formed, tests/unit/test_answers_wellformed.py).
    """
    if not isinstance(answer, str):
        return "not_text"
    text = answer.strip()
    if has_unprintable(text):
        return "unprintable: control or non-printable characters"
    if len(text) > MAX_ANSWER_CHARS:
        return f"too_long: {len(text)} characters"
    scan = scan_tokens(text)
    if scan.glued:
        return f"number_in_word: {' '.join(scan.glued[:3])}"
    if scan.words > MAX_ANSWER_WORDS:
        return f"too_many_words: {scan.words}"
    if (len(scan.unknown) > MAX_UNKNOWN_WORDS or any(map(_mixed_case, scan.unknown))
            or (scan.words > 1 and not all(map(name_like, scan.unknown)))):
        # one unknown word is an answer ("\text{Devon}", "100 zorbs") or a name in a sentence
        # ("Jebediah has 36 apples"); any other non-word among words, or pieces run together
        # ("bulyQomoxes"), is soup
        return f"non_words: {' '.join(scan.unknown[:5])}"
    if scan.unknown and scan.numbers >= 2:
        return f"numbers_among_non_words: {' '.join(scan.unknown[:5])}"
    return _unbalanced(text)


# Words that make a trailing phrase part of the formula ("\\frac{1}{2} times x"), not its unit.
_NOT_UNIT_WORDS = frozenset("times plus minus over divided by and or squared cubed of to is".split())


def is_unit_phrase(text: str) -> bool:
    """Whether `text` ("square inches", "cm") only names a unit, so a formula before it is the answer."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    return bool(words) and all(
        (w in known_words() or w in _SHORT_WORDS) and w not in _NOT_UNIT_WORDS for w in words
    )


def name_like(word: str) -> bool:
    """Capitalised, then lower case: a name (\"Jebediah\"), not a broken-off piece (\"withOn\")."""
    return word[:1].isupper() and word[1:].islower()


def _mixed_case(word: str) -> bool:
    return not (name_like(word) or word.islower() or word.isupper())


def _unbalanced(text: str) -> str | None:
    """Markup no answer form leaves behind: unpaired braces, calculator or GSM8K markers."""
    if text.count("{") != text.count("}"):
        return "unbalanced_braces"
    if "<<" in text or ">>" in text or "####" in text:
        return "stray_markup: calculator or #### marker"
    if text.count("\\[") != text.count("\\]") or text.count("\\(") != text.count("\\)"):
        return "unbalanced_delimiters"
    return None


def is_well_formed_answer(answer: str) -> bool:
    return malformed_answer(answer) is None
