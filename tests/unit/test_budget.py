"""Difficulty-aware budgets (augment/budget.py): Prop2Diff allocation, round sizing per `adaptive`
mode, the difficulty table, and the config's back-compatible `adaptive` values."""

import random

import pytest

from metamath_ray.augment.budget import (
    VariantTally,
    difficulty_label,
    difficulty_table,
    extra_spent,
    prop2diff_k_max,
    prop2diff_target,
    requests_to_reach,
    round_requests,
    split_in_proportion,
    wave_budget,
)
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.records import config_hash


def _after_round0(accepted: list[int], k: int = 4, max_attempts: int = 100) -> dict:
    """Variants v0, v1, ... after round 0 (k asked and judged each) with these acceptances."""
    tallies = {f"v{i}": VariantTally(k, max_attempts, sent=k) for i in range(len(accepted))}
    for t, a in zip(tallies.values(), accepted):
        for j in range(k):
            t.record(0, judged=True, accepted=j < a)
    return tallies


def _answer(tallies: dict, wanted: dict, rnd: int, solves) -> None:
    """Send `wanted` and record answers: `solves(key, sample_index)` says which are right."""
    for key, n in wanted.items():
        t = tallies[key]
        for i in range(t.sent, t.sent + n):
            t.record(rnd, judged=True, accepted=solves(key, i))
        t.sent += n


def _solve_all(tallies: dict, budget_per_variant: float, solves) -> int:
    """Rounds until round_requests says done; returns the number of rounds after round 0."""
    rnd = 1
    while wanted := round_requests("prop2diff", tallies, rnd, budget_per_variant):
        _answer(tallies, wanted, rnd, solves)
        rnd += 1
        assert rnd < 200
    return rnd - 1


def test_targets_are_proportional_to_the_round0_failure_rate():
    tallies = _after_round0([0, 1, 2, 3, 4])  # failure rates 1, 3/4, 1/2, 1/4, 0
    assert [prop2diff_target(t, 16) for t in tallies.values()] == [16, 12, 8, 4, 4]  # never below round 0
    assert [prop2diff_target(t, 10) for t in tallies.values()] == [10, 8, 5, 3, 4]  # ceil(10 x 3/4) = 8


def test_round1_asks_what_reaches_the_target_at_the_optimistic_pass_rate():
    tallies = _after_round0([0, 2, 3, 4], max_attempts=64)
    # optimistic pass rates (accepted + 1) / (judged + 1): 1/5 for 0/4, 3/5 for 2/4
    assert requests_to_reach(8, 0, 4, 60) == 40 and requests_to_reach(4, 2, 4, 60) == 4
    assert requests_to_reach(2, 3, 4, 60) == 0 and requests_to_reach(100, 0, 4, 7) == 7  # met; capped
    wanted = round_requests("prop2diff", tallies, 1, budget_per_variant=11)  # 44 extra for 4 variants
    k_max = prop2diff_k_max(tallies, 44)
    assert k_max == 8 and sum(wanted.values()) <= 44
    assert wanted == {"v0": 40, "v1": 4}  # target 8 for 0/4 (5 per accepted), 4 for 2/4; 3/4 has 3 >= 2
    assert "v3" not in wanted  # failed nothing: nothing extra


def test_hard_but_solvable_questions_end_with_more_than_k():
    tallies = _after_round0([0, 2, 4, 4], max_attempts=32)
    # v0 is right every other sample after round 0, v1 always: both collect more than k = 4
    _solve_all(tallies, 10, lambda key, i: key == "v1" or i % 2 == 1)
    assert tallies["v0"].accepted > 4 and tallies["v1"].accepted > 4
    assert tallies["v2"].sent == tallies["v3"].sent == 4  # easy ones keep what round 0 gave
    assert extra_spent(tallies) <= 40


def test_the_cap_holds_in_every_round():
    tallies = _after_round0([0, 0, 1], max_attempts=6)
    _solve_all(tallies, 50, lambda key, i: False)
    assert {key: t.sent for key, t in tallies.items()} == {"v0": 6, "v1": 6, "v2": 6}
    assert round_requests("prop2diff", tallies, 5, 50) == {}  # budget left, every cap reached: done


def test_the_budget_runs_out_across_rounds():
    accepted = [random.Random(i).randint(0, 3) for i in range(30)]
    tallies = _after_round0(accepted, max_attempts=40)
    rounds = _solve_all(tallies, 3, lambda key, i: (int(key[1:]) + i * 7) % 5 == 0)
    assert extra_spent(tallies) == wave_budget(30, 3) == 90  # spent exactly, never more
    assert rounds >= 2 and all(t.sent <= 40 for t in tallies.values())
    assert round_requests("prop2diff", tallies, rounds + 1, 3) == {}


def test_a_small_budget_goes_to_the_largest_requests():
    tallies = _after_round0([3, 0, 2, 4])
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=0.25) == {"v1": 1}  # 1 extra in all
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=0) == {}
    # ideal 2.22, 1.33, 0.44: floors 2, 1, 0 and the one left to the largest remainder
    assert split_in_proportion({"a": 5, "b": 3, "c": 1}, 4) == {"a": 2, "b": 1, "c": 1}
    assert sum(split_in_proportion({"a": 7, "b": 7, "c": 7}, 10).values()) == 10


def test_prop2diff_is_deterministic_whatever_the_order():
    accepted = [random.Random(i).randint(0, 4) for i in range(40)]
    expected = round_requests("prop2diff", _after_round0(accepted), 1, 1.7)
    items = list(_after_round0(accepted).items())
    for seed in range(5):
        random.Random(seed).shuffle(items)
        assert round_requests("prop2diff", dict(items), 1, 1.7) == expected
    # equal requests, one to share: the tie goes by key order
    assert split_in_proportion({"v1": 5, "v0": 5, "v2": 5}, 1) == {"v1": 0, "v0": 1, "v2": 0}


def test_no_failures_no_extra_requests():
    tallies = _after_round0([4, 4, 4])
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=3) == {}


def test_engine_errors_are_no_evidence_of_difficulty():
    tallies = {"failed": VariantTally(4, 8, sent=4), "hard": _after_round0([0], max_attempts=8)["v0"]}
    for _ in range(4):
        tallies["failed"].record(0, judged=False, accepted=False)
    assert round_requests("prop2diff", tallies, 1, 2) == {"hard": 4}


def test_later_rounds_keep_round0_as_the_difficulty():
    t = _after_round0([2])["v0"]
    _answer({"v0": t}, {"v0": 4}, 1, lambda key, i: True)
    assert (t.round0_judged, t.round0_accepted, t.judged, t.accepted) == (4, 2, 8, 6)
    assert prop2diff_target(t, 10) == 5  # ceil(10 x 1/2), not the pooled 1/4


def test_round_sizes_per_mode():
    tallies = _after_round0([0, 3, 4], k=4, max_attempts=8)
    fresh = {key: VariantTally(4, 8) for key in tallies}
    for mode in ("off", "uniform", "prop2diff"):
        assert round_requests(mode, fresh, 0, 2) == {"v0": 4, "v1": 4, "v2": 4}
    assert round_requests("off", tallies, 1, 2) == {}
    assert round_requests("uniform", tallies, 1) == {"v0": 4, "v1": 1}  # until k accepted or max_attempts
    # 3 extra: k_max 1 asks v0 for 1 / (1/5) = 5 > 3, so the 3 go to it alone; v1 (target 3) is done
    assert round_requests("prop2diff", tallies, 1, budget_per_variant=1) == {"v0": 3}


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
