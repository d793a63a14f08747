"""Prompt templates shared by training and evaluation, so both see the same text.

The strings are MetaMath's own (meta-math/MetaMath), which are Stanford Alpaca's:

- `metamath` (training default): what `train_math.py` does with a MetaMathQA record. The query's first
  line is the instruction; when the query has more lines, they become the input and the Alpaca
  *with-input* prompt is used (FOBAR / SV questions and the PoT trigger sit on later lines); a
  one-line query gets the *no-input* prompt. So MetaMath did not use the no-input prompt for every
  record: every multi-line query was trained on the with-input prompt.
- `train`: the no-input prompt around the whole query, whatever its lines. This is the prompt
  MetaMath's `eval_gsm8k.py` / `eval_math.py` build (without their CoT trigger).
- `eval_cot`: `train` plus " Let's think step by step.", MetaMath's evaluation prompt.

For training, the response follows "### Response:" directly (no separator); how the pair is
tokenised per template is in `metamath_ray/train/data.py`.
"""

from __future__ import annotations

from typing import Literal

TemplateVariant = Literal["metamath", "train", "eval_cot"]

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
ALPACA_PREAMBLE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)

# MetaMath train_math.py PROMPT_DICT["prompt_no_input"], with the whole query as the instruction.
TRAIN_PROMPT = ALPACA_PREAMBLE + "### Instruction:\n{query}\n\n### Response:"

# MetaMath train_math.py PROMPT_DICT, verbatim: str.format_map placeholders.
PROMPT_NO_INPUT = ALPACA_PREAMBLE + "### Instruction:\n{instruction}\n\n### Response:"
PROMPT_INPUT = ALPACA_PREAMBLE_WITH_INPUT + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"

# MetaMath eval_gsm8k.py / eval_math.py: the no-input prompt plus a zero-shot CoT trigger.
EVAL_COT_PROMPT = ALPACA_PREAMBLE + "### Instruction:\n{query}\n\n### Response: Let's think step by step."

TEMPLATES: dict[str, str] = {"train": TRAIN_PROMPT, "eval_cot": EVAL_COT_PROMPT}
VARIANTS: tuple[str, ...] = ("metamath", *TEMPLATES)

# Stop strings MetaMath's evaluation passes to vLLM: a model trained on this template tends to
# start a new "### Instruction:" block after its answer.
EVAL_STOP_STRINGS: tuple[str, ...] = (
    "Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT",
    "Instruction:", "Instruction", "Response:", "Response",
)


def split_metamath_query(query: str) -> tuple[str, str]:
    """(instruction, input) exactly as train_math.py splits a MetaMathQA query: the first line, and
    the remaining lines joined by "\\n" ("" for a one-line query). A query whose later lines are all
    empty ("Q\\n") yields input "" and so the no-input prompt, as in MetaMath."""
    lines = query.split("\n")
    return lines[0], "\n".join(lines[1:])


def metamath_prompt(query: str) -> str:
    """train_math.py's source text for a MetaMathQA record (before the response is appended)."""
    instruction, extra = split_metamath_query(query)
    # format_map fills the template's own placeholders only: braces inside the query (LaTeX) stay.
    if extra != "":
        return PROMPT_INPUT.format_map({"instruction": instruction, "input": extra})
    return PROMPT_NO_INPUT.format_map({"instruction": instruction})


def build_prompt(query: str, variant: TemplateVariant = "train") -> str:
    """The prompt for `query`; for training, the response text is appended right after it."""
    if variant == "metamath":
        return metamath_prompt(query)
    try:
        template = TEMPLATES[variant]
    except KeyError:
        raise ValueError(f"unknown template variant {variant!r}; expected one of {list(VARIANTS)}") from None
    # str.replace, not str.format: queries contain LaTeX braces such as \frac{1}{2}.
    return template.replace("{query}", query)


def build_training_text(query: str, response: str, variant: TemplateVariant = "metamath") -> tuple[str, str]:
    """(prompt, target) as MetaMath trains on them; the loss covers the target only."""
    return build_prompt(query, variant), response
