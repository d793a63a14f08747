"""SV: splitting the question, rewrite requests, and parsing recorded model statements."""

import json
from pathlib import Path

import pytest

from metamath_ray.augment import sv
from metamath_ray.augment.base import Rejection, Variant

FIXTURES = json.loads((Path(__file__).parents[1] / "fixtures" / "augment" / "sv_rewrites.json").read_text())


@pytest.mark.parametrize("case", FIXTURES, ids=[f"{c['seed']['seed_id']}#{c['variant']}:{c['outcome']}" for c in FIXTURES])
def test_recorded_statements(case):
    out = sv.parse_rewrite(case["seed"], case["completion"], case["variant"])
    if case["outcome"] == "accepted":
        assert isinstance(out, Variant), out
        assert out.aug == "SV"
        assert out.query == case["query"]
        assert out.expected == case["expected"]
        assert out.original_question == case["seed"]["question"]
        assert out.variant == case["variant"]
    else:
        assert isinstance(out, Rejection)
        assert out.reason == case["outcome"], out


@pytest.mark.parametrize(
    "text, dataset, body, ask",
    [
        ("James buys x packs of beef that are 4 pounds each. The price of beef is $5.50 per pound. How much did he pay?",
         "gsm8k", "James buys x packs of beef that are 4 pounds each. The price of beef is $5.50 per pound.",
         "How much did he pay?"),
        ("Mr. Lee has 3 cats.  Calculate the number of legs they have.", "gsm8k",
         "Mr. Lee has 3 cats.", "Calculate the number of legs they have."),
        ("Let $x$ be real, $x > 1.$  Compute $\\sum_{n=0}^X 2^n$. Express your answer as a common fraction.", "math",
         "Let $x$ be real, $x > 1.$", "Compute $\\sum_{n=0}^X 2^n$."),
        ("The side is X cm. What is the area? Give your answer in square cm.", "math",
         "The side is X cm.", "What is the area?"),
        ("What is the area of the square?\n\n[asy]\ndraw((0,0)--(X,0));\nlabel(\"3.5\",(1,0),S);\n[/asy]", "math",
         "[asy]\ndraw((0,0)--(X,0));\nlabel(\"3.5\",(1,0),S);\n[/asy]", "What is the area of the square?"),
        ("How many three-digit perfect cubes are divisible by $9?$", "math", "",
         "How many three-digit perfect cubes are divisible by $9?$"),
    ],
)
def test_split_question(text, dataset, body, ask):
    assert sv.split_question(text, dataset) == (body, ask)


def test_requests_follow_fobar_mask_order_and_end_at_the_statement():
    seed = FIXTURES[0]["seed"]
    requests = sv.rewrite_requests(seed)
    assert [i for i, _ in requests] == [0, 1, 2]
    for _, prompt in requests:
        assert prompt.endswith("Question: How much did he pay? Answer: 110\nStatement:")
        assert prompt.count("Statement:") == len(sv._SHOTS["gsm8k"]) + 1
    # The stop string ends the statement where a base model would start the next example.
    assert all(stop in "\n\nQuestion:" for stop in sv.STOP)


def test_mask_inside_the_asking_sentence_is_passed_to_the_model():
    seed = {"seed_id": "s", "dataset": "gsm8k", "answer": "31",
            "question": "A farmer has 51 cows. If he sells 20 cows, how many cows does he have left?"}
    (_, first), (_, second) = sv.rewrite_requests(seed)
    assert first.endswith("Question: If he sells 20 cows, how many cows does he have left? Answer: 31\nStatement:")
    assert second.endswith("Question: If he sells x cows, how many cows does he have left? Answer: 31\nStatement:")


def test_math_prompt_uses_capital_x_and_latex_answer():
    seed = {"seed_id": "m", "dataset": "math", "answer": "\\frac{3}{8}",
            "question": "A bag has 3 red marbles and 5 blue marbles. What is the probability of drawing a red marble?"}
    requests = sv.rewrite_requests(seed)
    assert len(requests) == 2
    assert requests[0][1].endswith("Answer: \\frac{3}{8}\nStatement:")


@pytest.mark.parametrize("variant", [-1, 3, 99])
def test_unknown_variant_is_a_rejection_not_a_crash(variant):
    out = sv.parse_rewrite(FIXTURES[0]["seed"], "He paid $110.", variant)
    assert isinstance(out, Rejection) and out.reason == "unknown_variant"


@pytest.mark.parametrize(
    "statement, answer, dataset, expected",
    [("He paid $110.", "110", "gsm8k", True),
     ("He paid one hundred and ten dollars.", "110", "gsm8k", False),
     ("She has twelve stickers left.", "12", "gsm8k", True),
     ("The total is 1,360 meals.", "1360", "gsm8k", True),
     ("The center is $(3, -1)$.", "(3,-1)", "math", True),
     ("The value is $\\frac{1}{2}$.", "0.5", "math", True),
     ("The value is $\\frac{1}{3}$.", "0.5", "math", False)],
)
def test_states_answer(statement, answer, dataset, expected):
    assert sv.states_answer(statement, answer, dataset) is expected


def test_no_requests_without_answer_or_when_x_is_taken():
    assert sv.rewrite_requests({"seed_id": "s", "dataset": "gsm8k", "answer": "", "question": "He has 3. How many?"}) == []
    assert sv.rewrite_requests({"seed_id": "s", "dataset": "gsm8k", "answer": "8",
                                "question": "A 2 x 4 board costs $3. How much for 5?"}) == []
