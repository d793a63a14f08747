"""The backward few-shot examples are right, and FOBAR / SV questions are solved with them.

Every example is checked on its own: its equation re-solved with sympy gives exactly the masked
number, every plain arithmetic step of its solution holds (fractions), its question is a FOBAR /
SV question of its source training row, and the pipeline's judge accepts the solution as is.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication,
    parse_expr,
    rationalize,
    standard_transformations,
)

from metamath_ray.answers import extract_answer, is_equivalent
from metamath_ray.augment import backward, cot, fobar, numbers, sv
from metamath_ray.augment.base import Variant
from metamath_ray.augment.registry import augmentation

ALL = [(form, dataset, e) for (form, dataset), examples in backward.EXAMPLES.items() for e in examples]
IDS = [f"{form}-{e.source}" for form, _, e in ALL]
DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))


def _seed(example: backward.BackwardExample, dataset: str) -> dict:
    return {"seed_id": example.source, "dataset": dataset, "question": example.original_question,
            "answer": example.original_answer}


@pytest.mark.parametrize("form, dataset, example", ALL, ids=IDS)
def test_equation_has_exactly_the_masked_number_as_solution(form, dataset, example):
    x = sympy.Symbol("x")
    lhs, rhs = example.equation.split("=")
    solutions = sympy.solve(sympy.sympify(lhs) - sympy.sympify(rhs), x)
    positive = {sympy.nsimplify(s) for s in solutions if s.is_real and s > 0}  # masked numbers are positive
    assert positive == {sympy.Rational(example.x)}


# A run of arithmetic, x and "=" (a chain "a = b = c"). LaTeX's \frac{a}{b}, \cdot, \times and ^ are
# spelt out first; a run right after a LaTeX command ("3\oplus X = ...") is left alone, since its left
# side is cut off.
_CHAIN = re.compile(r"[\dxX+\-*/().^ ]*=[\dxX+\-*/().^ =]*")
_PARSE = standard_transformations + (implicit_multiplication, convert_xor, rationalize)


def _equality_chains(solution: str) -> list[list[str]]:
    text = solution.replace("\\cdot", "*").replace("\\times", "*").replace("%", "").replace("$", " ")
    text = re.sub(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", r"((\1)/(\2))", text)
    text = re.sub(r"\.(?=\s|$)", " ;", text)  # a sentence's full stop ends a chain
    chains = []
    for m in _CHAIN.finditer(text):
        if re.search(r"(\\[A-Za-z]+|[{}])$", text[: m.start()].rstrip()):
            continue
        parts = [p.strip() for p in m.group(0).split("=")]
        if all(parts) and any(re.search(r"\d", p) for p in parts):
            chains.append(parts)
    return chains


def _value_at(expression: str, x: str) -> sympy.Expr:
    """Exact value (floats read as rationals) with the unknown, x or X, set to `x`."""
    symbol = sympy.Symbol("x")
    return parse_expr(expression.replace("X", "x"), transformations=_PARSE).subs(symbol, sympy.Rational(x))


@pytest.mark.parametrize("form, dataset, example", ALL, ids=IDS)
def test_every_equality_in_the_solution_holds_at_the_masked_number(form, dataset, example):
    chains = _equality_chains(example.solution)
    assert len(chains) >= 2, "too few checkable steps; write them as a = b"
    for parts in chains:
        values = {_value_at(p, example.x) for p in parts}
        assert len(values) == 1, f"{' = '.join(parts)} does not hold at x = {example.x} ({example.source})"


def test_the_step_checker_catches_wrong_steps():
    chains = _equality_chains("so 5 * 3 = 16 petals, $\\frac{756}{21} = 36$ and 8x + 15 = 63.")
    assert chains == [["5 * 3", "16"], ["((756)/(21))", "36"], ["8x + 15", "63"]]
    assert _value_at("5 * 3", "6") != _value_at("16", "6")
    assert _value_at("8x + 15", "7") != _value_at("63", "7") and _value_at("8x + 15", "6") == 63
    assert _value_at("45 / 0.3", "1") == 150  # exact: 0.3 is 3/10, not a float


@pytest.mark.parametrize("form, dataset, example", ALL, ids=IDS)
def test_solution_ends_with_the_value_of_x_and_metamathqa_answer_line(form, dataset, example):
    var = numbers.unknown_var(dataset)
    assert example.solution.endswith(f"\nThe value of {var} is {example.x}.\nThe answer is: {example.x}")
    verdict = cot.judge(example.solution, example.x, dataset)
    assert verdict.accepted and verdict.response == example.solution  # what export would write, unchanged
    assert verdict.response.splitlines()[-1] == f"The answer is: {example.x}"


@pytest.mark.parametrize("dataset, example", [(d, e) for f, d, e in ALL if f == "fobar"],
                         ids=[i for i, (f, _, _) in zip(IDS, ALL) if f == "fobar"])
def test_fobar_example_is_a_fobar_question_of_its_source_row(dataset, example):
    by_query = {v.query: v for v in fobar.variants(_seed(example, dataset))}
    assert example.question in fobar.backward_questions(example.original_question, example.original_answer, dataset)
    assert by_query[example.question].expected == example.x


def _sv_parts(example: backward.BackwardExample, dataset: str):
    """(span, body, asking sentence, statement) of the SV mask the example's question was built from."""
    for span, body, ask in sv._masked_parts(_seed(example, dataset)):
        tail = " " + sv.SUFFIX.format(var=numbers.unknown_var(dataset))
        if span.value == example.x and example.question.startswith(body) and example.question.endswith(tail):
            statement = example.question[len(body):-len(tail)].strip()
            if sv.assemble(body, statement, dataset) == example.question:
                return span, body, ask, statement
    return None


@pytest.mark.parametrize("dataset, example", [(d, e) for f, d, e in ALL if f == "sv"],
                         ids=[i for i, (f, _, _) in zip(IDS, ALL) if f == "sv"])
def test_sv_example_is_an_sv_question_of_its_source_row(dataset, example):
    parts = _sv_parts(example, dataset)
    assert parts is not None, "question is not <masked body> <statement> What is the value of unknown variable x?"
    span, _, ask, statement = parts
    assert sv.check_statement(statement, ask, example.original_answer, span, dataset) is None
    assert sv.parse_rewrite(_seed(example, dataset), statement, _mask_index(example, dataset, span)).query == example.question


def _mask_index(example, dataset, span) -> int:
    return [s for s, _, _ in sv._masked_parts(_seed(example, dataset))].index(span)


def _training_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for i, line in enumerate((DATA / "gsm8k" / "train.jsonl").open(encoding="utf-8")):
        row = json.loads(line)
        rows[f"gsm8k/train.jsonl#{i}"] = (row["question"], row["answer"].split("####")[-1].strip())
    for line in (DATA / "math" / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        rows[row["unique_id"]] = (row["problem"], row["answer"])
    return rows


@pytest.mark.skipif(not (DATA / "gsm8k" / "train.jsonl").exists(), reason="shared benchmark data not present")
def test_sources_are_verbatim_training_rows():
    rows = _training_rows()
    for _, _, example in ALL:
        assert rows[example.source] == (example.original_question, example.original_answer), example.source


def test_no_example_is_an_evaluation_question():
    """Training rows only: the examples never leak a GSM8K / MATH test question into the data."""
    test_files = [DATA / "gsm8k" / "test.jsonl", DATA / "math" / "test.jsonl"]
    if not all(p.exists() for p in test_files):
        pytest.skip("shared benchmark data not present")
    tests = {json.loads(line).get("question") or json.loads(line).get("problem") for p in test_files for line in p.open()}
    assert not [e.source for _, _, e in ALL if e.original_question in tests]


# --- prompts -------------------------------------------------------------------------------------

def _variant(aug: str, dataset: str, query: str) -> Variant:
    return Variant(seed_id="s", dataset=dataset, aug=aug, variant=0, query=query, expected="1", original_question="q")


@pytest.mark.parametrize("aug, form", [("FOBAR", "fobar"), ("SV", "sv")])
@pytest.mark.parametrize("dataset", ["gsm8k", "math"])
def test_backward_augmentations_solve_with_their_own_dataset_examples(aug, form, dataset):
    a = augmentation(aug).solve_prompt(_variant(aug, dataset, "Q1 with x?"))
    b = augmentation(aug).solve_prompt(_variant(aug, dataset, "Q2 with x?"))
    prefix = a[: a.rindex("Question:")]
    assert b.startswith(prefix) and a.endswith("Question: Q1 with x?\nAnswer:")  # one cached prefix per dataset
    own = backward.EXAMPLES[(form, dataset)]
    others = [e for (f, d), ex in backward.EXAMPLES.items() if (f, d) != (form, dataset) for e in ex]
    assert all(e.question in prefix and e.solution in prefix for e in own)
    assert not any(e.question in prefix for e in others)
    assert cot.solve_prompt("Q1 with x?", dataset) != a  # not the forward prompt any more
    assert augmentation(aug).prompt_version == backward.PROMPT_VERSION == "backward-v1"


@pytest.mark.parametrize("aug", ["AnsAug", "Rephrasing"])
def test_forward_augmentations_keep_the_forward_prompt(aug):
    variant = _variant(aug, "gsm8k", "How many?")
    assert augmentation(aug).solve_prompt(variant) == cot.solve_prompt("How many?", "gsm8k")
    assert augmentation(aug).prompt_version == cot.PROMPT_VERSION


def test_backward_prompt_rejects_unknown_dataset_or_form():
    with pytest.raises(ValueError):
        backward.solve_prompt("Q", "svamp", "fobar")
    with pytest.raises(ValueError):
        backward.solve_prompt("Q", "gsm8k", "forward")


def test_solve_rows_record_the_backward_prompt_version():
    """Rows judged by the pipeline carry `<run version>/backward-v1` for FOBAR and SV."""
    from metamath_ray.pipeline.augment import judge_rows

    row = {"chunk": 0, "seed_id": "s", "dataset": "gsm8k", "aug": "FOBAR", "variant": 0, "sample_idx": 0, "round": 0,
           "query": "q", "original_question": "q", "expected": "6",
           "generated_text": GSM8K_SOLUTION}
    out = judge_rows([row, {**row, "aug": "SV"}, {**row, "aug": "AnsAug"}], "m", "k", "v1")
    assert [r["prompt_version"] for r in out] == ["v1/backward-v1", "v1/backward-v1", "v1/cot-v1"]
    assert all(r["accepted"] for r in out)


GSM8K_SOLUTION = backward.GSM8K_FOBAR[0].solution


# --- judging "The value of x is N." ---------------------------------------------------------------

@pytest.mark.parametrize(
    "response, extracted",
    [
        ("So 8x = 48 and x = 6.\nThe value of x is 6.", "6"),
        ("We get x = 6.\nThe value of x is 6.\nThe answer is: 6", "6"),
        ("Solving gives 2X = 3.\nThe value of X is \\frac{3}{2}.", "\\frac{3}{2}"),
        ("Therefore, the value of unknown variable x is 12.", "12"),
        ("Hence the value of the unknown variable x is 0.5.", "0.5"),
        ("So $X = -4$.\nThe value of $X$ is $-4$.", "-4"),
        ("The value of x is 1,200.", "1,200"),
        ("The value of x is 40%.", "40%"),
    ],
)
def test_value_of_x_line_is_extracted(response, extracted):
    assert extract_answer(response) == extracted


@pytest.mark.parametrize(
    "response, expected, accepted, reason",
    [
        ("8x + 15 = 63, so x = 6.\nThe value of x is 6.", "6", True, None),
        ("8x + 15 = 63, so x = 6.\nThe value of x is 6.\nThe answer is: 6\nQuestion: next", "6", True, None),
        ("0.3x = 45, so x = 150.\nThe value of x is 150.", "150", True, None),
        ("The total is 1200 dollars.\nThe value of x is 1,200.", "1200", True, None),
        ("8x + 15 = 63, so x = 7.\nThe value of x is 7.", "6", False, "wrong_answer"),
        ("2X = 3.\nThe value of X is \\frac{3}{2}.", "1.5", True, None),
    ],
)
def test_judge_accepts_value_of_x_solutions_in_metamathqa_format(response, expected, accepted, reason):
    dataset = "math" if "X" in response else "gsm8k"
    verdict = cot.judge(response, expected, dataset)
    assert (verdict.accepted, verdict.reject_reason) == (accepted, reason)
    if accepted:
        lines = verdict.response.splitlines()
        assert re.fullmatch(r"The value of [xX] is .+\.", lines[-2]) and lines[-1] == f"The answer is: {verdict.predicted}"
        assert is_equivalent(verdict.predicted, expected)
