"""Two scorers side by side on every response.

- strict: our extractor (`The answer is`, boxed, `####`, ...) and sympy-backed equivalence; no
  rounding, so 17.6 is wrong for 18.
- metamath: MetaMath's published scoring (see `metamath_compat`), so numbers line up with its tables.
Each also yields a voting key for maj@k: samples with the same key are the same answer.
Neither raises: a response that cannot be compared is wrong, with `score_error` saying why.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from metamath_ray.evaluate import metamath_compat as mm
from metamath_ray.evaluate.datasets import ScoringKind

SCORERS = ("strict", "metamath")

SCORE_COLUMNS = (
    "extracted",
    "correct_strict",
    "vote_key",
    "extracted_metamath",
    "correct_metamath",
    "vote_key_metamath",
    "score_error",  # "<scorer>: why" when a response is scored wrong without a comparison, else None
)

log = logging.getLogger(__name__)


def score_strict(response: str, gold: str) -> dict[str, Any]:
    from metamath_ray.answers import extract_answer, is_equivalent, normalize_answer

    pred = extract_answer(response)
    if pred is None:
        return {"extracted": None, "correct_strict": False, "vote_key": None}
    return {
        "extracted": pred,
        "correct_strict": bool(is_equivalent(pred, gold)),
        "vote_key": normalize_answer(pred),
    }


def score_metamath(kind: ScoringKind, response: str, gold_metamath: str | None) -> dict[str, Any]:
    """MetaMath's verdict; where their own script would have crashed (e.g. "The answer is: 36/00"),
    wrong with the reason in `score_error`."""
    score = mm.gsm8k_verdict if kind == "numeric" else mm.math_verdict
    verdict = score(response, gold_metamath)
    return {
        "extracted_metamath": verdict.extracted,
        "correct_metamath": verdict.correct,
        "vote_key_metamath": verdict.vote_key,
        "score_error": f"metamath: {verdict.reason}" if verdict.reason else None,
    }


def _guarded(name: str, scorer: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A scorer bug must cost one sample, not the evaluation batch: wrong, with the error recorded.
    Neither scorer is known to raise (the fuzz tests check that this net stays unused)."""
    try:
        return scorer(*args)
    except Exception as err:  # noqa: BLE001
        log.warning("%s scorer raised %s on a response; scored wrong", name, type(err).__name__, exc_info=True)
        suffix = "" if name == "strict" else f"_{name}"
        return {
            "extracted" + suffix: None,
            f"correct_{name}": False,
            "vote_key" + suffix: None,
            "score_error": f"{name}: internal error {type(err).__name__}: {str(err)[:200]}",
        }


def score_response(kind: ScoringKind, response: str, gold: str, gold_metamath: str | None) -> dict[str, Any]:
    strict = _guarded("strict", score_strict, response, gold)
    metamath = _guarded("metamath", score_metamath, kind, response, gold_metamath)
    errors = [e for e in (strict.pop("score_error", None), metamath.pop("score_error", None)) if e]
    return {**strict, **metamath, "score_error": "; ".join(errors) or None}
