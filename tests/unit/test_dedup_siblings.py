"""Dedup keeps distinct backward questions: FOBAR / SV siblings of one seed mask different numbers,
so they ask different things however alike they read; real copies are still dropped."""

from __future__ import annotations

import pytest

from metamath_ray.augment import dedup
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.pipeline.finalize import backward_siblings, clean_accepted

QUESTION = ("Jack and his sister go out for lunch at the new sushi place near the train station on a rainy "
            "Saturday afternoon. Jack orders a salmon roll that costs $12, and after looking at the menu for a "
            "long time his sister finally decides on a chicken katsu that costs $10. They share a pot of green "
            "tea that the restaurant gives them for free because it is their first visit, and they both agree "
            "that the food was excellent and that they will come back again soon with their parents. At the "
            "end of the meal Jack pays for both dishes and leaves the waiter a tip of 20% of the bill. "
            "How much does Jack pay in total?")
MASKED = [QUESTION.replace("$12", "$x"), QUESTION.replace("$10", "$x")]
TAIL = " If we know the answer to the above question is 26.4, what is the value of unknown variable x?"


def _row(rid: str, seed: str, aug: str, variant: int, query: str, response: str = "", sample: int = 0) -> dict:
    return {"id": rid, "seed_id": seed, "dataset": "gsm8k", "aug": aug, "variant": variant, "sample_idx": sample,
            "query": query, "response": response or f"Solved {rid}.\nThe answer is: {variant + 10}",
            "accepted": True, "reject_reason": None, "reject_detail": None}


CFG = AugmentConfig(decontam={"enabled": False})


def test_the_two_masked_questions_are_near_duplicates_by_minhash_alone():
    """Why siblings need the rule: without it MinHash at the default 0.85 calls them copies."""
    rows = [_row("a", "s1", "FOBAR", 0, MASKED[0] + TAIL), _row("b", "s1", "FOBAR", 1, MASKED[1] + TAIL)]
    kept, dropped = dedup.dedup_rows(rows, key="query", threshold=0.85)
    assert len(dropped) == 1
    kept, dropped = dedup.dedup_rows(rows, key="query", threshold=0.85, siblings=backward_siblings)
    assert len(kept) == 2 and not dropped


@pytest.mark.parametrize("aug", ["FOBAR", "SV"])
def test_backward_siblings_of_one_seed_are_all_kept(aug):
    rows = [_row("a", "s1", aug, 0, MASKED[0] + TAIL), _row("b", "s1", aug, 1, MASKED[1] + TAIL)]
    kept, dropped = clean_accepted(rows, CFG)
    assert sorted(r["id"] for r in kept) == ["a", "b"] and not dropped


def test_the_same_masked_question_from_two_seeds_is_still_a_duplicate():
    rows = [_row("a", "s1", "FOBAR", 0, MASKED[0] + TAIL), _row("b", "s2", "FOBAR", 0, MASKED[0] + TAIL)]
    kept, dropped = clean_accepted(rows, CFG)
    assert [r["id"] for r in kept] == ["a"] and [r["reject_reason"] for r in dropped] == ["duplicate_query"]


def test_a_rephrasing_that_copies_its_question_is_still_a_duplicate():
    rows = [_row("a", "s1", "AnsAug", 0, QUESTION), _row("b", "s1", "Rephrasing", 0, QUESTION + " ")]
    kept, dropped = clean_accepted(rows, CFG)
    assert [r["aug"] for r in kept] == ["AnsAug"]
    assert [r["reject_reason"] for r in dropped] == ["duplicate_query"]


def test_two_identical_answers_to_one_backward_question_are_still_duplicates():
    same = "x costs 12 dollars.\nThe value of x is 12.\nThe answer is: 12"
    rows = [_row("a", "s1", "FOBAR", 0, MASKED[0] + TAIL, same, sample=0),
            _row("b", "s1", "FOBAR", 0, MASKED[0] + TAIL, same, sample=1)]
    kept, dropped = clean_accepted(rows, CFG)
    assert [r["id"] for r in kept] == ["a"]
    assert dropped[0]["reject_reason"].startswith("duplicate_exact")
