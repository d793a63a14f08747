"""Answer extraction and equivalence (pure Python; sympy is imported lazily, only when needed).

Public API:
- `extract_answer(text)`: the final answer of a response.
- `extract_boxed(text)`: the last \\boxed{} / \\fbox{} content.
- `extract_gsm8k_gold(solution)`: the text after GSM8K's `####`, commas removed.
- `is_equivalent(pred, gold)`: conservative, never raises, bounded time per call.
- `normalize_answer(ans)`: canonical display string (equal numbers give equal strings).
- `warm_up()`: pay sympy's import and parser start-up before timed work.
- `malformed_answer(text)`: why a text cannot be a final answer (soup, control bytes), or None.
- `first_wrong_step(text)`, `check_steps(text)`: arithmetic claims of a chain of thought recomputed.
"""

from .equivalence import is_equivalent
from .extract import extract_answer, extract_boxed, extract_gsm8k_gold
from .normalize import normalize_answer
from .steps import WrongStep, check_steps, first_wrong_step
from .symbolic import warm_up, warm_up_once
from .wellformed import is_well_formed_answer, malformed_answer

__all__ = [
    "WrongStep",
    "check_steps",
    "first_wrong_step",
    "extract_answer",
    "extract_boxed",
    "extract_gsm8k_gold",
    "is_equivalent",
    "is_well_formed_answer",
    "malformed_answer",
    "normalize_answer",
    "warm_up",
    "warm_up_once",
]
