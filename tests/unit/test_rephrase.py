"""Rephrasing: prompt shape and parsing of recorded model rewrites."""

import json
from pathlib import Path

import pytest

from metamath_ray.augment import rephrase
from metamath_ray.augment.base import Rejection, Variant

FIXTURES = json.loads((Path(__file__).parents[1] / "fixtures" / "augment" / "rephrase_rewrites.json").read_text())


@pytest.mark.parametrize("case", FIXTURES, ids=[f"{c['seed']['seed_id']}:{c['outcome']}:{i}" for i, c in enumerate(FIXTURES)])
def test_recorded_rewrites(case):
    out = rephrase.parse_rewrite(case["seed"], case["completion"], variant=3)
    if case["outcome"] == "accepted":
        assert isinstance(out, Variant), out
        assert (out.aug, out.variant, out.query) == ("Rephrasing", 3, case["query"])
        assert out.expected == case["seed"]["answer"]
        assert out.original_question == case["seed"]["question"]
    else:
        assert isinstance(out, Rejection)
        assert out.reason == case["outcome"], out


@pytest.mark.parametrize("dataset", ["gsm8k", "math"])
def test_prompt_ends_where_the_rephrasing_starts(dataset):
    seed = {"seed_id": "s", "dataset": dataset, "answer": "4", "question": "  What is $2+2$?\n"}
    prompt = rephrase.rewrite_prompt(seed)
    assert prompt.endswith("\n\nQuestion: What is $2+2$?\nRephrased:")
    assert prompt.count("Rephrased:") == len(rephrase._SHOTS[dataset]) + 1
    # No example may contain a stop string, or the model would be cut inside an example's pattern.
    body = prompt[: -len("Rephrased:")]
    for q, r in rephrase._SHOTS[dataset]:
        assert not any(stop in r for stop in rephrase.STOP)
    assert body.count("\nQuestion:") == len(rephrase._SHOTS[dataset]) + 1


@pytest.mark.parametrize(
    "raw, clean",
    [(" Rephrased question: How many apples are left?", "How many apples are left?"),
     ("'How many apples are left?'", "How many apples are left?"),
     (" How many apples are left?\nRephrased: Another one", "How many apples are left?"),
     (" How many\napples are left?\n\n\n\nQuestion", "How many\napples are left?")],
)
def test_clean_rewrite(raw, clean):
    assert rephrase.clean_rewrite(raw) == clean


def test_question_that_already_states_the_answer_number_is_not_a_leak():
    seed = {"seed_id": "s", "dataset": "gsm8k", "answer": "4",
            "question": "Ann has 4 pens and gives 2 away, then buys 2 more. How many pens does she have?"}
    out = rephrase.parse_rewrite(seed, " After giving away 2 of her 4 pens and buying 2 more, how many pens does Ann own?", 0)
    assert isinstance(out, Variant)
