"""n-gram decontamination: sizes per text length, template sentences and boilerplate ignored."""

import json
from pathlib import Path

import pytest

from metamath_ray.augment import decontam

TEST_Q = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
          "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
          "How much in dollars does she make every day at the farmers' market?")
BACKWARD_Q = ("Josh decides to try flipping a house.  He buys a house for $x and then puts in $50,000 in repairs.  "
              "This increased the value of the house by 150%.  How much profit did he make?\n"
              "If we know the answer of the above question is 70000, what is the value of unknown variable x?")
SHORT_REF = "Compute $\\dbinom{16}{5}$."
REFS = [("gsm8k_test:0", TEST_Q), ("backward:0", BACKWARD_Q), ("math_test:1", SHORT_REF)]


@pytest.fixture(scope="module")
def index():
    return decontam.NgramIndex(REFS, sizes=(8, 13), max_ref_df=10)


@pytest.mark.parametrize(
    "text, ref",
    [(TEST_Q, "gsm8k_test:0"),
     ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning, how many are left?", "gsm8k_test:0"),
     ("What is the total amount of money Janet makes if she sells the remainder at the farmers' market daily for $2 per fresh duck egg?", "gsm8k_test:0"),
     ("Josh buys a house for $80,000 and then puts in $50,000 in repairs. This increased the value of the house by 150%. What is his profit?", "backward:0"),
     ("compute   $\\binom{16}{5}$", None),
     ("Compute $\\dbinom{16}{5}$.", "math_test:1")],
)
def test_match(index, text, ref):
    assert index.match(text) == ref


@pytest.mark.parametrize(
    "text",
    ["Tom buys 3 apples. How much did he pay?\nIf we know the answer to the above question is 6, what is the value of unknown variable x?",
     "Sarah has x marbles. She has 12 marbles left after giving away 5. What is the value of unknown variable x?",
     "Janet has a dog and she walks it every day to the park near her house."],
)
def test_template_sentences_and_unrelated_text_do_not_match(index, text):
    assert index.match(text) is None


def test_own_size_is_the_largest_that_fits(index):
    assert [index.own_size(n) for n in (3, 8, 12, 13, 40)] == [0, 8, 8, 13, 13]
    # A 10-word candidate is compared with 8-grams; the long reference only at 13 words or more.
    assert index.match_detail("she eats three for breakfast every morning and bakes muffins") == ("gsm8k_test:0", 8)


def test_boilerplate_shared_by_many_references_is_ignored():
    tail = "Express your answer as a decimal to the nearest tenth of a unit."
    refs = [(f"r{i}", f"Problem {i} about shape {i * 3} with side {i + 2}. {tail}") for i in range(12)]
    strict = decontam.NgramIndex(refs, sizes=(8,), max_ref_df=100)
    loose = decontam.NgramIndex(refs, sizes=(8,), max_ref_df=10)
    candidate = f"A new train question about circles. {tail}"
    assert strict.match(candidate) is not None
    assert loose.match(candidate) is None
    assert loose.dropped_boilerplate[8] > 0


def test_decontaminate_splits_rows_and_names_the_field(index):
    rows = [{"id": "1", "query": "Tom has 3 apples. How many?", "response": "He has 3.\nThe answer is: 3"},
            {"id": "2", "query": "Something new about 7 pears.", "response": "Restating: " + TEST_Q},
            {"id": "3", "query": TEST_Q, "response": "x"}]
    kept, dropped = decontam.decontaminate(rows, index, fields=("query", "response"))
    assert [r["id"] for r in kept] == ["1"]
    assert [(r["id"], r["reject_reason"], r["accepted"]) for r in dropped] == [
        ("2", "contaminated", False), ("3", "contaminated", False)]
    assert dropped[0]["reject_detail"].startswith("response shares a 13-gram with gsm8k_test:0")


def test_load_reference_texts_reads_each_schema(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "math").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": "Q1?", "answer": "#### 1"}) + "\n\n")
    (tmp_path / "math" / "test.jsonl").write_text(json.dumps({"problem": "P?", "unique_id": "test/algebra/1.json"}) + "\n")
    (tmp_path / "svamp.json").write_text(json.dumps([{"Body": "Tom has 3.", "Question": "How many?"}]))
    refs = decontam.load_reference_texts([str(tmp_path / "gsm8k" / "test.jsonl"), str(tmp_path / "math" / "test.jsonl"),
                                          str(tmp_path / "svamp.json")])
    assert refs == [("gsm8k/test.jsonl:0", "Q1?"), ("math/test.jsonl:test/algebra/1.json", "P?"),
                    (f"{tmp_path.name}/svamp.json:0", "Tom has 3. How many?")]


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_real_evaluation_sets_flag_themselves_and_spare_gsm8k_train():
    paths = [SHARED / "gsm8k" / "test.jsonl", SHARED / "math" / "test.jsonl", SHARED / "gsm8k_backward" / "test.jsonl"]
    if not all(p.exists() for p in paths):
        pytest.skip("shared benchmark data not present")
    index = decontam.NgramIndex(decontam.load_reference_texts([str(p) for p in paths]), sizes=(8, 13))
    test500 = [json.loads(line)["problem"] for line in (SHARED / "math" / "test500.jsonl").open()][:100]
    assert all(index.match(q) for q in test500)
    train = [json.loads(line)["question"] for line in (SHARED / "gsm8k" / "train.jsonl").open()][:1500]
    assert sum(index.match(q) is not None for q in train) <= 3
