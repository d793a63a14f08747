"""Cleaning of answer strings before comparison, and the canonical display form.

`clean_latex` removes presentation (delimiters, spacing commands, \\left/\\right, \\dfrac,
\\text wrappers, degree signs, currency, markdown) but keeps meaning (brackets, signs,
percent, text words such as "p.m."). `answer_part` reduces a prose-wrapped answer ("The
answer is $5$.", "Therefore $x \\geq 5$ is the solution.") to the answer itself.
"""

from __future__ import annotations

import re

from .extract import MAX_RESPONSE_CHARS, clean_extracted, extract_answer
from .latex import boxed_contents, unwrap_command
from .numeric import format_number, parse_number

_TEXT_COMMANDS = (
    "text", "textbf", "textit", "textrm", "textnormal", "texttt", "mathrm", "mathbf", "mathit",
    "mathsf", "mathtt", "mbox", "operatorname", "boldsymbol", "bm", "emph", "hbox", "textsf",
)
_SIMPLE_REPLACEMENTS = (
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"), ("\\dbinom", "\\binom"),
    ("\\tbinom", "\\binom"), ("\\displaystyle", ""), ("\\!", ""), ("\\,", " "), ("\\;", " "),
    ("\\:", " "), ("\\>", " "), ("\\qquad", " "), ("\\quad", " "), ("~", " "),
    ("{,}", ","), ("\\%", "%"), ("\\$", "$"), ("−", "-"), ("–", "-"), ("×", "\\times "),
    ("·", "\\cdot "), ("∞", "\\infty"), ("≤", "\\le "), ("≥", "\\ge "), ("≠", "\\ne "),
    ("π", "\\pi "), ("√", "\\sqrt"), ("∪", "\\cup "), ("∅", "\\emptyset"), ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"), ("\\lvert", "|"), ("\\rvert", "|"), ("\\vert", "|"), ("\\mid", "|"),
    ("\\lt", "<"), ("\\gt", ">"), ("\\neq", "\\ne "), ("!=", "\\ne "),
)
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\s*")
_DEGREE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\circ|\\degree|\^\{\\text\{o\}\}")
_SPACES = re.compile(r"\s+")
_THIN_THOUSANDS = re.compile(r"(\d),\\!\s*(?=\d{3})")
_ESCAPED_SPACE = re.compile(r"(?<!\\)\\ ")
# brace-less arguments: \sqrt3, \frac94, \frac1{72}, \sqrt x
_BARE_SQRT = re.compile(r"\\sqrt\s*([0-9]|[A-Za-z](?![A-Za-z]))")
_BARE_FRAC = re.compile(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])")
_BARE_FRAC_NUM = re.compile(r"\\frac\s*([0-9A-Za-z])\s*\{")
_NON_ASCII_LEAD = re.compile(r"^[^\x00-\x7f$\\]+(?=[-\d$\\(\[])")
_OUTER_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_MATH_SEGMENT = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_CONNECTORS = re.compile(r"^(?:\s|,|;|and|or|&)*$", re.I)
_LEAD_IN = re.compile(r"^\s*(?:final answer|answer|solution|result)\s*[:：]?\s*", re.I)
_ENDS_WITH_IS = re.compile(r"\bis\s*:?\s*(.+?)\s*\.?\s*$", re.S)


def strip_outer_delimiters(s: str) -> str:
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in _OUTER_DELIMS:
            if len(s) > len(left) + len(right) - 1 and s.startswith(left) and s.endswith(right):
                inner = s[len(left) : len(s) - len(right)]
                if left == "$" and "$" in inner:
                    continue
                s = inner.strip()
                changed = True
                break
    return s


def clean_latex(s: str) -> str:
    """Presentation-free form of one answer (no prose extraction here)."""
    s = strip_outer_delimiters(s.replace("**", ""))
    boxed = boxed_contents(s) if "box" in s else []
    if len(boxed) == 1 and s.lstrip().startswith(("\\boxed", "\\fbox")):
        s = boxed[0]
    if ",\\!" in s:
        s = _THIN_THOUSANDS.sub(r"\1,", s)
    if "\\ " in s:
        s = _ESCAPED_SPACE.sub(" ", s)
    for old, new in _SIMPLE_REPLACEMENTS:
        if old in s:
            s = s.replace(old, new)
    s = _LEFT_RIGHT.sub("", s)
    if "\\sqrt" in s:
        s = _BARE_SQRT.sub(r"\\sqrt{\1}", s)
    if "\\frac" in s:
        s = _BARE_FRAC.sub(r"\\frac{\1}{\2}", s)
        s = _BARE_FRAC_NUM.sub(r"\\frac{\1}{", s)
    s = _DEGREE.sub("", s)
    if "\\" in s:
        for name in _TEXT_COMMANDS:
            if name in s:
                s = unwrap_command(s, name, separate=True)
    s = s.replace("$", "") if "$" in s else s
    s = _SPACES.sub(" ", s).strip()
    s = s.rstrip(".").rstrip() if not s.endswith("..") else s
    if s.endswith("\\"):
        s = s.rstrip("\\").rstrip()
    return s


def _looks_like_prose(s: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+|\$[^$]*\$", " ", s))
    return len(words) >= 3


def answer_part(s: str) -> str:
    """Reduce a possibly prose-wrapped answer to the answer text (not yet cleaned)."""
    s = s[-MAX_RESPONSE_CHARS:].strip()
    if "box" in s:
        boxes = boxed_contents(s)
        if len(boxes) == 1:
            return boxes[0]
        if boxes:
            # several boxes: a multi-part answer ("\boxed{1} and \boxed{2}")
            return ", ".join(b for b in boxes)
    if re.search(r"answer is|Final Answer|####", s):
        found = extract_answer(s)
        if found:
            return found
    segments = list(_MATH_SEGMENT.finditer(s))
    if segments:
        texts = [next(g for g in m.groups() if g is not None) for m in segments]
        between = [s[a.end() : b.start()] for a, b in zip(segments, segments[1:])]
        prefix, suffix = s[: segments[0].start()], s[segments[-1].end() :]
        if all(_CONNECTORS.match(b) for b in between) and not _looks_like_prose(prefix + " " + suffix):
            body = ", ".join(texts)
            tail = suffix.strip().rstrip(".")
            return body + " " + tail if tail and len(tail) <= 20 else body
        tail = _ENDS_WITH_IS.search(s)
        if tail and "$" not in tail.group(1) and parse_number(tail.group(1)):
            return tail.group(1)
        return texts[-1]
    s = _NON_ASCII_LEAD.sub("", s)
    s = _LEAD_IN.sub("", s)
    if _looks_like_prose(s):
        tail = _ENDS_WITH_IS.search(s)
        if tail and parse_number(clean_latex(tail.group(1))) is not None:
            return tail.group(1)
        found = extract_answer(s)
        if found:
            return found
    return clean_extracted(s) if s.endswith(".") and not re.search(r"\d\.$", s) else s


def normalize_answer(ans: str) -> str:
    """Canonical display string: equal numbers give the same string ("1,000", "1000.0" -> "1000")."""
    if not isinstance(ans, str):
        return ""
    try:
        cleaned = clean_latex(answer_part(ans))
        number = parse_number(cleaned)
        if number is not None:
            return format_number(number.value)
        return cleaned.replace(" ", "")
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        return ans.strip()
