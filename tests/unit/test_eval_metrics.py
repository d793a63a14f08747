from math import comb

import pytest

from metamath_ray.evaluate.metrics import (
    majority_correct,
    majority_vote,
    mean_interval,
    pass_at_k,
    pass_k_values,
    proportion,
    wilson_interval,
)


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (10, 3, 1, 0.3),
        (5, 2, 2, 1 - comb(3, 2) / comb(5, 2)),  # 0.7
        (10, 0, 5, 0.0),
        (10, 6, 5, 1.0),  # fewer than k wrong: some draw of k must contain a correct one
        (200, 13, 10, 1 - comb(187, 10) / comb(200, 10)),
    ],
)
def test_pass_at_k_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(3, 4, 1), (3, 1, 4), (3, 1, 0)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@pytest.mark.parametrize("k, expected", [(1, [1]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (64, [1, 2, 4, 8, 16, 32, 64])])
def test_pass_k_values(k, expected):
    assert pass_k_values(k) == expected


@pytest.mark.parametrize(
    "keys, winner",
    [
        (["3", "4", "3"], "3"),
        (["4", "3", "3", "4"], "4"),  # tie: first seen wins
        ([None, None, "7"], "7"),  # missing answers do not vote
        ([None, None], None),
        (["1", "2", "3", "2"], "2"),
    ],
)
def test_majority_vote(keys, winner):
    assert majority_vote(keys) == winner


@pytest.mark.parametrize(
    "keys, correct, expected",
    [(["3", "4", "3"], [True, False, True], True), (["4", "3", "3"], [False, True, True], True),
     (["4", "4", "3"], [False, False, True], False), ([None, None], [False, False], False)],
)
def test_majority_correct(keys, correct, expected):
    assert majority_correct(keys, correct) is expected


@pytest.mark.parametrize(
    "successes, n, lo, hi",
    [(50, 100, 0.4038, 0.5962), (0, 20, 0.0, 0.1611), (20, 20, 0.8389, 1.0), (1, 1319, 0.00013, 0.0043)],
)
def test_wilson_interval_known_values(successes, n, lo, hi):
    got = wilson_interval(successes, n)
    assert got[0] == pytest.approx(lo, abs=1e-4) and got[1] == pytest.approx(hi, abs=1e-4)


@pytest.mark.parametrize("n", [1, 3, 7, 10, 12, 20, 99, 500, 1319, 5000])
def test_wilson_interval_always_holds_the_accuracy(n):
    # at 0% and 100% floating rounding used to put a bound past p (a negative plot error bar)
    for successes in range(n + 1):
        lo, hi = wilson_interval(successes, n)
        assert 0.0 <= lo <= successes / n <= hi <= 1.0, (successes, n, lo, hi)


def test_accuracy_plot_renders_at_zero_and_full_accuracy():
    from metamath_ray.evaluate.report import render_plots

    datasets = {name: {"greedy": {"strict": proportion(s, 12), "metamath": proportion(s, 12)}}
                for name, s in (("gsm8k", 0), ("math500", 12))}
    plots = render_plots({"run_name": "r", "datasets": datasets})
    assert plots["accuracy.png"].startswith(b"\x89PNG")


def test_proportion_and_mean_interval():
    entry = proportion(3, 4)
    assert entry["accuracy"] == 0.75 and entry["correct"] == 3 and entry["n"] == 4
    assert entry["ci95"][0] < 0.75 < entry["ci95"][1]
    flat = mean_interval([0.5, 0.5, 0.5])
    assert flat["accuracy"] == 0.5 and flat["ci95"] == [0.5, 0.5]
    assert proportion(0, 0)["ci95"] == [0.0, 1.0]
