"""Is a seed's gold answer usable? A seed is only worth generating for when the verifier can read
its gold answer: otherwise every chain of thought is rejected (or, worse, judged by accident).

`gold_problem(answer, dataset)` says why a gold answer cannot be used, or returns None. Measured on
the full MATH train + test sets (12,500 golds): 13 are refused, 2 empty `\\boxed{}` and 11 the
symbolic parser cannot read (e.g. `\\frac{\\sqrt6}2`, `\\dfrac{1}{29,\\!322,\\!216}`,
`\\approx 8.24 \\text{ mph}`); none of GSM8K train's 7,473.
"""

from __future__ import annotations

from metamath_ray.answers.latex import balanced
from metamath_ray.answers.normalize import answer_part, clean_latex
from metamath_ray.answers.numeric import parse_number
from metamath_ray.answers.structure import parse_answer


def _expressions(node) -> list[str]:
    """The free-form expressions inside a parsed answer (what the symbolic path must read)."""
    kind = node[0]
    if kind == "expr":
        return [node[1]]
    if kind in ("set", "union"):
        return [e for child in node[1] for e in _expressions(child)]
    if kind == "seq":
        return [e for child in node[3] for e in _expressions(child)]
    return []


def _unreadable(expression: str) -> bool:
    from metamath_ray.answers import symbolic

    if not symbolic.is_safe(expression):
        return False  # too large to try here: the verifier refuses it per comparison, within budget
    try:
        symbolic._parse(expression)
    except Exception:  # noqa: BLE001 - any parser failure means the verifier cannot read it
        return True
    return False


def gold_problem(answer: str | None, dataset: str) -> str | None:
    """Why `answer` cannot serve as a gold answer for `dataset` ("gsm8k" | "math"), or None."""
    if answer is None or not answer.strip():
        return "no gold answer (#### line or \\boxed{})" if answer is None else "empty gold answer"
    if not balanced(answer):
        return f"unbalanced braces in {answer!r}"
    if dataset == "gsm8k":
        return None if parse_number(answer.strip()) is not None else f"#### line is not a number: {answer!r}"
    cleaned = clean_latex(answer_part(answer))
    if not cleaned:
        return f"empty gold answer after cleaning: {answer!r}"
    for expression in _expressions(parse_answer(cleaned)[0]):
        if _unreadable(expression):
            return f"the verifier cannot read {expression!r} in {answer!r}"
    return None
