"""Two scorers side by side on every response.

- strict: our extractor (`The answer is`, boxed, `####`, ...) and sympy-backed equivalence; no
  rounding, so 17.6 is wrong for 18.
- metamath: MetaMath's published scoring (see `metamath_compat`), so numbers line up with its tables.
Each also yields a voting key for maj@k: samples with the same key are the same answer.
"""

from __future__ import annotations

from typing import Any

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
)


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
    if kind == "numeric":
        pred = mm.gsm8k_extract(response)
        correct = pred is not None and gold_metamath is not None and float(pred) == float(gold_metamath)
        key = None if pred is None else str(pred)
        return {"extracted_metamath": key, "correct_metamath": correct, "vote_key_metamath": key}
    text = mm.math_extract(response)
    return {
        "extracted_metamath": text,
        "correct_metamath": text is not None and mm.is_equiv(text, gold_metamath),
        "vote_key_metamath": mm.math_vote_key(text),
    }


def score_response(kind: ScoringKind, response: str, gold: str, gold_metamath: str | None) -> dict[str, Any]:
    return {**score_strict(response, gold), **score_metamath(kind, response, gold_metamath)}
