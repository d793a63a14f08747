"""Rewrite checks run on the driver: its first symbolic comparison must not pay sympy's import.

In a brand-new interpreter (a fresh driver), an SV statement that states the answer only in a form
the symbolic path can show equal ($\\sqrt{2} \\cdot 2$ for 2\\sqrt{2}) must be accepted. Without
the warm-up in `parse_rewrite_row`, the cold import ran out the per-call budget and the statement
was refused as `answer_missing` (measured: 8.9 s cold vs 0.02 s warm).
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json
from metamath_ray.pipeline.augment import parse_rewrite_row
seed = {"seed_id": "math/train/prealgebra/1", "dataset": "math",
        "question": "A square has an area of 8 square units. What is the length of its side?",
        "answer": "2\\sqrt{2}", "level": "Level 2", "type": "Prealgebra", "solution": "$\\boxed{2\\sqrt{2}}$"}
row = {"seed_id": seed["seed_id"], "aug": "SV", "variant": 0,
       "generated_text": "The length of its side is $\\sqrt{2} \\cdot 2$ units.\nQuestion: more"}
text, parsed = parse_rewrite_row(seed, row)
print(json.dumps({"text": text, "kind": type(parsed).__name__, "expected": getattr(parsed, "expected", None),
                  "reason": getattr(parsed, "reason", None)}))
"""


def test_first_rewrite_check_in_a_fresh_driver_uses_the_symbolic_path():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["text"] == "The length of its side is $\\sqrt{2} \\cdot 2$ units."  # cut at the SV stop
    assert out["kind"] == "Variant" and out["expected"] == "8", out
