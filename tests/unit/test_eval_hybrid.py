"""Hybrid (program + chain-of-thought fallback) scoring on recorded responses."""

from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.evaluate.hybrid import hybrid_summary, pot_prompt, score_program
from metamath_ray.pipeline.evaluate import build_requests, score_rows

# Recorded shapes: a model trained on GSM_PoT answers with a fenced program.
GOOD = "```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```\nThe answer is: 18"
WRONG = "```python\nprint(17)\n```"
CRASH = "```python\nprint(undefined_name)\n```"
SILENT = "```python\nx = 18\n```"
FORBIDDEN = "```python\nimport os\nos.system('ls')\n```"


def test_program_scores():
    ok = score_program("numeric", GOOD, "18", "18")
    assert ok["pot_status"] == "ok" and ok["correct_strict"] and ok["correct_metamath"] and ok["extracted"] == "18"
    wrong = score_program("numeric", WRONG, "18", "18")
    assert wrong["pot_status"] == "ok" and not wrong["correct_strict"] and not wrong["correct_metamath"]
    assert score_program("numeric", CRASH, "18", "18")["pot_status"] == "sandbox_error"
    assert score_program("numeric", SILENT, "18", "18")["pot_status"] == "no_output"
    assert score_program("numeric", FORBIDDEN, "18", "18")["pot_status"] == "sandbox_forbidden"
    assert score_program("numeric", "", "18", "18")["pot_status"] == "no_program"
    latex = score_program("math", "```python\nimport sympy as sp\nprint(sp.latex(sp.Rational(3, 6)))\n```",
                          "\\frac{1}{2}", "\\frac{1}{2}")
    assert latex["correct_strict"] and latex["correct_metamath"]


def _row(item, decoding, text):
    return {"item_id": item, "dataset": "gsm8k", "kind": "numeric", "type": "", "level": 0, "source_index": 0,
            "question": "q", "gold": "18", "gold_metamath": "18", "decoding": decoding, "sample_idx": 0,
            "sample_seed": 0, "max_tokens": 64, "prompt": "p", "generated_text": text}


def test_hybrid_falls_back_to_cot_when_the_program_fails():
    cot_right, cot_wrong = "So 18.\nThe answer is: 18", "So 17.\nThe answer is: 17"
    rows = score_rows([
        _row("a", "greedy", cot_wrong), _row("a", "pot", GOOD),       # program right, CoT wrong -> right
        _row("b", "greedy", cot_right), _row("b", "pot", CRASH),      # program fails -> CoT -> right
        _row("c", "greedy", cot_right), _row("c", "pot", WRONG),      # program ran, wrong -> wrong (no fallback)
        _row("d", "greedy", cot_wrong), _row("d", "pot", SILENT),     # fails, CoT wrong -> wrong
    ])
    h = hybrid_summary(rows)
    assert h["questions"] == 4
    assert h["strict"]["cot"]["correct"] == 2
    assert h["strict"]["pot"]["correct"] == 1
    assert h["strict"]["hybrid"]["correct"] == 2 and h["strict"]["hybrid"]["accuracy"] == 0.5
    assert h["metamath"]["hybrid"]["correct"] == 2
    assert h["fallback_rate"] == 0.5
    assert h["pot_status"] == {"no_output": 1, "ok": 2, "sandbox_error": 1}
    cot_only = [r for r in rows if r["decoding"] == "greedy"]
    assert all(r.get("pot_status") is None for r in cot_only)


def test_requests_and_report_in_hybrid_mode():
    cfg = EvaluateConfig(datasets="gsm8k", limit=2, mode="hybrid")
    requests = build_requests(cfg)
    assert sorted(r["decoding"] for r in requests) == ["greedy", "greedy", "pot", "pot"]
    pot = next(r for r in requests if r["decoding"] == "pot")
    assert pot["prompt"] == pot_prompt(pot["question"]) and "Let's write a Python program" in pot["prompt"]
    assert len(build_requests(EvaluateConfig(datasets="gsm8k", limit=2))) == 2  # cot mode: unchanged
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        EvaluateConfig(mode="hybrid", greedy=False, k=2)
