"""Small LaTeX string helpers: brace matching, wrapper stripping, top-level splitting.

Everything here is linear-time string work (no regex backtracking on user input beyond
simple patterns) so that adversarial 10^6-character inputs stay cheap.
"""

from __future__ import annotations

import re

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")", "]", "}"}


def match_brace(text: str, open_index: int) -> int:
    """Index of the `}` closing the `{` at open_index, or -1 when unbalanced."""
    depth = 0
    for i in range(open_index, len(text)):
        ch = text[i]
        if ch == "\\":
            continue
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def brace_pairs(text: str) -> dict[int, int]:
    """Index of every `{` -> index of its closing `}` (balanced ones only), in one pass.

    Same escape rule as `match_brace`; lets callers that look up many groups in one text stay
    linear (a response of 10^5 unclosed `\\boxed{` would otherwise cost 10^10 steps).
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    prev = ""
    for i, ch in enumerate(text):
        if prev != "\\":
            if ch == "{":
                stack.append(i)
            elif ch == "}" and stack:
                pairs[stack.pop()] = i
        prev = ch
    return pairs


def command_argument(text: str, start: int, pairs: dict[int, int] | None = None) -> tuple[str, int] | None:
    """The argument of a LaTeX command beginning at `start` (after the command name).

    Returns (argument, index after it): a braced group, or one bare token as in `\\boxed 5`
    or `\\frac12`. `pairs`: `brace_pairs(text)` when the caller looks up many arguments.
    """
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        end = pairs.get(i, -1) if pairs is not None else match_brace(text, i)
        if end < 0:
            return None
        return text[i + 1 : end], end + 1
    if text[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", text[i:])
        if m:
            return m.group(0), i + m.end()
    if text[i] in "}$":
        return None
    return text[i], i + 1


_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_WHITESPACE = re.compile(r"\s*")
MAX_BOXES = 50
_BARE_TOKEN = re.compile(r"[^\s$]+")


def boxed_contents(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (also `\\boxed 5`), in order.

    Only the last MAX_BOXES boxes count: an answer never needs more, and thousands of nested
    boxes would otherwise make the contents (and every caller's work) quadratic in the text.
    """
    found = []
    pairs = brace_pairs(text) if "{" in text else {}
    for m in list(_BOX_RE.finditer(text))[-MAX_BOXES:]:
        ws = _WHITESPACE.match(text, m.end()).end()  # no slicing: many boxes stay linear
        if text.startswith(" ", m.end()) and not text.startswith("{", ws):
            # `\boxed 5`: one token up to whitespace or `$`
            token = _BARE_TOKEN.match(text, ws)
            if token:
                found.append(token.group(0))
            continue
        arg = command_argument(text, m.end(), pairs)
        if arg is not None:
            found.append(arg[0])
    return found


def split_top_level(text: str, separators: tuple[str, ...]) -> list[str]:
    """Split on any separator that is not inside (), [], {} or \\left...\\right groups."""
    parts: list[str] = []
    depth = 0
    last = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}":
            depth = depth + 1 if text[i + 1] == "{" else max(0, depth - 1)
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            for sep in separators:
                if text.startswith(sep, i):
                    parts.append(text[last:i])
                    i += len(sep)
                    last = i
                    break
            else:
                i += 1
                continue
            continue
        i += 1
    parts.append(text[last:])
    return parts


def balanced(text: str) -> bool:
    """True when (), [] and {} counts balance; order is not checked (intervals mix them)."""
    depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def max_brace_depth(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch == "{":
            depth += 1
            best = max(best, depth)
        elif ch == "}":
            depth -= 1
    return best


def unwrap_command(text: str, name: str, separate: bool = False) -> str:
    """Replace every `\\name{X}` with X (used for \\text, \\mathrm, \\textbf ...).

    With `separate`, X is set off by a space from a preceding digit ("5\\text{cm}" -> "5 cm").
    """
    pattern = "\\" + name
    out = []
    i = 0
    while True:
        j = text.find(pattern, i)
        if j < 0:
            out.append(text[i:])
            break
        after = j + len(pattern)
        if after < len(text) and text[after].isalpha():
            out.append(text[i:after])
            i = after
            continue
        k = after
        while k < len(text) and text[k] == " ":
            k += 1
        if k < len(text) and text[k] == "{":
            end = match_brace(text, k)
            if end < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            if separate and j > 0 and text[j - 1].isdigit():
                out.append(" ")
            out.append(text[k + 1 : end])
            i = end + 1
        else:
            out.append(text[i:after])
            i = after
    return "".join(out)
