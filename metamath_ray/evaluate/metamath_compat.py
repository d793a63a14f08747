"""MetaMath's own scoring, reproduced quirk for quirk, so our numbers line up with published tables.

MetaMath (Yu et al. 2023) scored with `eval_gsm8k.py`, `eval_math.py` and `util.py`
(github.com/meta-math/MetaMath @ fe667b14f9a4c51bde9809adafb82b6b5d255800, Apache-2.0). This module
re-implements their behaviour; `tests/unit/metamath_upstream.py` carries their functions verbatim as
an oracle, and `test_metamath_scorer_table.py` / `test_fuzz_scorers.py` check ours against it.
Line references below are theirs.

GSM8K (`eval_gsm8k.py`), also used here for GSM8K-Backward and SVAMP (MetaMath shipped no script
for those; numeric answers are scored the same way):
- only text after the *last* "The answer is: " counts (L25-27; no marker: invalid, scored wrong);
- the first match of `[-+]?\\d*[.,/]?\\d+` is taken (L28), so "1,234,567" reads as 1234 and
  "$1,234.50" as 1234: only one separator character fits;
- "a/b" becomes round(a/b) through `from fraction import Fraction` (L5, L37-40), the PyPI package
  "fraction" 2.2.0, not the standard library: it reads each side through a float; "a/0" becomes
  round(a) (L34-35), but "a/00" divides by zero;
- every prediction is rounded with Python's round (half to even: 2.5 -> 2, L46), then compared as
  floats with the gold (L112), so 17.6 counts for a gold of 18 (the "lenient rounding").

MATH (`eval_math.py` + `util.py`, Hendrycks' normaliser):
- text after the last "The answer is: ", cut at the first ".\\n", one trailing "." dropped (L23-32);
- gold is `remove_boxed(last_boxed_only_string(solution))` (L68), None when the box is not
  `\\boxed{...}` (then nothing matches);
- equivalence is string equality after `strip_string` (no algebra), falling back to raw string
  equality whenever the normaliser raises (util.py L236-244) -- which it does for any "a/b" that is
  not two integers (L132: `int()` raises ValueError, only AssertionError is caught).

Where MetaMath's script itself would crash on a response (GSM8K only: a zero denominator written
"00", a number past float range), `gsm8k_extract` raises `MetaMathCrash` naming the line, and
`gsm8k_verdict` scores the response wrong with that reason. `gsm8k_verdict` and `math_verdict` never
raise on a string response.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

ANSWER_MARKER = "The answer is: "
_GSM8K_NUMBER = re.compile(r"[\-+]?\d*[\.,/]?\d+")


class MetaMathCrash(Exception):
    """MetaMath's own script would have died on this response; the message names its line."""


@dataclass(frozen=True)
class Verdict:
    """One response under MetaMath's scoring."""

    extracted: str | None
    correct: bool
    vote_key: str | None
    # Why it is wrong without a comparison: their script would have stopped here, or the gold is unusable.
    reason: str | None = None


def _is_number(text: str) -> bool:
    """eval_gsm8k.py L10-22, verbatim in behaviour."""
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        unicodedata.numeric(text)
        return True
    except (TypeError, ValueError):
        return False


def _round(value: float, line: str) -> int:
    # round() of an infinite float raises OverflowError in their script (e.g. "-1e400" written out)
    if not math.isfinite(value):
        raise MetaMathCrash(f"eval_gsm8k.py:{line} round({value}) raises OverflowError")
    return round(value)


class _FractionError(Exception):
    """The fraction package's FractionException."""


def _pkg_gcd(a: int, b: int) -> int:
    """The package's recursive Euclid (sign included), as a loop. Its recursion never gets near
    Python's limit here: every operand is an int made from a float (53 significant bits times powers
    of 2 and 10); 3,000 random fractions of 1-330 digits needed at most 72 calls."""
    while b != 0:
        a, b = b, a % b
    return a


def _pkg_mul(an: int, ad: int, bn: int, bd: int) -> tuple[int, int]:
    """Fraction.__mul__: reduce by a gcd, then int(float quotient) -- lossy past 2**53, and
    OverflowError past float range, as in the package."""
    denom, numer = ad * bd, an * bn
    g = _pkg_gcd(numer, denom)
    n, d = int(numer / g), int(denom / g)
    if d == 0:
        raise _FractionError("Denominator cannot be 0")
    return n, d


def _pkg_from_str(side: str) -> tuple[int, int]:
    """Fraction(float(side)): `fromdecimal` scales by 10**(characters after the '.' in str(float))."""
    num = float(side)
    snum = str(float(num))
    places = len(snum[snum.find(".") + 1 :])
    return _pkg_mul(int(round(num * (10**places))), 10**places, 1, 1)


def _fraction_pkg_value(text: str) -> float:
    """numerator / denominator of `fraction.Fraction(text)` for MetaMath's "a/b" match (L37-40).
    Both sides always pass the package's number regex here (the GSM8K pattern guarantees digits)."""
    a, b = text.split("/")
    x, y = _pkg_from_str(a), _pkg_from_str(b)
    if y[0] == 0:  # Fraction.reciprocal(y) builds Fraction(d, 0)
        raise _FractionError("Denominator cannot be 0")
    z = _pkg_mul(x[0], x[1], y[1], y[0])  # x / y
    w = _pkg_mul(z[0], z[1], 1, 1)  # the outer Fraction(text) divides by its default denominator 1
    return w[0] / w[1]


def _fraction_round(number: str) -> int:
    try:
        value = float(_fraction_pkg_value(number))
    except (_FractionError, OverflowError, ZeroDivisionError) as err:
        name = "FractionException" if isinstance(err, _FractionError) else type(err).__name__
        shown = number if len(number) <= 40 else f"{number[:20]}...{number[-12:]} ({len(number)} chars)"
        raise MetaMathCrash(f"eval_gsm8k.py:L37-40 Fraction({shown!r}) raises {name}: {err}") from None
    return _round(value, "L40")


def gsm8k_extract(completion: str) -> int | None:
    """MetaMath's GSM8K prediction (eval_gsm8k.py L24-50): an int, or None for an invalid output.
    Raises MetaMathCrash where their script would have died."""
    parts = completion.split(ANSWER_MARKER)
    if len(parts) < 2:
        return None
    match = _GSM8K_NUMBER.search(parts[-1].strip())
    if not match:
        return None
    number = match.group()
    if "/" in number:
        numerator, denominator = number.split("/")[0], number.split("/")[1]
        if not (_is_number(denominator) and _is_number(numerator)):
            return None
        if denominator == "0":  # only the one-character "0": "00" reaches Fraction and crashes
            return _round(float(numerator.replace(",", "")), "L35")
        return _fraction_round(number.replace(",", ""))
    value = float(number.replace(",", ""))
    if value == float("inf"):  # L44: +inf is "invalid", but -inf reaches round() and crashes
        return None
    return _round(value, "L46")


def gsm8k_gold(answer: str | float | int) -> float:
    """Gold as MetaMath reads it: the text after "#### " of a GSM8K solution, or a bare number."""
    if isinstance(answer, (int, float)):
        return float(answer)
    text = answer.split("#### ")[1] if "#### " in answer else answer
    return float(text.replace(",", "").strip())


def gsm8k_verdict(completion: str, gold: str | float | None) -> Verdict:
    """MetaMath's GSM8K verdict (L110-115); never raises. A crash of their script scores wrong."""
    try:
        pred = gsm8k_extract(completion)
    except MetaMathCrash as crash:
        return Verdict(None, False, None, str(crash))
    key = None if pred is None else str(pred)
    try:
        gold_value = None if gold is None else float(gold)
    except (TypeError, ValueError):
        return Verdict(key, False, key, f"gold {gold!r} is not a number")
    return Verdict(key, pred is not None and gold_value is not None and float(pred) == gold_value, key)


def gsm8k_correct(completion: str, gold: float) -> bool:
    return gsm8k_verdict(completion, gold).correct


def math_extract(completion: str) -> str | None:
    """MetaMath's MATH prediction string (eval_math.py L23-32), or None without "The answer is: "."""
    parts = completion.split(ANSWER_MARKER)
    if len(parts) < 2:
        return None
    answer = parts[-1].split(".\n")[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


def last_boxed_only_string(text: str) -> str | None:
    """util.py L10-35: the last `\\boxed...{...}` (or `\\fbox{...}`) including the command."""
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[idx : i + 1]
    return None


def remove_boxed(boxed: str | None) -> str | None:
    """eval_math.py L13-20: only `\\boxed{...}` is accepted (not `\\fbox`, not `\\boxed 5`)."""
    left = "\\boxed{"
    if boxed is None or not boxed.startswith(left) or not boxed.endswith("}"):
        return None
    return boxed[len(left) : -1]


def math_gold(solution: str) -> str | None:
    return remove_boxed(last_boxed_only_string(solution))


def _fix_fracs(text: str) -> str:
    """util.py L95-124: \\frac12 -> \\frac{1}{2}."""
    pieces = text.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if piece[0] == "{":  # IndexError on "\frac" at the end: is_equiv falls back, as upstream
            out += piece
            continue
        if len(piece) < 2:
            return text
        a, b, rest = piece[0], piece[1], piece[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    """util.py L126-138. `int()` raising ValueError (anything but two integers, e.g. "a/b" or
    "1.5/2") is NOT caught there: it escapes strip_string and is_equiv falls back to raw equality."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a, b = int(parts[0]), int(parts[1])
    if text != f"{a}/{b}":  # the caught AssertionError: "01/2", "+1/2", "1_0/2" stay as written
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(text: str) -> str:
    """util.py L140-147."""
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:  # upstream asserts here, so is_equiv falls back to raw equality
        raise ValueError("more than one unit")
    return parts[0]


def _fix_sqrt(text: str) -> str:
    """util.py L149-161: \\sqrt3 -> \\sqrt{3}."""
    if "\\sqrt" not in text:
        return text
    pieces = text.split("\\sqrt")
    out = pieces[0]
    for piece in pieces[1:]:
        # IndexError on "\sqrt" at the end: is_equiv falls back, as upstream
        out += "\\sqrt" + piece if piece[0] == "{" else "\\sqrt{" + piece[0] + "}" + piece[1:]
    return out


def strip_string(text: str) -> str:
    """util.py L164-226, Hendrycks' MATH answer normaliser (raises on malformed input, as upstream)."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    text = _remove_right_units(text)
    # L193-194 both remove "\%" ("\%" in a Python literal is the same two characters as "\\%"):
    # a bare "%" stays, so "50%" does not match a gold of "50\%".
    text = text.replace("\\%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    # "k = 5" -> "5" when the left side is at most two characters
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _fix_sqrt(text)
    text = text.replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)


def is_equiv(pred: str | None, gold: str | None) -> bool:
    """util.py L229-244: normalised string equality, raw equality when the normaliser raises."""
    if pred is None and gold is None:
        return True
    if pred is None or gold is None:
        return False
    try:
        return strip_string(pred) == strip_string(gold)
    except Exception:  # noqa: BLE001 - upstream falls back to raw equality on any error
        return pred == gold


def math_vote_key(pred: str | None) -> str | None:
    """What MetaMath-style majority voting groups by: the normalised answer string (our addition:
    MetaMath reported greedy accuracy only)."""
    if pred is None:
        return None
    try:
        return strip_string(pred)
    except Exception:  # noqa: BLE001
        return pred


def math_verdict(completion: str, gold: str | None) -> Verdict:
    """MetaMath's MATH verdict (eval_math.py L22-40). Their script never crashes per response here:
    every error inside is_equiv is caught."""
    pred = math_extract(completion)
    return Verdict(pred, pred is not None and is_equiv(pred, gold), math_vote_key(pred))


def math_correct(completion: str, gold: str | None) -> bool:
    return math_verdict(completion, gold).correct
