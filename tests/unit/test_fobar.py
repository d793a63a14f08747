"""FOBAR masking and assembly, plus fidelity against MetaMath's public GSM8K-Backward file."""

import json
from pathlib import Path

import pytest

from metamath_ray.augment import fobar, numbers

SUFFIX_GSM = "If we know the answer to the above question is {a}, what is the value of unknown variable x?"
SUFFIX_MATH = "If we know the answer to the above question is {a}, what is the value of unknown variable X?"


@pytest.mark.parametrize(
    "question, answer, masked, value",
    [
        ("James buys 5 packs of beef that are 4 pounds each. The price of beef is $5.50 per pound. How much did he pay?",
         "110", "James buys x packs of beef that are 4 pounds each. The price of beef is $5.50 per pound. How much did he pay?", "5"),
        ("James buys 5 packs of beef that are 4 pounds each. The price of beef is $5.50 per pound. How much did he pay?",
         "110", "James buys 5 packs of beef that are 4 pounds each. The price of beef is $x per pound. How much did he pay?", "5.50"),
        ("Josh buys a house for $80,000 and then puts in $50,000 in repairs. How much profit did he make?",
         "70000", "Josh buys a house for $x and then puts in $50,000 in repairs. How much profit did he make?", "80000"),
        ("In a dance class of 20 students, 20% enrolled in contemporary dance. How many are left?",
         "16", "In a dance class of 20 students, x% enrolled in contemporary dance. How many are left?", "20"),
        ("A book costs $5. She buys two books. How much does she spend?",
         "10", "A book costs $x. She buys two books. How much does she spend?", "5"),
        ("A book costs $5. She buys two books. How much does she spend?",
         "10", "A book costs $5. She buys x books. How much does she spend?", "2"),
        ("Jasper has half as many tubes as Maria, who has 12. How many tubes does Jasper have?",
         "6", "Jasper has x% as many tubes as Maria, who has 12. How many tubes does Jasper have?", "50"),
        ("She gave out 1,360 meals on Friday. How many meals are left if 200 remain to be handed out?",
         "1560", "She gave out x meals on Friday. How many meals are left if 200 remain to be handed out?", "1360"),
        ("Zaid spends 1/4 of his salary on rent. He earns 6000 per month. How much is left?",
         "4500", "Zaid spends x of his salary on rent. He earns 6000 per month. How much is left?", "1/4"),
    ],
)
def test_gsm8k_mask_keeps_dollar_percent_and_punctuation(question, answer, masked, value):
    questions = fobar.backward_questions(question, answer, "gsm8k")
    assert f"{masked}\n{SUFFIX_GSM.format(a=answer)}" in questions
    seed = {"seed_id": "gsm8k/train/1", "dataset": "gsm8k", "question": question, "answer": answer}
    by_query = {v.query: v for v in fobar.variants(seed)}
    assert by_query[f"{masked}\n{SUFFIX_GSM.format(a=answer)}"].expected == value


@pytest.mark.parametrize(
    "question, not_masked",
    [
        ("On the 5th day she walked 3 miles. How far did she walk?", "5th"),
        ("The train leaves at 3:00 and takes 2 hours. When does it arrive?", "3:00"),
        ("Each box holds 3-5 apples and there are 4 boxes. What is the minimum?", "3-5"),
        ("No one came to the party of 12 guests who were invited. How many stayed home?", "No one"),
        ("Kris plays for half an hour every day for 2 weeks. How many hours is that?", "half an hour"),
    ],
)
def test_gsm8k_non_quantities_are_left_alone(question, not_masked):
    for q in fobar.backward_questions(question, "1", "gsm8k"):
        assert not_masked in q


def test_every_maskable_number_gives_its_own_question_in_reading_order():
    q = "Tom has 3 red balls and four blue balls. He loses 2. How many are left?"
    out = fobar.backward_questions(q, "5", "gsm8k")
    assert [line.split("\n")[0] for line in out] == [
        "Tom has x red balls and four blue balls. He loses 2. How many are left?",
        "Tom has 3 red balls and x blue balls. He loses 2. How many are left?",
        "Tom has 3 red balls and four blue balls. He loses x. How many are left?",
    ]
    seed = {"seed_id": "s", "dataset": "gsm8k", "question": q, "answer": "5"}
    vs = fobar.variants(seed)
    assert [(v.variant, v.expected, v.aug) for v in vs] == [(0, "3", "FOBAR"), (1, "4", "FOBAR"), (2, "2", "FOBAR")]
    assert all(v.original_question == q for v in vs)


@pytest.mark.parametrize(
    "question, answer, masked, value",
    [
        ("What is the last digit of the decimal expansion of $\\frac{1}{2^{10}}$?", "5",
         "What is the last digit of the decimal expansion of $\\frac{1}{2^{X}}$?", "10"),
        ("Given that $a$ is a multiple of $456$, find the greatest common divisor of $3a^3+a^2+4a+57$ and $a$.", "57",
         "Given that $a$ is a multiple of $X$, find the greatest common divisor of $3a^3+a^2+4a+57$ and $a$.", "456"),
        ("The second hand on the clock is 6 cm long. How far does it travel in 30 minutes? Express your answer in terms of $\\pi$.",
         "60\\pi", "The second hand on the clock is X cm long. How far does it travel in 30 minutes? Express your answer in terms of $\\pi$.", "6"),
        ("Compute $\\#(\\#(\\#50))$ where $\\#N = .5(N) + 1$.", "8",
         "Compute $\\#(\\#(\\#50))$ where $\\#N = X(N) + 1$.", "0.5"),
    ],
)
def test_math_masks_as_capital_x_inside_latex(question, answer, masked, value):
    out = fobar.backward_questions(question, answer, "math")
    assert f"{masked}\n{SUFFIX_MATH.format(a=answer)}" in out
    seed = {"seed_id": "math/train/a/1", "dataset": "math", "question": question, "answer": answer}
    assert {v.query: v.expected for v in fobar.variants(seed)}[f"{masked}\n{SUFFIX_MATH.format(a=answer)}"] == value


@pytest.mark.parametrize(
    "question, forbidden",
    [
        ("Find $a_1 + a_{10}$ if $a_n = 2n$.", ["a_X", "a_{X}"]),
        ("Convert $10101_3$ to a base 10 integer.", ["X_3", "10101_X"]),
        ("Simplify $\\frac12 + 2x$.", ["\\fracX", "Xx"]),
        ("What is the area?\n[asy]\ndraw((0,0)--(4,0));\nlabel(\"4\",(2,0),S);\n[/asy]", ["(X,", "\"X\""]),
    ],
)
def test_math_indices_bases_glued_digits_and_figures_are_not_masked(question, forbidden):
    for q in fobar.backward_questions(question, "1", "math"):
        assert not any(f in q for f in forbidden), q


@pytest.mark.parametrize(
    "question, dataset",
    [("He sells boards that are 2 x 4 inches for $3. How much for 5?", "gsm8k"),
     ("Let $X = 3$. What is $X^2 + 1$?", "math"),
     ("", "gsm8k"),
     ("How are you today?", "gsm8k")],
)
def test_no_question_when_the_unknown_is_taken_or_nothing_is_maskable(question, dataset):
    assert fobar.backward_questions(question, "12", dataset) == []
    assert fobar.variants({"seed_id": "s", "dataset": dataset, "question": question, "answer": "12"}) == []


def test_gsm8k_answer_commas_are_removed_from_the_sentence():
    out = fobar.backward_questions("He earns $5 a day. How much in 400 days?", "2,000", "gsm8k")
    assert out[0].endswith("is 2000, what is the value of unknown variable x?")


def test_masked_span_is_recorded_for_the_report():
    seed = {"seed_id": "s", "dataset": "gsm8k", "question": "Ann has $80,000.", "answer": "1"}
    (v,) = fobar.variants(seed)
    assert v.meta["masked_text"] == "80,000"
    start, end = v.meta["masked_span"]
    assert seed["question"][start:end] == "80,000"


@pytest.mark.parametrize("text, expected", [("1,360 and -4 and 2.5 and 1/2", ["1360", "-4", "2.5", "1/2"])])
def test_numbers_in(text, expected):
    assert numbers.numbers_in(text) == expected


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_fidelity_against_public_gsm8k_backward():
    """Our masks reproduce MetaMath's GSM8K-Backward questions (867 FOBAR rows of the file).

    Measured: 817/867 (94.2%) verbatim; 856/867 (98.7%) when their dropped currency sign
    ("$5." -> "x.") is ignored. The rest are deliberate: no "x% an hour", no masks in
    questions that already use "x" ("a 2 x 4 board").
    """
    backward = SHARED / "gsm8k_backward" / "test.jsonl"
    gsm_test = SHARED / "gsm8k" / "test.jsonl"
    if not backward.exists():
        pytest.skip("shared benchmark data not present")
    gold = {}
    for line in gsm_test.open():
        row = json.loads(line)
        gold[row["question"]] = row["answer"].split("####")[-1].strip()
    total = matched = 0
    for line in backward.open():
        row = json.loads(line)
        if "\nIf we know the answer of the above question" not in row["question"]:
            continue  # the self-verification rows of the file
        total += 1
        theirs = row["question"].replace("answer of the above", "answer to the above")
        ours = fobar.backward_questions(row["original_question"], gold[row["original_question"]], "gsm8k")
        matched += theirs in ours
    assert total == 867
    assert matched / total >= 0.94


RESPONSES = json.loads((Path(__file__).parents[1] / "fixtures" / "augment" / "fobar_responses.json").read_text())


@pytest.mark.parametrize("case", RESPONSES, ids=[f"{c['seed']['seed_id']}#{c['variant']}:{c['accepted']}" for c in RESPONSES])
def test_recorded_backward_chains_are_accepted_only_when_x_is_the_masked_value(case):
    """Acceptance as the pipeline checks it: the final value of x against the variant's expected."""
    from metamath_ray.answers import extract_answer, is_equivalent

    variant = fobar.variants(case["seed"])[case["variant"]]
    predicted = extract_answer(case["response"])
    assert (predicted is not None and is_equivalent(predicted, variant.expected)) is case["accepted"]
