"""Program-of-thought: prompts, code extraction from realistic model responses, acceptance by running
the program in the sandbox, export as GSM_PoT / MATH_PoT."""

import pytest

from metamath_ray.augment import export, pot
from metamath_ray.augment.base import ANSWER_PREFIX, EXPORT_TYPES
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.augment.registry import AUGMENTATIONS, DEFAULT_AUGMENTATIONS
from metamath_ray.config import load_config

GSM_Q = "Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?"

# Recorded shapes of model output. Base models continue the prompt's opened block and close it;
# chat / instruction-tuned models write their own fenced block, often with prose around it.
CONTINUATION = "boxes = 3\napples_per_box = 12\nleft = boxes * apples_per_box - 5\nprint(left)\n```\n\nQuestion: next"
CHAT = ("Sure! Here is a program:\n\n```python\ntotal = 3 * 12\nprint(total - 5)\n```\n\n"
        "Running it prints 31.\nThe answer is: 31")
CUT_OFF = "```python\nimport sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x - 31, x)[0])\n"  # max_tokens hit
PROSE_ONLY = "```\n```"


def test_pot_is_an_opt_in_fifth_augmentation():
    assert AUGMENTATIONS[-1] == "PoT" and "PoT" not in DEFAULT_AUGMENTATIONS
    assert EXPORT_TYPES[("gsm8k", "PoT")] == "GSM_PoT" and EXPORT_TYPES[("math", "PoT")] == "MATH_PoT"
    cfg = AugmentConfig()
    assert "PoT" not in cfg.augmentations
    cfg = load_config(AugmentConfig, None, ["augmentations=[AnsAug, PoT]", "aug.PoT.k=1", "aug.PoT.sandbox_wall_s=3"])
    assert cfg.augmentations == ["AnsAug", "PoT"]
    assert cfg.aug.PoT.limits().wall_s == 3


@pytest.mark.parametrize("dataset", ["gsm8k", "math"])
def test_prompt_is_few_shot_with_shared_prefix_and_open_block(dataset):
    a, b = pot.solve_prompt("What is 1+1?", dataset), pot.solve_prompt("What is 2+2?", dataset)
    prefix = a[: a.index("What is 1+1?")]
    assert b.startswith(prefix)  # the same prefix for every question (prefix caching)
    assert a.endswith("Question: What is 1+1?\nProgram:\n```python\n")
    assert prefix.count("Question:") == 4 and prefix.count("```python") == 3  # 3 exemplars + this one
    with pytest.raises(ValueError):
        pot.solve_prompt("q", "svamp")


def test_every_exemplar_program_prints_its_answer():
    # The exemplars teach the format: each must run in the sandbox and print the training answer.
    from metamath_ray.answers import is_equivalent
    from metamath_ray.sandbox import run_python

    golds = ["72", "10", "624", "\\frac{3}{2}", "16", "29b(5b+1)"]
    for (_, code), gold in zip(pot.GSM8K_EXEMPLARS + pot.MATH_EXEMPLARS, golds):
        result = run_python(code)
        assert result.ok, (code, result)
        assert is_equivalent(pot.printed_answer(result.stdout), gold), (code, result.stdout)


def test_code_extraction_from_recorded_responses():
    assert pot.extract_code(CONTINUATION) == "boxes = 3\napples_per_box = 12\nleft = boxes * apples_per_box - 5\nprint(left)"
    assert pot.extract_code(CHAT) == "total = 3 * 12\nprint(total - 5)"
    assert pot.extract_code(CUT_OFF).endswith("print(sp.solve(x - 31, x)[0])")
    assert pot.extract_code(PROSE_ONLY) is None
    assert pot.extract_code("") is None
    assert pot.extract_code("\r\nprint(1)\r\n```") == "print(1)"


def test_printed_answer_takes_the_last_line():
    assert pot.printed_answer("debug 1\n31\n\n") == "31"
    assert pot.printed_answer("The answer is: 31") == "31"
    assert pot.printed_answer("Answer = 3/2.") == "3/2"
    assert pot.printed_answer("   \n") is None


def test_accepted_program_is_exported_with_answer_line():
    verdict = pot.judge(CONTINUATION, "31", "gsm8k")
    assert verdict.accepted and verdict.predicted == "31"
    assert verdict.response.startswith("```python\nboxes = 3")
    assert verdict.response.endswith("```\nThe answer is: 31")
    assert pot.judge(CHAT, "31", "gsm8k").accepted
    sym = pot.judge(CUT_OFF, "31", "math")
    assert sym.accepted, sym


@pytest.mark.parametrize("response,reason", [
    ("", "empty_response"),
    (PROSE_ONLY, "no_program"),
    ("print(30)\n```", "wrong_answer"),
    ("x = 1\n```", "no_output"),
    ("print(1/0)\n```", "sandbox_error"),
    ("import os\nprint(os.listdir('/'))\n```", "sandbox_forbidden"),
    ("while True:\n    pass\n```", "sandbox_cpu"),
    ("print('31' * 10**6)\n```", "sandbox_output_limit"),
])
def test_rejections_name_the_failure(response, reason):
    from metamath_ray.sandbox import SandboxLimits

    verdict = pot.judge(response, "31", "gsm8k", SandboxLimits(wall_s=20, cpu_s=1))
    assert not verdict.accepted and verdict.reject_reason == reason


def test_variants_and_export_rows():
    seed = {"seed_id": "gsm8k/train/0", "dataset": "gsm8k", "question": GSM_Q, "answer": "31"}
    (variant,) = pot.variants(seed)
    assert variant.aug == "PoT" and variant.original_question == GSM_Q
    assert variant.query == f"{GSM_Q}\n{pot.POT_TRIGGER}" and variant.expected == "31"
    verdict = pot.judge(CONTINUATION, "31", "gsm8k")
    row = {"id": "a", "dataset": "gsm8k", "aug": "PoT", "query": variant.query,
           "original_question": GSM_Q, "response": verdict.response}
    (record,) = export.to_metamathqa([row])
    assert record["type"] == "GSM_PoT" and record["response"].splitlines()[-1] == f"{ANSWER_PREFIX}31"
    assert record["query"].endswith(pot.POT_TRIGGER)
