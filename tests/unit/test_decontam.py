"""n-gram decontamination: sizes per text length, template sentences and boilerplate ignored."""

import json
from collections import Counter
from importlib import resources
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


@pytest.fixture(scope="module")
def bundled_refs(tmp_path_factory):
    from metamath_ray.pipeline.finalize import _reference_paths

    return decontam.load_reference_texts(_reference_paths(["bundled:eval"], str(tmp_path_factory.mktemp("refs"))))


def test_bundled_references_are_the_full_public_test_sets(bundled_refs):
    per_set = Counter(ref_id.split(":")[0] for ref_id, _ in bundled_refs)
    assert per_set == {"decontam/gsm8k_test.jsonl.gz": 1319, "decontam/math_test.jsonl.gz": 5000,
                       "decontam/gsm8k_backward_test.jsonl.gz": 1270, "decontam/svamp.jsonl.gz": 1000}
    if (SHARED / "math" / "test500.jsonl").exists():  # MATH500 is inside the MATH test set
        ids = {ref_id.split(":", 1)[1] for ref_id, _ in bundled_refs}
        test500 = [json.loads(line)["unique_id"] for line in (SHARED / "math" / "test500.jsonl").open()]
        assert set(test500) <= ids


def test_default_config_drops_test_questions_beyond_the_old_slices_and_counts_them_per_set():
    """Rows 1000 (GSM8K test) and 900 (SVAMP) were outside the 20-row slices decontamination used to read."""
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.pipeline.finalize import _decontam_by_reference, clean_accepted

    refs = dict(decontam.load_reference_texts([
        str(resources.files("metamath_ray") / "data" / "decontam" / name)
        for name in ("gsm8k_test.jsonl.gz", "svamp.jsonl.gz")]))
    gsm8k_q = refs["decontam/gsm8k_test.jsonl.gz:1000"]
    svamp_q = refs["decontam/svamp.jsonl.gz:900"]

    def row(i, query):
        return {"id": f"r{i}", "seed_id": f"s{i}", "dataset": "gsm8k", "aug": "Rephrasing", "variant": 0,
                "query": query, "response": f"Step {i}.\nThe answer is: {i}", "accepted": True,
                "reject_reason": None, "reject_detail": None}

    rows = [row(1, gsm8k_q), row(2, svamp_q), row(3, "A farmer plants 17 rows of beans with 9 plants in each row. "
                                                      "How many bean plants does the farmer have altogether?")]
    cfg = AugmentConfig(dedup={"enabled": False})
    kept, dropped = clean_accepted(rows, cfg)
    assert [r["id"] for r in kept] == ["r3"]
    assert all(r["reject_reason"] == "contaminated" for r in dropped)
    assert _decontam_by_reference(dropped) == {"decontam/gsm8k_test.jsonl.gz": 1, "decontam/svamp.jsonl.gz": 1}
