"""Shared vocabulary of the augmentations: no Ray, no engines, only text in and text out.

Every augmentation turns a seed into *questions with a known expected answer* (a `Variant`), and
every variant is then solved by K chains of thought that are checked against `expected`.
Some augmentations get their variants from the LLM (Rephrasing, SV: a rewrite step), others
build them deterministically (AnsAug: the question itself; FOBAR: masked numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASETS = ("gsm8k", "math")

# Public MetaMathQA `type` names, per (dataset, aug).
EXPORT_TYPES = {
    ("gsm8k", "AnsAug"): "GSM_AnsAug",
    ("gsm8k", "Rephrasing"): "GSM_Rephrased",
    ("gsm8k", "FOBAR"): "GSM_FOBAR",
    ("gsm8k", "SV"): "GSM_SV",
    ("math", "AnsAug"): "MATH_AnsAug",
    ("math", "Rephrasing"): "MATH_Rephrased",
    ("math", "FOBAR"): "MATH_FOBAR",
    ("math", "SV"): "MATH_SV",
    ("gsm8k", "PoT"): "GSM_PoT",  # not in MetaMathQA: program-of-thought records (MAmmoTH style)
    ("math", "PoT"): "MATH_PoT",
}

ANSWER_PREFIX = "The answer is: "  # MetaMathQA's exact final line, kept for comparability


@dataclass(frozen=True)
class Variant:
    """A question to solve, with the answer a correct chain of thought must reach."""

    seed_id: str
    dataset: str
    aug: str
    variant: int  # index of this variant within (seed, aug): mask position, rephrasing number
    query: str
    expected: str
    original_question: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A rewrite (rephrasing, SV statement) that was refused before any chain of thought."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one chain of thought."""

    accepted: bool
    predicted: str | None
    reject_reason: str | None  # None when accepted
    response: str  # cleaned response, ending with "The answer is: X" when accepted
    detail: str | None = None  # why it was rejected, beyond the reason (wrong_step: the step)
