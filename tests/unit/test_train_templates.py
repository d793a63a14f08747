import pytest

from metamath_ray.templates import EVAL_COT_PROMPT, TRAIN_PROMPT, build_prompt, build_training_text

# The exact strings of meta-math/MetaMath train_math.py (PROMPT_DICT["prompt_no_input"]) and
# eval_gsm8k.py (problem_prompt), with {instruction}/{query} filled by "Q?".
METAMATH_TRAIN = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\nQ?\n\n### Response:"
)
METAMATH_EVAL = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\nQ?\n\n### Response: Let's think step by step."
)


def test_train_and_eval_prompts_match_metamath_exactly():
    assert build_prompt("Q?") == METAMATH_TRAIN
    assert build_prompt("Q?", "eval_cot") == METAMATH_EVAL


def test_eval_prompt_extends_train_prompt():
    assert EVAL_COT_PROMPT.startswith(TRAIN_PROMPT)


def test_latex_braces_are_kept_verbatim():
    q = r"What is $\frac{1}{2} + {x}$ when {query} appears?"
    assert build_prompt(q).count(q) == 1


def test_response_follows_the_prompt_directly():
    prompt, target = build_training_text("Q?", "A. The answer is: 3")
    assert prompt + target == METAMATH_TRAIN + "A. The answer is: 3"


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown template variant"):
        build_prompt("Q", "chat")
