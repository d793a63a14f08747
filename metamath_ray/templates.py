"""Prompt templates shared by training and evaluation, so both see the same text.

The strings are MetaMath's own (meta-math/MetaMath): `train_math.py` formats every MetaMathQA record
with the Alpaca no-input prompt and appends the response directly after "### Response:";
`eval_gsm8k.py` / `eval_math.py` use the same prompt with " Let's think step by step." appended.
"""

from __future__ import annotations

from typing import Literal

TemplateVariant = Literal["train", "eval_cot"]

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)

# MetaMath train_math.py: PROMPT_DICT["prompt_no_input"]; the response follows with no separator.
TRAIN_PROMPT = ALPACA_PREAMBLE + "### Instruction:\n{query}\n\n### Response:"

# MetaMath eval_gsm8k.py / eval_math.py: the train prompt plus a zero-shot CoT trigger.
EVAL_COT_PROMPT = ALPACA_PREAMBLE + "### Instruction:\n{query}\n\n### Response: Let's think step by step."

TEMPLATES: dict[str, str] = {"train": TRAIN_PROMPT, "eval_cot": EVAL_COT_PROMPT}

# Stop strings MetaMath's evaluation passes to vLLM: a model trained on this template tends to
# start a new "### Instruction:" block after its answer.
EVAL_STOP_STRINGS: tuple[str, ...] = (
    "Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT",
    "Instruction:", "Instruction", "Response:", "Response",
)


def build_prompt(query: str, variant: TemplateVariant = "train") -> str:
    """The prompt for `query`; for training, the response text is appended right after it."""
    try:
        template = TEMPLATES[variant]
    except KeyError:
        raise ValueError(f"unknown template variant {variant!r}; expected one of {sorted(TEMPLATES)}") from None
    # str.replace, not str.format: queries contain LaTeX braces such as \frac{1}{2}.
    return template.replace("{query}", query)


def build_training_text(query: str, response: str, variant: TemplateVariant = "train") -> tuple[str, str]:
    """(prompt, target) as MetaMath trains on them; the loss covers the target only."""
    return build_prompt(query, variant), response
