"""The slow path: symbolic comparison of two LaTeX expressions with sympy.

Guards keep sympy away from inputs that can hang it (power towers, huge factorials, very long
or deeply nested strings); a deadline thread bounds what is left. Signals are not used, so
this works from any thread (Ray workers call from non-main threads).

Equality is decided numerically with high precision rather than by `simplify`, which has no
time bound: constants are evaluated to 30 significant digits and must agree to 1e-20
(relative), so a rounded decimal (1.4142135623730951) never equals sqrt(2), while genuinely
equal closed forms do. Expressions with free symbols are compared at several random
rational points (polynomial identity testing); an equation is compared as the expression
lhs - rhs up to a constant non-zero factor.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time

from .latex import max_brace_depth

MAX_SYMBOLIC_CHARS = 400
MAX_BRACE_DEPTH = 10
MAX_POWERS = 12
DIGITS = 30
TOLERANCE = 1e-20

_NESTED_POWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\d+\s*\^|\^\s*\{[^{}]*\{[^{}]*\^")
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*-?\s*(\d{4,}|[1-9]\d{2,}\.)")
_FACTORIAL = re.compile(r"(\d{3,})\s*!|\\frac\{[^}]*\}\{[^}]*\}\s*!|\)\s*!")
_FORBIDDEN = re.compile(r"\\(?:sum|prod|int|lim|iint|oint|infty|begin|cup|cap|in)(?![A-Za-z])|\\\\|&")
_LONG_NUMBER = re.compile(r"\d{60,}")

_import_lock = threading.Lock()
_modules: dict = {}


def _sympy():
    """Import sympy and latex2sympy once (a few seconds), outside any deadline."""
    if not _modules:
        with _import_lock:
            if not _modules:
                import sympy
                from latex2sympy2_extended import latex2sympy

                _modules["sympy"] = sympy
                _modules["latex2sympy"] = latex2sympy
    return _modules["sympy"], _modules["latex2sympy"]


_WARM_SHAPES = (
    "\\frac{x}{2}+\\sqrt{3}", "y=-\\frac{1}{2}x+\\frac{3}{4}", "2x+4y-3=0", "x^2+2x+1",
    "(r+5)(r+5)", "3\\sqrt{13}", "\\frac{9\\pi}{4}", "\\sin x \\cos y", "e^{2}", "\\log_2 8",
    "\\binom{5}{2}", "5!", "3+5i", "a b - c", "\\sqrt[3]{x}", "\\tan^2(y)+1",
)


_warmed = False


def warm_up_once() -> None:
    """`warm_up()` the first time a process calls it; free afterwards. Judging workers call this
    so that the first symbolic comparison in a fresh Ray worker is not spent importing sympy
    (which would run out the per-call budget and reject a correct answer)."""
    global _warmed
    if not _warmed:
        _warmed = True
        warm_up()


def warm_up() -> None:
    """Pay the one-time import and parser start-up cost now (e.g. when a worker starts)."""
    sympy, latex2sympy = _sympy()
    # the ANTLR parser learns its predictions per input shape: a cold shape costs ~0.3 s,
    # so parse the common shapes once here rather than inside a timed call
    for shape in _WARM_SHAPES:
        try:
            _compare(shape, shape + "+0")
        except Exception:  # noqa: BLE001 - warming is best effort
            pass


def is_safe(latex: str) -> bool:
    """False for inputs that could make sympy slow: refuse rather than risk a hang."""
    if len(latex) > MAX_SYMBOLIC_CHARS or max_brace_depth(latex) > MAX_BRACE_DEPTH:
        return False
    if latex.count("^") > MAX_POWERS or _NESTED_POWER.search(latex) or _BIG_EXPONENT.search(latex):
        return False
    if _FACTORIAL.search(latex) or _LONG_NUMBER.search(latex) or _FORBIDDEN.search(latex):
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _parse(latex: str):
    sympy, latex2sympy = _sympy()
    expr = latex2sympy(latex)
    if isinstance(expr, sympy.Basic):
        floats = expr.atoms(sympy.Float)
        if floats:
            # decimals are exact in the answer text: 0.1 means 1/10
            expr = expr.xreplace({f: sympy.Rational(str(f)) for f in floats})
    return expr


def _close(x, y) -> bool:
    scale = max(1.0, abs(complex(x)), abs(complex(y)))
    return abs(complex(x - y)) <= TOLERANCE * scale


def _numeric_value(sympy, expr):
    value = expr.evalf(DIGITS)
    if not value.is_number or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return None
    return value


def _equal_expressions(sympy, a, b) -> bool:
    if a.has(sympy.zoo, sympy.nan) or b.has(sympy.zoo, sympy.nan):
        return False
    if a == b:
        return True
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if len(symbols) > 6:
        return False
    if not symbols:
        va, vb = _numeric_value(sympy, a), _numeric_value(sympy, b)
        if va is None or vb is None:
            return False
        return _close(va, vb)
    rng = random.Random(1234567)
    agreed = 0
    for _ in range(6):
        point = {s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 31)) for s in symbols}
        va = _numeric_value(sympy, a.xreplace(point))
        vb = _numeric_value(sympy, b.xreplace(point))
        if va is None or vb is None:
            if (va is None) != (vb is None):
                return False
            continue
        if not _close(va, vb):
            return False
        agreed += 1
        if agreed >= 3:
            return True
    return agreed >= 2


def _proportional(sympy, a, b) -> bool:
    """a = c * b for a constant non-zero c (same equation, rearranged or scaled)."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols or len(symbols) > 6:
        return False
    rng = random.Random(7654321)
    ratio = None
    agreed = 0
    for _ in range(6):
        point = {s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 31)) for s in symbols}
        va = _numeric_value(sympy, a.xreplace(point))
        vb = _numeric_value(sympy, b.xreplace(point))
        if va is None or vb is None or abs(complex(vb)) < 1e-30:
            continue
        r = va / vb
        if abs(complex(r)) < 1e-30:
            return False
        if ratio is None:
            ratio = r
        elif not _close(r, ratio):
            return False
        agreed += 1
    return agreed >= 3


def _compare(pred: str, gold: str) -> bool:
    sympy, _ = _sympy()
    a, b = _parse(pred), _parse(gold)
    if not isinstance(a, sympy.Basic) or not isinstance(b, sympy.Basic):
        return False
    a_eq, b_eq = isinstance(a, sympy.Equality), isinstance(b, sympy.Equality)
    if a_eq != b_eq:
        return False
    if a_eq:
        return _proportional(sympy, a.lhs - a.rhs, b.lhs - b.rhs)
    if not isinstance(a, sympy.Expr) or not isinstance(b, sympy.Expr):
        return a == b
    return _equal_expressions(sympy, a, b)


def symbolic_equal(pred: str, gold: str, deadline: float) -> bool:
    """True when both parse and are equal; False on refusal, error or past `deadline`."""
    if not (is_safe(pred) and is_safe(gold)):
        return False
    if ("=" in pred) != ("=" in gold):
        return False  # an equation never equals a bare expression; skip two slow parses
    try:
        _sympy()
    except Exception:  # noqa: BLE001 - sympy or the parser missing: no symbolic path
        return False
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    outcome: list[bool] = []

    def work() -> None:
        try:
            outcome.append(bool(_compare(pred, gold)))
        except Exception:  # noqa: BLE001 - invalid LaTeX and sympy errors mean "not shown equal"
            outcome.append(False)

    worker = threading.Thread(target=work, name="answers-symbolic", daemon=True)
    worker.start()
    worker.join(remaining)
    return bool(outcome) and outcome[0]
