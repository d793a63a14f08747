"""MetaMath's own scoring, reproduced quirk for quirk, so our numbers line up with published tables.

MetaMath (Yu et al. 2023) scored with `eval_gsm8k.py` and `eval_math.py` (meta-math/MetaMath);
this module re-implements their behaviour, not their code:

GSM8K (`eval_gsm8k.py`), also used here for GSM8K-Backward and SVAMP (MetaMath shipped no script
for those; numeric answers are scored the same way):
- only text after the *last* "The answer is: " counts (no marker: invalid, scored wrong);
- the first match of `[-+]?\\d*[.,/]?\\d+` is taken, so "1,234,567" reads as 1234 and "$1,234.50"
  as 1234: only one separator character fits;
- fractions "a/b" become round(a/b); "a/0" becomes round(a);
- every prediction is rounded to an integer with Python's round (half to even: 2.5 -> 2), then
  compared as floats with the gold, so 17.6 counts for a gold of 18 (the "lenient rounding").

MATH (`eval_math.py` + Hendrycks' `is_equiv`):
- text after the last "The answer is: ", cut at the first ".\\n", one trailing "." dropped;
- gold is `remove_boxed(last_boxed_only_string(solution))`, None when the box is not `\\boxed{...}`
  (then nothing matches);
- equivalence is string equality after Hendrycks' `_strip_string` normalisation (no algebra),
  falling back to raw string equality when the normaliser raises.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction

ANSWER_MARKER = "The answer is: "
_GSM8K_NUMBER = re.compile(r"[\-+]?\d*[\.,/]?\d+")


def _is_number(text: str) -> bool:
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


def gsm8k_extract(completion: str) -> int | None:
    """MetaMath's GSM8K prediction: an int, or None for an invalid output."""
    parts = completion.split(ANSWER_MARKER)
    if len(parts) < 2:
        return None
    match = _GSM8K_NUMBER.search(parts[-1].strip())
    if not match:
        return None
    number = match.group()
    if "/" in number:
        numerator, denominator = number.split("/")[0], number.split("/")[1]
        if not (_is_number(numerator) and _is_number(denominator)):
            return None
        if denominator == "0":
            return round(float(numerator.replace(",", "")))
        frac = Fraction(number.replace(",", ""))
        return round(float(frac.numerator / frac.denominator))
    value = float(number.replace(",", ""))
    if math.isinf(value):
        return None
    return round(value)


def gsm8k_gold(answer: str | float | int) -> float:
    """Gold as MetaMath reads it: the text after "#### " of a GSM8K solution, or a bare number."""
    if isinstance(answer, (int, float)):
        return float(answer)
    text = answer.split("#### ")[1] if "#### " in answer else answer
    return float(text.replace(",", "").strip())


def gsm8k_correct(completion: str, gold: float) -> bool:
    pred = gsm8k_extract(completion)
    return pred is not None and float(pred) == float(gold)


def math_extract(completion: str) -> str | None:
    """MetaMath's MATH prediction string, or None when "The answer is: " is missing."""
    parts = completion.split(ANSWER_MARKER)
    if len(parts) < 2:
        return None
    answer = parts[-1].split(".\n")[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


def last_boxed_only_string(text: str) -> str | None:
    """The last `\\boxed...{...}` (or `\\fbox{...}`) including the command, by brace matching."""
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
    left = "\\boxed{"
    if boxed is None or not boxed.startswith(left) or not boxed.endswith("}"):
        return None
    return boxed[len(left) : -1]


def math_gold(solution: str) -> str | None:
    return remove_boxed(last_boxed_only_string(solution))


def _fix_fracs(text: str) -> str:
    pieces = text.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if piece[0] == "{":  # IndexError on "\frac" at the end: caller falls back, as upstream
            out += piece
            continue
        if len(piece) < 2:
            return text
        a, b, rest = piece[0], piece[1], piece[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    if text != f"{a}/{b}":
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(text: str) -> str:
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:  # upstream asserts here, so is_equiv falls back to raw equality
        raise ValueError("more than one unit")
    return parts[0]


def _fix_sqrt(text: str) -> str:
    if "\\sqrt" not in text:
        return text
    pieces = text.split("\\sqrt")
    out = pieces[0]
    for piece in pieces[1:]:
        # IndexError on "\sqrt" at the end: caller falls back, as upstream
        out += "\\sqrt" + piece if piece[0] == "{" else "\\sqrt{" + piece[0] + "}" + piece[1:]
    return out


def strip_string(text: str) -> str:
    """Hendrycks' MATH answer normaliser (may raise on malformed input, as upstream)."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    text = _remove_right_units(text)
    text = text.replace("\\%", "").replace("%", "")
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
    """Hendrycks/MetaMath `is_equiv`: normalised string equality."""
    if pred is None and gold is None:
        return True
    if pred is None or gold is None:
        return False
    try:
        return strip_string(pred) == strip_string(gold)
    except Exception:  # noqa: BLE001 - upstream falls back to raw equality on any error
        return pred == gold


def math_vote_key(pred: str | None) -> str | None:
    """What MetaMath-style majority voting groups by: the normalised answer string."""
    if pred is None:
        return None
    try:
        return strip_string(pred)
    except Exception:  # noqa: BLE001
        return pred


def math_correct(completion: str, gold: str | None) -> bool:
    pred = math_extract(completion)
    return pred is not None and is_equiv(pred, gold)
