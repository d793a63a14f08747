"""Hybrid decoding (MAmmoTH): ask for a program, run it in the sandbox, fall back to chain of thought.

Per question the model answers twice, greedily: once with a program (the PoT prompt: the question
plus the PoT trigger sentence the training export uses) and once with chain of thought. The hybrid
answer is the program's printed answer when the program ran and printed something parsable, else
the chain of thought's answer. Pure Python; the sandbox runs child processes, so in the pipeline this
runs inside Ray map tasks with bounded concurrency.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from metamath_ray.augment.base import ANSWER_PREFIX
from metamath_ray.augment.pot import POT_TRIGGER, extract_code, printed_answer
from metamath_ray.evaluate.metrics import proportion
from metamath_ray.evaluate.scoring import SCORERS, score_response
from metamath_ray.templates import build_prompt

POT_OK = "ok"


def pot_prompt(question: str) -> str:
    """The training template with the PoT trigger (what a model trained on GSM_PoT/MATH_PoT saw)."""
    return build_prompt(f"{question.strip()}\n{POT_TRIGGER}", "train")


def score_program(kind: str, response: str, gold: str, gold_metamath: str | None, limits=None) -> dict:
    """Both scorers' verdicts on a program's printed answer, plus `pot_status`: ok, no_program,
    no_output, or sandbox_<reason>. A failed program scores as wrong with nothing extracted."""
    from metamath_ray.sandbox import run_python

    code = extract_code(response)
    status, answer = "no_program", None
    if code is not None:
        result = run_python(code, limits)
        if not result.ok:
            status = f"sandbox_{result.reason}"
        else:
            answer = printed_answer(result.stdout)
            status = POT_OK if answer is not None and len(answer) <= 200 else "no_output"
    if status != POT_OK:
        return {"extracted": None, "correct_strict": False, "vote_key": None, "extracted_metamath": None,
                "correct_metamath": False, "vote_key_metamath": None, "pot_status": status}
    # Score the printed answer exactly as a chain of thought ending with it would be scored.
    return {**score_response(kind, f"{ANSWER_PREFIX}{answer}", gold, gold_metamath), "pot_status": POT_OK}


def hybrid_summary(rows: list[dict]) -> dict:
    """From one dataset's rows (greedy CoT and "pot" rows): CoT-only, PoT-only and hybrid accuracy per
    scorer, how often the hybrid fell back to CoT, and why programs failed."""
    by_item: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["decoding"] in ("greedy", "pot"):
            by_item[r["item_id"]][r["decoding"]] = r
    items = [v for v in by_item.values() if "pot" in v]
    n = len(items)
    out: dict = {"questions": n}
    fallbacks = sum(1 for v in items if v["pot"].get("pot_status") != POT_OK)
    for scorer in SCORERS:
        flag = f"correct_{scorer}"
        pot_ok = sum(bool(v["pot"][flag]) for v in items)
        cot_ok = sum(bool(v.get("greedy", {}).get(flag)) for v in items)
        hybrid_ok = sum(
            bool(v["pot"][flag]) if v["pot"].get("pot_status") == POT_OK else bool(v.get("greedy", {}).get(flag))
            for v in items
        )
        out[scorer] = {"cot": proportion(cot_ok, n), "pot": proportion(pot_ok, n), "hybrid": proportion(hybrid_ok, n)}
    out["fallback_rate"] = fallbacks / n if n else 0.0
    out["pot_status"] = dict(sorted(Counter(v["pot"].get("pot_status") or "unknown" for v in items).items()))
    return out
