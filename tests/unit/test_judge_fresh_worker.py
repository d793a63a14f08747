"""A fresh Ray worker's first judgement: sympy's import must not eat the comparison's time budget.

Runs `judge_rows` in a brand-new interpreter (as a freshly started Ray worker would) on a MATH
answer that only the symbolic path can show equal. Before warm-up was wired into `judge_rows`,
the import alone could exceed the 0.9 s per-call budget and the correct answer was rejected.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, sys
from metamath_ray.pipeline.augment import judge_rows
row = {"seed_id": "math/train/algebra/1", "aug": "AnsAug", "variant": 0, "sample_idx": 0, "round": 0,
       "dataset": "math", "query": "Simplify $\\sqrt{8}$.", "original_question": "Simplify $\\sqrt{8}$.",
       "expected": "2\\sqrt{2}", "chunk": 0,
       "generated_text": "We have $\\sqrt{8} = \\sqrt{4 \\cdot 2}$, so the result is $\\boxed{\\sqrt{2}\\cdot 2}$.\nThe answer is: \\sqrt{2}\\cdot 2"}
out = judge_rows([row], "tiny", "k", "v1")
print(json.dumps({"accepted": out[0]["accepted"], "reason": out[0]["reject_reason"], "predicted": out[0]["predicted"]}))
"""


def test_first_judgement_in_a_fresh_process_uses_the_symbolic_path():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["accepted"], verdict
