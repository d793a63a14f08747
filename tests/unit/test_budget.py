"""Difficulty-aware budgets (augment/budget.py): Prop2Diff allocation, round sizing per `adaptive`
mode, the difficulty table, and the config's back-compatible `adaptive` values."""

import random

import pytest

from metamath_ray.augment.budget import (
    VariantTally,
    difficulty_label,
    difficulty_table,
    prop2diff_allocation,
    round_requests,
    wave_budget,
)
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.records import config_hash


def _after_round0(accepted: list[int], k: int = 4, max_attempts: int = 100) -> dict:
    """Variants v0, v1, ... after round 0 (k asked and judged each) with these acceptances."""
    return {f"v{i}": VariantTally(k, max_attempts, sent=k, judged=k, accepted=a) for i, a in enumerate(accepted)}


def test_allocation_is_proportional_to_the_failure_rate():
    # failure rates 1, 1/2, 1/4, 0 -> shares 4:2:1:0 of the budget
    assert prop2diff_allocation(_after_round0([0, 2, 3, 4]), 14) == {"v0": 8, "v1": 4, "v2": 2, "v3": 0}


def test_allocation_spends_exactly_the_budget_by_largest_remainder():
    shares = prop2diff_allocation(_after_round0([0, 2, 3]), 5)  # ideal 2.86, 1.43, 0.71
    assert shares == {"v0": 3, "v1": 1, "v2": 1}
    for total in range(0, 30):
        assert sum(prop2diff_allocation(_after_round0([0, 1, 2, 3]), total).values()) == total


def test_a_capped_variant_gives_what_it_cannot_take_to_the_others():
    tallies = _after_round0([0, 2, 3], max_attempts=6)  # headroom 2 each after k=4
    assert prop2diff_allocation(tallies, 5) == {"v0": 2, "v1": 2, "v2": 1}
    # every cap reached: the rest of the budget is left unspent, never over a cap
    assert prop2diff_allocation(tallies, 50) == {"v0": 2, "v1": 2, "v2": 2}


def test_allocation_is_deterministic_whatever_the_order():
    accepted = [random.Random(i).randint(0, 4) for i in range(40)]
    tallies = _after_round0(accepted)
    expected = prop2diff_allocation(tallies, 37)
    items = list(tallies.items())
    for seed in range(5):
        random.Random(seed).shuffle(items)
        assert prop2diff_allocation(dict(items), 37) == expected
    # equal failure rates: the tie goes by key order
    assert prop2diff_allocation(_after_round0([1, 1, 1]), 2) == {"v0": 1, "v1": 1, "v2": 0}


def test_no_failures_no_extra_requests():
    tallies = _after_round0([4, 4, 4])
    assert prop2diff_allocation(tallies, 10) == {"v0": 0, "v1": 0, "v2": 0}
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=3) == {}


def test_budget_exhausted_goes_to_the_hardest_first():
    tallies = _after_round0([3, 0, 2, 4])
    assert prop2diff_allocation(tallies, 1) == {"v0": 0, "v1": 1, "v2": 0, "v3": 0}
    assert prop2diff_allocation(tallies, 0) == {"v0": 0, "v1": 0, "v2": 0, "v3": 0}


def test_engine_errors_are_no_evidence_of_difficulty():
    tallies = {"failed": VariantTally(4, 8, sent=4, judged=0, accepted=0),
               "hard": VariantTally(4, 8, sent=4, judged=4, accepted=0)}
    assert prop2diff_allocation(tallies, 3) == {"failed": 0, "hard": 3}


def test_round_sizes_per_mode():
    tallies = _after_round0([0, 3, 4], k=4, max_attempts=8)
    fresh = {key: VariantTally(4, 8) for key in tallies}
    for mode in ("off", "uniform", "prop2diff"):
        assert round_requests(mode, fresh, 0, 2) == {"v0": 4, "v1": 4, "v2": 4}
    assert round_requests("off", tallies, 1, 2) == {}
    assert round_requests("uniform", tallies, 1) == {"v0": 4, "v1": 1}  # until k accepted or max_attempts
    # 3 variants x 1 = 3 extra, split 1 : 1/4 = 2.4 : 0.6 -> 2 and 1 (largest remainder)
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=1) == {"v0": 2, "v1": 1}
    assert round_requests("prop2diff", tallies, 2, budget_per_variant=1) == {}  # one extra round only


def test_wave_budget_never_exceeds_the_average():
    assert wave_budget(10, 1.5) == 15 and wave_budget(3, 0.5) == 1 and wave_budget(7, 0.3) == 2
    assert wave_budget(10, 0) == 0


def test_difficulty_labels():
    assert difficulty_label("math", "Level 5", 4, 4) == "Level 5"
    assert [difficulty_label("gsm8k", "", 4, a) for a in (0, 1, 2, 4)] == [
        "round-0 pass 0%", "round-0 pass 1-49%", "round-0 pass 50-99%", "round-0 pass 100%"]


def _row(seed, rnd, accepted, dataset="gsm8k", level="", stage="solve", reason=None):
    return {"seed_id": seed, "aug": "AnsAug", "variant": 0, "dataset": dataset, "level": level, "round": rnd,
            "stage": stage, "accepted": accepted, "reject_reason": reason}


def test_difficulty_table_counts_allocation_and_accepted():
    rows = ([_row("easy", 0, True)] * 2 + [_row("hard", 0, False)] * 2 + [_row("hard", 1, True)] * 3
            + [_row("hard", 1, False)] + [_row("m", 0, False, "math", "Level 5")] * 2
            + [_row("m", 1, True, "math", "Level 5")] + [_row("r", 0, False, stage="rewrite")])
    out = difficulty_table(rows, "prop2diff", 2.0)
    assert out["adaptive"] == "prop2diff" and out["budget_per_variant"] == 2.0 and out["extra_attempts"] == 5
    by = {(c["dataset"], c["difficulty"]): c for c in out["table"]}
    assert list(by) == [("gsm8k", "round-0 pass 0%"), ("gsm8k", "round-0 pass 100%"), ("math", "Level 5")]
    hard = by[("gsm8k", "round-0 pass 0%")]
    assert (hard["variants"], hard["round0_attempts"], hard["extra_attempts"], hard["accepted"]) == (1, 2, 4, 3)
    assert by[("gsm8k", "round-0 pass 100%")]["extra_attempts"] == 0
    assert difficulty_table(rows, "uniform", 2.0)["budget_per_variant"] is None


def test_report_shows_the_difficulty_section(tmp_path):
    from metamath_ray.augment.report import write_report

    stats = {"by_dataset_aug": [], "by_difficulty": difficulty_table([_row("a", 0, False), _row("a", 1, True)],
                                                                     "prop2diff", 1.0)}
    report = (tmp_path / "report.md")
    write_report(stats, str(tmp_path))
    text = report.read_text()
    assert "## Budget by difficulty" in text and "| gsm8k | round-0 pass 0% | 1 | 0/1 | 1 | 1 | 1.00 |" in text


# ---------------------------------------------------------------------------------------------
# The config: old boolean values keep working and keep their run ids


@pytest.mark.parametrize("value, mode", [(True, "uniform"), (False, "off"), ("prop2diff", "prop2diff")])
def test_adaptive_accepts_the_old_booleans(value, mode):
    assert AugmentConfig(adaptive=value).adaptive == mode


@pytest.mark.parametrize("override, mode", [("adaptive=true", "uniform"), ("adaptive=false", "off"),
                                            ("adaptive=off", "off"), ("adaptive=prop2diff", "prop2diff")])
def test_adaptive_overrides(override, mode):
    assert load_config(AugmentConfig, None, [override]).adaptive == mode


def test_bad_adaptive_is_a_config_error():
    from metamath_ray.config import ConfigError

    with pytest.raises(ConfigError, match="adaptive"):
        load_config(AugmentConfig, None, ["adaptive=sometimes"])


def test_config_hash_unchanged_for_the_old_meanings():
    assert config_hash(AugmentConfig(adaptive="uniform")) == config_hash(AugmentConfig(adaptive=True)) == "fbbd181e53ebd25f"
    assert config_hash(AugmentConfig(adaptive="off")) == config_hash(AugmentConfig(adaptive=False))
    # the budget only changes what prop2diff generates
    assert config_hash(AugmentConfig(budget_per_variant=5)) == config_hash(AugmentConfig())
    prop = {config_hash(AugmentConfig(adaptive="prop2diff", budget_per_variant=b)) for b in (1, 2)}
    assert len(prop) == 2 and config_hash(AugmentConfig()) not in prop
