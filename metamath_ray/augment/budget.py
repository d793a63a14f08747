"""Sample budgets over question variants: how many chains of thought each round asks for, and the
difficulty table of a run. Pure Python (no Ray), so the policy is testable on its own.

`adaptive` modes (augment config):
- `off`: k chains of thought per variant, one round.
- `uniform`: after round 0, resample variants short of k accepted until k or max_attempts (the
  "sample until k accepted" of MetaMath/DART-Math's uniform baseline). Easy questions reach k in
  round 0; the budget it spends beyond that depends on the data.
- `prop2diff` (DART-Math's Prop2Diff): after round 0, one more round spreads a fixed budget,
  `budget_per_variant` x the wave's variants, over the variants in proportion to their round-0
  failure rate (1 - accepted/judged), each capped at max_attempts in all. Every accepted chain of
  thought is kept, so hard questions get more attempts and more accepted solutions. The allocation
  needs every round-0 answer of the wave judged first, so it is per wave, not per run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Hashable, Iterable, Literal

AdaptiveMode = Literal["off", "uniform", "prop2diff"]
ENGINE_ERROR = "engine_error"
# GSM8K has no difficulty label: its questions are bucketed by their round-0 pass rate.
PASS_RATE_BUCKETS = ("round-0 pass 0%", "round-0 pass 1-49%", "round-0 pass 50-99%", "round-0 pass 100%")


@dataclass
class VariantTally:
    """What one question variant has been asked and answered so far."""

    k: int  # accepted chains of thought wanted (aug.<name>.k)
    max_attempts: int  # requests at most, all rounds together
    sent: int = 0  # requests sent
    judged: int = 0  # of those, answers judged (a request that failed with engine_error says nothing)
    accepted: int = 0

    @property
    def failure_rate(self) -> Fraction:
        """1 - accepted/judged; 0 with nothing judged (no evidence of difficulty, no extra budget)."""
        return Fraction(self.judged - self.accepted, self.judged) if self.judged else Fraction(0)

    @property
    def headroom(self) -> int:
        return max(0, self.max_attempts - self.sent)


def wave_budget(n_variants: int, budget_per_variant: float) -> int:
    """Extra requests for a wave: the per-variant average times its variants, rounded down so a run
    never spends more than budget_per_variant x its variants."""
    return math.floor(round(budget_per_variant * n_variants, 6))


def prop2diff_allocation(tallies: dict[Hashable, VariantTally], total: int) -> dict[Hashable, int]:
    """Extra requests per variant: `total` split in proportion to the failure rates, each variant
    capped at its headroom; what a capped variant cannot take goes to the others. Integer shares by
    largest remainder (ties: higher failure rate, then key order), so the result is deterministic.
    Spends min(total, the headroom of every variant that failed at least once)."""
    share = {key: 0 for key in tallies}
    open_ = sorted(key for key, t in tallies.items() if t.failure_rate > 0 and t.headroom > 0)
    left = max(0, total)
    while open_ and left > 0:
        weight = sum(tallies[key].failure_rate for key in open_)
        ideal = {key: left * tallies[key].failure_rate / weight for key in open_}
        capped = [key for key in open_ if ideal[key] >= tallies[key].headroom]
        if capped:  # fill these to their cap, then share what is left among the others
            for key in capped:
                share[key] = tallies[key].headroom
                left -= share[key]
            open_ = [key for key in open_ if key not in capped]
            continue
        for key in open_:
            share[key] = math.floor(ideal[key])
        remainder = left - sum(share[key] for key in open_)
        by_remainder = sorted(open_, key=lambda key: (-(ideal[key] - share[key]), -tallies[key].failure_rate))
        for key in by_remainder[:remainder]:  # each ideal < headroom, so one more never breaks a cap
            share[key] += 1
        break
    return share


def round_requests(mode: AdaptiveMode, tallies: dict[Hashable, VariantTally], rnd: int,
                   budget_per_variant: float = 0.0) -> dict[Hashable, int]:
    """Chains of thought to request per variant in round `rnd` (0 = the first), given what the
    earlier rounds returned. Variants that get nothing are left out; {} means the solving is done."""
    if rnd == 0:
        return {key: t.k for key, t in tallies.items()}
    if mode == "uniform":
        wanted = {key: min(t.k - t.accepted, t.headroom) for key, t in tallies.items()}
        return {key: n for key, n in wanted.items() if n > 0}
    if mode == "prop2diff" and rnd == 1:
        shares = prop2diff_allocation(tallies, wave_budget(len(tallies), budget_per_variant))
        return {key: n for key, n in shares.items() if n > 0}
    return {}


# ---------------------------------------------------------------------------------------------
# The difficulty table of a run (stats.json "by_difficulty", the report's section)


def difficulty_label(dataset: str, level: str, round0_judged: int, round0_accepted: int) -> str:
    """MATH: its level. Other datasets (GSM8K): the variant's round-0 pass rate bucket."""
    if dataset == "math":
        return level or "no level"
    if not round0_judged:
        return "round-0 not judged"
    rate = round0_accepted / round0_judged
    if rate == 0:
        return PASS_RATE_BUCKETS[0]
    return PASS_RATE_BUCKETS[1] if rate < 0.5 else PASS_RATE_BUCKETS[2] if rate < 1 else PASS_RATE_BUCKETS[3]


def _per_variant(rows: Iterable[dict]) -> dict[tuple, dict]:
    """Chain-of-thought rows (stage solve) grouped by variant: round-0 and later counts."""
    variants: dict[tuple, dict] = defaultdict(lambda: {"r0_judged": 0, "r0_accepted": 0, "extra": 0,
                                                       "attempts": 0, "accepted": 0})
    for r in rows:
        if r.get("stage", "solve") != "solve":
            continue
        v = variants[(r["dataset"], r.get("level") or "", r["seed_id"], r["aug"], r["variant"])]
        accepted = int(bool(r["accepted"]))
        v["attempts"] += 1
        v["accepted"] += accepted
        if int(r.get("round") or 0) > 0:
            v["extra"] += 1
        elif r.get("reject_reason") != ENGINE_ERROR:
            v["r0_judged"] += 1
            v["r0_accepted"] += accepted
    return variants


def difficulty_table(rows: Iterable[dict], mode: str | None = None, budget_per_variant: float | None = None) -> dict:
    """Allocation and accepted chains of thought per (dataset, difficulty) over candidate rows (keys
    seed_id, aug, variant, dataset, level, round, stage, accepted, reject_reason): variants, round-0
    requests and acceptances, extra requests after round 0 (the allocation), and accepted in all."""
    cells: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(
        ("variants", "round0_attempts", "round0_accepted", "extra_attempts", "attempts", "accepted"), 0))
    for (dataset, level, *_), v in _per_variant(rows).items():
        c = cells[(dataset, difficulty_label(dataset, level, v["r0_judged"], v["r0_accepted"]))]
        c["variants"] += 1
        c["round0_attempts"] += v["attempts"] - v["extra"]
        c["round0_accepted"] += v["r0_accepted"]
        c["extra_attempts"] += v["extra"]
        c["attempts"] += v["attempts"]
        c["accepted"] += v["accepted"]
    order = {label: i for i, label in enumerate(PASS_RATE_BUCKETS)}
    table = [{"dataset": ds, "difficulty": label, **c}
             for (ds, label), c in sorted(cells.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], -1), kv[0][1]))]
    return {"adaptive": mode, "budget_per_variant": budget_per_variant if mode == "prop2diff" else None,
            "extra_attempts": sum(c["extra_attempts"] for c in table), "table": table}
