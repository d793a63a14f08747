"""Parse a cleaned answer into a small structured value that comparison can walk.

Node kinds (plain tuples, cheap to build):
  ("num", Fraction, percent)        exact numbers
  ("inf", +1 | -1)                  infinity
  ("choice", letter)                multiple-choice letter A-J
  ("base", digits, base)            numbers written with a base subscript, 52_8
  ("time", Fraction, "am" | "pm")   clock times with a.m./p.m.
  ("text", words)                   prose answers, normalised; synonyms mapped to one key
  ("seq", left, right, items)       ordered: tuples (1,2), intervals [1,2), vectors
  ("set", items)                    unordered: \\{1,2\\}, bare lists "1, 2", \\pm pairs
  ("union", items)                  interval unions
  ("matrix", rows)                  pmatrix / bmatrix / array
  ("expr", latex)                   anything else: the symbolic path decides
`parse_answer` returns the readings of an ambiguous string ("70,110" is the number 70110
or the list 70, 110), the preferred one first.
"""

from __future__ import annotations

import re

from .latex import match_brace, split_top_level
from .numeric import parse_number
from .wellformed import is_unit_phrase

MAX_DEPTH = 6
MAX_ITEMS = 64

_TEXT_SYNONYMS = {
    "no solution": "∅", "no solutions": "∅", "no real solutions": "∅", "none": "∅",
    "emptyset": "∅", "varnothing": "∅", "∅": "∅", "{}": "∅", "empty set": "∅",
    "all real numbers": "ℝ", "all reals": "ℝ", "mathbb r": "ℝ", "mathbbr": "ℝ", "r": "ℝ",
    "(-infty,infty)": "ℝ", "(-infty, infty)": "ℝ", "real numbers": "ℝ",
    "infinitely many": "infinitely many", "infinitely many solutions": "infinitely many",
    "yes": "yes", "no": "no", "true": "yes", "false": "no",
}
_INFINITY = re.compile(r"^([+-]?)\s*(?:\\infty|infty|infinity|inf|oo)$", re.I)
_CHOICE = re.compile(r"^\(?([A-J])\)?(?:\s+[A-Za-z].*)?$")
_BASE = re.compile(r"^([0-9A-Za-z]+)_\{?\s*\(?(\d{1,2})\)?\s*\}?$")
_TIME = re.compile(r"^(.+?)\s*([ap])\.?\s*m\.?$", re.I)
# a unit is separated by a space and has two letters or more ("5 cm", not "2i" or "3x")
_UNIT_TAIL = re.compile(r"^(.*?[\d}.])\s+([A-Za-z][A-Za-z][A-Za-z .'/\-]*(?:\^?[23²³])?)$")
_MATRIX = re.compile(
    r"^[(\[]?\s*\\begin\{(pmatrix|bmatrix|matrix|smallmatrix|array|Bmatrix)\}(\{[^}]*\})?(.*)"
    r"\\end\{\1\}\s*[)\]]?$",
    re.S,
)
_NAME = re.compile(
    r"^\s*(?:\\?[A-Za-z]+(?:_\{?[\w,]+\}?)?'?(?:\([^=<>]*\))?|\|[A-Za-z]+\||\\angle\s*[A-Za-z]+"
    r"|[A-Za-z]+(?:_\{?\w+\}?)?\s*:\s*[A-Za-z]+(?:_\{?\w+\}?)?|\([A-Za-z, ]+\)"
    r"|\\frac\{[A-Za-z]+\}\{[A-Za-z]+\})\s*$"
)
_REL_OPS = (("\\leqslant", "<="), ("\\geqslant", ">="), ("\\leq", "<="), ("\\geq", ">="),
            ("\\le", "<="), ("\\ge", ">="), ("=<", "<="), ("=>", ">="))
_REL_SPLIT = re.compile(r"(<=|>=|<|>)")
_IN_PREFIX = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*\\in\s*")
_GROUP_SEPARATORS = (";", " and ", " or ", "\\text{and}", "\\text{or}")
_CLOCK_OR_RATIO = re.compile(r"^\d+(?:\s*:\s*\d+)+$")
_JOINED_GROUPS = re.compile(r"([)\]])\s*(?:or|and|,)\s*([(\[])")
_WORD_LIST_SPLIT = re.compile(r"\s+(?:and|or)\s+", re.I)


def is_name(text: str) -> bool:
    """A left-hand side that only names the answer: x, f(x), a_{37}, |AB|, V_1:V_2, (p,q)."""
    return bool(_NAME.match(text)) and not re.search(r"[+\-*/^]", text)


def text_key(text: str) -> str:
    s = text.lower().replace("\\", "")
    s = re.sub(r"[{}$]", "", s)
    s = re.sub(r"\s+", " ", s).strip(" .")
    return _TEXT_SYNONYMS.get(s, _TEXT_SYNONYMS.get(s.replace(" ", ""), s))


def _matrix(body: str, depth: int):
    rows = [r for r in re.split(r"\\\\", body.strip())]
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows or len(rows) > MAX_ITEMS:
        return None
    parsed = []
    for row in rows:
        cells = row.split("&")
        parsed.append(tuple(_parse_one(c.strip(), depth + 1) for c in cells))
    if len({len(r) for r in parsed}) != 1:
        return None
    return ("matrix", tuple(parsed))


def _outer_brackets(s: str) -> tuple[str, str, str] | None:
    """(left, right, inner) when s is one bracketed group: (..), [..), \\{..\\}."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "{", "}", s[2:-2]
    if s.startswith("{") and s.endswith("}") and match_brace(s, 0) == len(s) - 1:
        return "{", "}", s[1:-1]
    if not s or s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None
    return (s[0], s[-1], s[1:-1]) if depth == 0 else None


def _relation(s: str, depth: int):
    """x > 5, -2 <= x <= 7, 5 >= x as an interval; None when not a simple inequality."""
    t = s
    for old, new in _REL_OPS:
        t = t.replace(old, new)
    parts = [p.strip() for p in _REL_SPLIT.split(t)]
    if len(parts) not in (3, 5) or any(not p for p in parts):
        return None
    values, ops = parts[0::2], parts[1::2]
    if len(values) == 2:
        left, op, right = values[0], ops[0], values[1]
        if is_name(left.lstrip("-")) and not is_name(right.lstrip("-")):
            var, bound, op = left, right, op
        elif is_name(right.lstrip("-")) and not is_name(left.lstrip("-")):
            var, bound = right, left
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[op]
        else:
            return None
        if var.startswith("-"):
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[op]
            bound = "-(" + bound + ")"
        item = _parse_one(bound, depth + 1)
        if op in (">", ">="):
            return ("seq", "(" if op == ">" else "[", ")", (item, ("inf", 1)))
        return ("seq", "(", ")" if op == "<" else "]", (("inf", -1), item))
    low, var, high = values
    if not is_name(var) or is_name(low) or is_name(high):
        return None
    if all(o in ("<", "<=") for o in ops):
        lo_op, hi_op = ops
    elif all(o in (">", ">=") for o in ops):
        low, high = high, low
        hi_op, lo_op = ops[0].replace(">", "<"), ops[1].replace(">", "<")
    else:
        return None
    return ("seq", "(" if lo_op == "<" else "[", ")" if hi_op == "<" else "]",
            (_parse_one(low, depth + 1), _parse_one(high, depth + 1)))


def _named_tuple(items: list[str], depth: int):
    """p=5, q=2 as the tuple (5, 2) ordered by name, so that it matches (p, q) = (5, 2)."""
    pairs = []
    for item in items:
        sides = [p.strip() for p in split_top_level(item, ("=",))]
        if len(sides) != 2 or not is_name(sides[0]) or not sides[1]:
            return None
        pairs.append((sides[0].replace(" ", ""), sides[1]))
    if len({name for name, _ in pairs}) != len(pairs):
        return None
    return ("seq", "(", ")", tuple(_parse_one(v, depth + 1) for _, v in sorted(pairs)))


def _scalar(s: str, depth: int):
    number = parse_number(s)
    if number is not None:
        return ("num", number.value, number.percent)
    if _CLOCK_OR_RATIO.match(s):
        return ("text", s.replace(" ", ""))
    m = _INFINITY.match(s)
    if m:
        return ("inf", -1 if m.group(1) == "-" else 1)
    m = _CHOICE.match(s)
    if m and (len(s) == 1 or s.startswith("(")):
        return ("choice", m.group(1))
    m = _BASE.match(s)
    if m:
        digits, base = m.group(1).upper(), int(m.group(2))
        if 2 <= base <= 36 and all(int(d, 36) < base for d in digits):
            return ("base", digits.lstrip("0") or "0", base)
    m = _TIME.match(s)
    if m:
        number = parse_number(m.group(1).strip())
        if number is not None:
            return ("time", number.value, m.group(2).lower() + "m")
        if re.fullmatch(r"\d{1,2}:\d{2}", m.group(1).strip()):
            return ("text", m.group(1).strip() + m.group(2).lower() + "m")
    m = _UNIT_TAIL.match(s)
    if m and not re.search(r"\\[A-Za-z]+\s*$", m.group(1)):
        number = parse_number(m.group(1).strip())
        if number is not None:
            unit = m.group(2).strip().lower()
            if unit in ("percent", "percentage", "pct"):
                return ("num", number.value, True)
            return ("num", number.value, number.percent)
        if number is None and is_unit_phrase(m.group(2)):
            return ("expr", m.group(1).strip())  # "8\\sqrt{3} square inches" is 8\\sqrt{3}
    key = text_key(s)
    if key in ("∅", "ℝ") or (re.fullmatch(r"[A-Za-z][A-Za-z .,'\-]*", s) and " " in s.strip()):
        return ("text", key)
    return ("expr", s)


def _parse_one(s: str, depth: int = 0):
    """The preferred reading of s."""
    return parse_answer(s, depth)[0]


def parse_answer(s: str, depth: int = 0) -> list:
    """All readings of a cleaned answer, preferred first (never empty)."""
    s = s.strip()
    if depth > MAX_DEPTH or not s:
        return [("text", text_key(s))]
    readings: list = []
    number = parse_number(s)
    if number is not None:
        readings.append(("num", number.value, number.percent))
        if "," not in s or ", " in s:
            return readings
    special = _special_form(s, depth)
    if special is not None:
        return special
    if ")or(" in s.replace(" ", "") or ")and(" in s.replace(" ", ""):
        s = _JOINED_GROUPS.sub(r"\1, \2", s)
    listed = _listed(s, depth, readings)
    if listed is not None:
        return listed
    return readings or _single(s, depth)


def _special_form(s: str, depth: int) -> list | None:
    """Empty set / reals, matrices, "≈", "±", "x \\in ..." and unions; None for anything else."""
    key = text_key(s)
    if key in ("∅", "ℝ"):
        return [("text", key)]
    m = _MATRIX.match(s)
    if m:
        node = _matrix(m.group(3), depth)
        if node is not None:
            return [node]
    if "\\approx" in s:
        head = s.split("\\approx", 1)[0].strip()
        if head:
            return parse_answer(head, depth + 1)
    if s.count("\\pm") + s.count("\\mp") == 1:
        plus = s.replace("\\pm", "+").replace("\\mp", "-")
        minus = s.replace("\\pm", "-").replace("\\mp", "+")
        if plus.lstrip().startswith("+"):
            plus = plus.lstrip()[1:]
        return [("set", (_parse_one(plus, depth + 1), _parse_one(minus, depth + 1)))]
    s_in = _IN_PREFIX.sub("", s)
    if s_in != s:
        return parse_answer(s_in, depth + 1)
    return None


def _listed(s: str, depth: int, readings: list) -> list | None:
    """Several answers: a union, "a or b" / "a; b" groups, or a comma list; None for one item."""
    pieces = split_top_level(s, ("\\cup",))
    if len(pieces) > 1:
        items = tuple(_parse_one(p, depth + 1) for p in pieces[:MAX_ITEMS])
        return readings + [("union", items)]
    groups = [p.strip() for p in split_top_level(s, _GROUP_SEPARATORS) if p.strip()]
    if len(groups) == 1 and re.search(r"\s(?:and|or)\s", s, re.I):
        groups = [p.strip() for p in _WORD_LIST_SPLIT.split(s) if p.strip()]
    if len(groups) > 1:
        if len(groups) > MAX_ITEMS:
            return readings + [("expr", s)]
        return readings + [("set", tuple(_parse_one(g, depth + 1) for g in groups))]
    items = [p.strip() for p in split_top_level(s, (",",)) if p.strip()]
    if len(items) > 1:
        if len(items) > MAX_ITEMS:
            return readings + [("expr", s)]
        values = tuple(_parse_one(item, depth + 1) for item in items)
        named = _named_tuple(items, depth)
        return readings + ([named] if named else []) + [("set", values)]
    return None


def _single(s: str, depth: int) -> list:
    """One item: an assignment, a relation, a bracketed group or a scalar."""
    relation = _relation(s, depth)
    if relation is not None:
        return [relation]
    sides = [p.strip() for p in split_top_level(s, ("=",))]
    if len(sides) > 1 and all(sides) and not re.search(r"[<>!]=|[<>]", s):
        if is_name(sides[0]):
            value = parse_answer(sides[-1], depth + 1)
            # y = 2x + 1 is also an equation that may be written rearranged on the other side
            return value + [("expr", s)] if len(sides) == 2 and value[0][0] == "expr" else value
        return [("expr", s)]
    brackets = _outer_brackets(s)
    if brackets:
        left, right, inner = brackets
        elems = [p.strip() for p in split_top_level(inner, (",", ";"))]
        if left == "{":
            return [("set", tuple(_parse_one(e, depth + 1) for e in elems[:MAX_ITEMS] if e))]
        if len(elems) == 1:
            if left == "(" and right == ")":
                return parse_answer(inner, depth + 1)
            return [("expr", s)]
        return [("seq", left, right, tuple(_parse_one(e, depth + 1) for e in elems[:MAX_ITEMS]))]
    return [_scalar(s, depth)]
