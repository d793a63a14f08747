import pytest

from metamath_ray.templates import (
    EVAL_COT_PROMPT,
    TRAIN_PROMPT,
    build_prompt,
    build_training_text,
    split_metamath_query,
)
from metamath_ray.train.config import TrainConfig

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


# meta-math/MetaMath train_math.py PROMPT_DICT["prompt_input"] with instruction "Q1?" and input "Q2?".
METAMATH_TRAIN_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\nQ1?\n\n"
    "### Input:\nQ2?\n\n### Response:"
)


def test_metamath_template_puts_later_lines_under_input():
    assert build_prompt("Q1?\nQ2?", "metamath") == METAMATH_TRAIN_WITH_INPUT
    assert build_prompt("Q?", "metamath") == METAMATH_TRAIN  # one line: the no-input prompt
    # the train template keeps the whole query as the instruction, as MetaMath's eval scripts do
    assert build_prompt("Q1?\nQ2?") == METAMATH_TRAIN.replace("Q?", "Q1?\nQ2?")


@pytest.mark.parametrize(
    ("query", "split"),
    [
        ("a", ("a", "")),
        ("a\nb", ("a", "b")),
        ("a\nb\nc", ("a", "b\nc")),
        ("a\n", ("a", "")),  # nothing after the break: MetaMath's get_input gives "", so no-input prompt
        ("a\n\nb", ("a", "\nb")),
        ("\nb", ("", "b")),
    ],
)
def test_query_split_is_train_maths(query, split):
    assert split_metamath_query(query) == split
    # train_math.py: instruction = query.split('\n')[0]; input = '\n'.join(query.split('\n')[1:]) if '\n' in query
    assert split == (query.split("\n")[0], "\n".join(query.split("\n")[1:]) if "\n" in query else "")


def test_metamath_template_keeps_braces_and_placeholders_verbatim():
    q = "Find $\\frac{1}{2}$ of {input}.\nWhat is {instruction}?"
    prompt = build_prompt(q, "metamath")
    assert "### Instruction:\nFind $\\frac{1}{2}$ of {input}.\n\n### Input:\nWhat is {instruction}?\n\n" in prompt


def test_metamath_is_the_training_default():
    assert TrainConfig(data="d.json", output="o").template == "metamath"
