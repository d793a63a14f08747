"""Accuracy with confidence intervals, majority voting (maj@k) and the unbiased pass@k estimator."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; sound at small n and at 0% / 100% (unlike p +- z*se)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always holds p; at 0% and 100% rounding can put a bound a hair past it.
    return (min(p, max(0.0, center - half)), max(p, min(1.0, center + half)))


def proportion(successes: int, n: int) -> dict:
    lo, hi = wilson_interval(successes, n)
    return {"accuracy": successes / n if n else 0.0, "correct": successes, "n": n, "ci95": [lo, hi]}


def mean_interval(values: Sequence[float], z: float = Z95) -> dict:
    """Mean of per-question scores in [0, 1] (pass@k estimates) with a normal-approximation CI."""
    n = len(values)
    if n == 0:
        return {"accuracy": 0.0, "n": 0, "ci95": [0.0, 1.0]}
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return {"accuracy": mean, "n": n, "ci95": [max(0.0, mean - half), min(1.0, mean + half)]}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), computed as a stable product instead of huge binomials."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def pass_k_values(k: int) -> list[int]:
    """The ks reported for k samples: powers of two below k, and k itself."""
    values, power = [], 1
    while power < k:
        values.append(power)
        power *= 2
    return values + [k]


def majority_vote(keys: Sequence[Hashable | None]) -> Hashable | None:
    """Most frequent non-missing answer; ties go to the answer seen first (deterministic)."""
    present = [key for key in keys if key is not None]
    if not present:
        return None
    counts = Counter(present)
    best = max(counts.values())
    return next(key for key in present if counts[key] == best)


def majority_correct(keys: Sequence[Hashable | None], correct: Sequence[bool]) -> bool:
    """Whether the majority answer is right: the correctness of the first sample that voted for it."""
    winner = majority_vote(keys)
    if winner is None:
        return False
    return bool(next(ok for key, ok in zip(keys, correct) if key == winner))
