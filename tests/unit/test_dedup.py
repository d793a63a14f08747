"""Exact and near-duplicate removal: deterministic, keeps the smallest id, catches small edits."""

import random

import pytest

from metamath_ray.augment import dedup

BASE = ("Mark is buying asphalt to pave a new section of road. The road will be 2000 feet long and 20 feet wide. "
        "Each truckload of asphalt will cover 800 square feet of road. If each truckload costs $75, and there's "
        "a 20% sales tax, how much will Mark need to pay for asphalt?")
OTHER = ("Sue works in a factory and every 30 minutes, a machine she oversees produces 30 cans of soda. "
         "How many cans of soda can one machine produce in 8 hours?")


def _row(rid, query, response="He pays 4500.\nThe answer is: 4500"):
    return {"id": rid, "query": query, "response": response}


@pytest.mark.parametrize(
    "variant, reason",
    [(BASE, "duplicate_exact"),
     (BASE.upper(), "duplicate_exact"),
     (BASE.replace(", and", " and").replace("?", " ?"), "duplicate_exact"),
     (BASE.replace("Mark", "Mark", 1).replace("new section", "fresh section"), "duplicate_near"),
     (BASE.replace("how much will Mark need to pay", "how much does Mark have to pay"), "duplicate_near")],
)
def test_duplicates_of_the_first_row_are_dropped_with_a_reason(variant, reason):
    kept, dropped = dedup.dedup_rows([_row("b", variant), _row("a", BASE), _row("c", OTHER)],
                                     key="query", threshold=0.7, num_perm=128, ngram=3)
    assert [r["id"] for r in kept] == ["a", "c"]
    assert [(r["id"], r["reject_reason"], r["reject_detail"], r["accepted"]) for r in dropped] == [
        ("b", reason, "duplicate of a", False)]


def test_result_does_not_depend_on_input_order():
    rows = [_row(f"{i:03d}", BASE if i % 3 == 0 else f"{OTHER} Question number {i} of the {i * 7} drills.")
            for i in range(60)]
    outcomes = set()
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        kept, dropped = dedup.dedup_rows(shuffled, key="query", threshold=0.9, num_perm=64, ngram=3)
        outcomes.add((tuple(r["id"] for r in kept), tuple((r["id"], r["reject_reason"]) for r in dropped)))
    assert len(outcomes) == 1
    (kept_ids, dropped_pairs), = outcomes
    assert "000" in kept_ids and ("003", "duplicate_exact") in dropped_pairs


def test_tuple_key_compares_query_and_response_together():
    rows = [_row("a", BASE, "First way.\nThe answer is: 4500"),
            _row("b", BASE, "A completely different chain of thought reaching it.\nThe answer is: 4500")]
    kept, _ = dedup.dedup_rows(rows, key="query", threshold=0.8, num_perm=64, ngram=3)
    assert [r["id"] for r in kept] == ["a"]
    kept, _ = dedup.dedup_rows(rows, key=("query", "response"), threshold=0.95, num_perm=64, ngram=3)
    assert [r["id"] for r in kept] == ["a", "b"]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.85, 0.95])
def test_lsh_band_layout_uses_all_permutations_sensibly(threshold):
    bands, rows = dedup.lsh_params(threshold, 128)
    assert bands * rows <= 128
    # The S-curve's midpoint sits near the threshold.
    assert abs((1 / bands) ** (1 / rows) - threshold) < 0.15


def test_unrelated_questions_survive():
    rows = [_row(str(i), q) for i, q in enumerate([BASE, OTHER, "Compute $\\dbinom{8}{4}$.", "Evaluate $\\log_28$."])]
    kept, dropped = dedup.dedup_rows(rows, key="query", threshold=0.8, num_perm=128, ngram=3)
    assert len(kept) == 4 and dropped == []


def test_minhash_estimate_tracks_jaccard():
    hasher = dedup.MinHasher(256, seed=3)
    a = dedup._shingle_hashes(" ".join(f"w{i}" for i in range(100)), 1)
    b = dedup._shingle_hashes(" ".join(f"w{i}" for i in range(50, 150)), 1)  # Jaccard 50/150
    estimate = float((hasher.signature(a) == hasher.signature(b)).mean())
    assert abs(estimate - 1 / 3) < 0.1


@pytest.mark.parametrize("text, norm", [("Héllo,  World! $5.50", "héllo world 5 50"), ("  ", "")])
def test_normalize_text(text, norm):
    assert dedup.normalize_text(text) == norm


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError):
        dedup.dedup_rows([], key="query", threshold=0.0, num_perm=16, ngram=3)
