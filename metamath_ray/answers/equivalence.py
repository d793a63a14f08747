"""`is_equivalent`: conservative, bounded-time answer equivalence.

Layers, cheapest first:
0. identical texts are equal; a text that is not a well-formed answer (wellformed.py: subword
   soup, a number inside a word, control bytes, far too long) equals nothing;
1. clean both answers (normalize.clean_latex) and accept identical strings;
2. exact rationals (numeric.parse_number) decide number-vs-number pairs in microseconds;
3. structured values (structure.parse_answer): tuples and intervals are ordered and bracket
   types must match, sets and bare lists are unordered, matrices cell by cell, choices,
   base subscripts, times, text synonyms;
4. the symbolic path (symbolic.symbolic_equal) for genuine expressions, under a deadline.

Numeric rule (conservative by design): numbers are equal only when their exact rational
values are equal. No tolerance: "0.33" is not 1/3 and "1.414" is not sqrt(2), because a
rounded value accepted as correct would put a wrong answer into training data. The one
convention is percent: "10%" equals 10 and equals 0.1 (both readings are in use), while 10
and 0.1 without a percent sign differ.
"""

from __future__ import annotations

import re
import time

from .extract import extract_answer
from .normalize import answer_part, clean_latex
from .numeric import format_number, parse_number
from .structure import text_key, parse_answer
from .symbolic import symbolic_equal
from .wellformed import MAX_ANSWER_CHARS as MAX_WELL_FORMED_CHARS, has_unprintable, malformed_answer

TIME_BUDGET_S = 0.9  # per call, so that the worst case stays under one second
MAX_ANSWER_CHARS = 5_000  # longer "answers" (after extraction) are compared as strings only
MAX_SET_PAIRS = 4_096


def _numbers_equal(a, b) -> bool:
    (_, va, pa), (_, vb, pb) = a, b
    if va == vb:
        return True
    if pa and not pb:
        return va / 100 == vb
    if pb and not pa:
        return vb / 100 == va
    return False


def _as_latex(node) -> str | None:
    if node[0] == "num":
        return format_number(node[1])
    if node[0] == "expr":
        return node[1]
    return None


def _same_members(xs, ys, deadline: float) -> bool:
    if len(xs) * len(ys) > MAX_SET_PAIRS:
        return False
    return all(any(_equal(x, y, deadline) for y in ys) for x in xs) and all(
        any(_equal(x, y, deadline) for x in xs) for y in ys
    )


def _vector(node):
    """Items of a one-row or one-column matrix, else None."""
    rows = node[1]
    if len(rows) == 1:
        return rows[0]
    if all(len(r) == 1 for r in rows):
        return tuple(r[0] for r in rows)
    return None


def _equal(a, b, deadline: float) -> bool:  # noqa: C901 - one dispatch table, kept flat
    ka, kb = a[0], b[0]
    if ka == "num" and kb == "num":
        return _numbers_equal(a, b)
    if ka == "set" and kb == "set":
        return _same_members(a[1], b[1], deadline)
    if ka == "set":
        return all(_equal(x, b, deadline) for x in a[1])
    if kb == "set":
        return all(_equal(a, y, deadline) for y in b[1])
    if ka == "union" and kb == "union":
        return _same_members(a[1], b[1], deadline)
    if ka == "seq" and kb == "seq":
        return (
            a[1] == b[1] and a[2] == b[2] and len(a[3]) == len(b[3])
            and all(_equal(x, y, deadline) for x, y in zip(a[3], b[3]))
        )
    if ka == "matrix" and kb == "matrix":
        ra, rb = a[1], b[1]
        return (
            len(ra) == len(rb) and all(len(x) == len(y) for x, y in zip(ra, rb))
            and all(_equal(x, y, deadline) for rx, ry in zip(ra, rb) for x, y in zip(rx, ry))
        )
    if {ka, kb} == {"matrix", "seq"}:
        matrix, seq = (a, b) if ka == "matrix" else (b, a)
        items = _vector(matrix)
        return (
            items is not None and seq[1] == "(" and seq[2] == ")" and len(items) == len(seq[3])
            and all(_equal(x, y, deadline) for x, y in zip(items, seq[3]))
        )
    if ka in ("choice", "base", "time", "inf") or kb in ("choice", "base", "time", "inf"):
        return a == b
    if ka == "text" or kb == "text":
        key_a = a[1] if ka == "text" else text_key(str(a[1]))
        key_b = b[1] if kb == "text" else text_key(str(b[1]))
        return ka in ("text", "expr") and kb in ("text", "expr") and key_a == key_b
    la, lb = _as_latex(a), _as_latex(b)
    if la is None or lb is None:
        return False
    if la.replace(" ", "") == lb.replace(" ", ""):
        return True
    if ka == "num" and kb == "num":
        return False
    return symbolic_equal(la, lb, deadline)


def _clean(answer: str) -> str:
    return clean_latex(answer_part(answer))


# A text that marks its answer is judged by that answer; unmarked prose is judged whole, so
# "row13 disindraw whe perimeter 100 ook will" is not reduced to its last number first.
_MARKED = re.compile(r"\\boxed|\\fbox|[Aa]nswer is|Final Answer|####")


def _malformed(answer: str) -> bool:
    if has_unprintable(answer):
        return True
    if len(answer) > MAX_WELL_FORMED_CHARS and _MARKED.search(answer[-MAX_WELL_FORMED_CHARS:]):
        answer = answer[-MAX_WELL_FORMED_CHARS:]  # a long response: only its end can be the answer
    if _MARKED.search(answer):
        answer = extract_answer(answer) or answer
    return malformed_answer(answer) is not None


def is_equivalent(pred: str, gold: str) -> bool:
    """True when the predicted answer has the same value as the gold answer.

    Takes two answers (bare strings, `$...$`, `\\boxed{...}`, `x=5`; a prose-wrapped answer
    is reduced to its answer, once the text has passed `wellformed.malformed_answer`: soup
    that ends in the gold number is not the gold). Never raises; bounded time per call; when
    in doubt, False.
    """
    try:
        if not isinstance(pred, str) or not isinstance(gold, str):
            return False
        deadline = time.monotonic() + TIME_BUDGET_S
        if pred.strip() == gold.strip():
            return bool(pred.strip())
        if _malformed(pred) or _malformed(gold):
            return False
        p, g = _clean(pred), _clean(gold)
        if not p or not g:
            return False
        if p == g or p.replace(" ", "") == g.replace(" ", ""):
            return True
        if len(p) > MAX_ANSWER_CHARS or len(g) > MAX_ANSWER_CHARS:
            return False
        np_, ng = parse_number(p), parse_number(g)
        if np_ is not None and ng is not None and "," not in p + g:
            return _numbers_equal(("num", np_.value, np_.percent), ("num", ng.value, ng.percent))
        for reading_p in parse_answer(p):
            for reading_g in parse_answer(g):
                if _equal(reading_p, reading_g, deadline):
                    return True
                if time.monotonic() > deadline:
                    return False
        return False
    except Exception:  # noqa: BLE001 - the contract is "never raises"; unknown means not equal
        return False
