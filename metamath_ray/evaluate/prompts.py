"""Evaluation prompts: MetaMath's zero-shot CoT template by default, few-shot for base models.

Few-shot exemplars are worked training problems (the bundled GSM8K / MATH training seeds, never test
rows), each written in the same Alpaca format and ending in MetaMath's "The answer is: X", so a base
model learns both the format and the answer marker the scorers look for.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Literal

from metamath_ray.evaluate.datasets import ScoringKind
from metamath_ray.templates import EVAL_STOP_STRINGS, build_prompt

PromptTemplate = Literal["eval_cot", "train", "fewshot"]

_CALCULATOR = re.compile(r"<<[^>]*>>")
_SEED_FILES = {"numeric": "gsm8k_train_sample.jsonl", "math": "math_train_sample.jsonl"}


def default_stop() -> list[str]:
    return list(EVAL_STOP_STRINGS)


def gsm8k_exemplar_response(solution: str) -> str:
    """A GSM8K training solution in MetaMathQA style: no calculator tags, "The answer is: N"."""
    body, _, final = solution.partition("####")
    body = _CALCULATOR.sub("", body).strip()
    return f"{body}\nThe answer is: {final.strip().replace(',', '')}"


def math_exemplar_response(solution: str) -> str:
    from metamath_ray.answers import extract_boxed

    return f"{solution.strip()}\nThe answer is: {extract_boxed(solution)}"


def fewshot_exemplars(kind: ScoringKind, shots: int) -> list[tuple[str, str]]:
    """(question, response) pairs from the bundled training seeds, in file order."""
    path = resources.files("metamath_ray") / "data" / "seeds" / _SEED_FILES[kind]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if shots > len(rows):
        raise ValueError(f"{shots} shots requested, only {len(rows)} bundled {kind} exemplars")
    if kind == "numeric":
        return [(r["question"], gsm8k_exemplar_response(r["answer"])) for r in rows[:shots]]
    return [(r["problem"], math_exemplar_response(r["solution"])) for r in rows[:shots]]


def fewshot_prefix(kind: ScoringKind, shots: int) -> str:
    """Solved exemplars, each a complete Alpaca block; identical across prompts (prefix caching)."""
    blocks = [f"{build_prompt(q, 'eval_cot')}\n{r}\n\n" for q, r in fewshot_exemplars(kind, shots)]
    return "".join(blocks)


def build_eval_prompt(question: str, template: PromptTemplate, prefix: str = "") -> str:
    """The text the engine completes. `prefix` is the few-shot block (template "fewshot" only)."""
    if template == "fewshot":
        return prefix + build_prompt(question, "eval_cot")
    return build_prompt(question, template)
