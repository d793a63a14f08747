import pytest

from metamath_ray.evaluate import metamath_compat as mm
from metamath_ray.evaluate.prompts import (
    build_eval_prompt,
    default_stop,
    fewshot_exemplars,
    fewshot_prefix,
    gsm8k_exemplar_response,
)


def test_default_prompt_is_metamaths_eval_prompt():
    prompt = build_eval_prompt("What is 1+1?", "eval_cot")
    assert prompt.endswith("### Instruction:\nWhat is 1+1?\n\n### Response: Let's think step by step.")
    assert prompt.startswith("Below is an instruction that describes a task.")


def test_gsm8k_exemplar_response_is_metamathqa_style():
    text = gsm8k_exemplar_response("He has 5+13 = <<5+13=18>>18 apples.\n#### 1,018")
    assert text == "He has 5+13 = 18 apples.\nThe answer is: 1018"


@pytest.mark.parametrize("kind", ["numeric", "math"])
def test_fewshot_exemplars_are_scorable(kind):
    for question, response in fewshot_exemplars(kind, 4):
        assert question and mm.math_extract(response)


@pytest.mark.parametrize("kind, shots", [("numeric", 2), ("math", 3)])
def test_fewshot_prompt_ends_with_the_question(kind, shots):
    prefix = fewshot_prefix(kind, shots)
    prompt = build_eval_prompt("Final question?", "fewshot", prefix)
    assert prompt.startswith(prefix)
    assert prompt.count("### Instruction:") == shots + 1
    assert prompt.endswith("Final question?\n\n### Response: Let's think step by step.")
    # a model copying the format stops before writing the next exemplar's header
    assert any(stop in "\n\n### Instruction:" for stop in default_stop())


def test_too_many_shots():
    with pytest.raises(ValueError):
        fewshot_exemplars("numeric", 1000)
