"""Sample budgets over question variants: how many chains of thought each round asks for, and the
difficulty table of a run. Pure Python (no Ray), so the policy is testable on its own.

`adaptive` modes (augment config):
- `off`: k chains of thought per variant, one round.
- `uniform`: after round 0, resample variants short of k accepted until k or max_attempts (the
  "sample until k accepted" of MetaMath/DART-Math's uniform baseline). Easy questions reach k in
  round 0; the budget it spends beyond that depends on the data.
- `prop2diff` (DART-Math's Prop2Diff): the number of *accepted* chains of thought a variant ends with
  is proportional to its difficulty. After round 0 each variant's target is
  `max(round-0 accepted, ceil(k_max x round-0 failure rate))` (failure rate = 1 - accepted/judged in
  round 0; engine errors are no evidence, so a variant with nothing judged gets no target beyond round
  0). A variant that failed nothing gets nothing extra; hard-but-solvable ones aim above k. Rounds
  follow, like `uniform`: each asks every variant short of its target for ceil(missing / pass rate)
  more, with the optimistic pass rate (accepted + 1) / (judged + 1) over all its answers so far (never
  zero; a round rather asks too few than too many, the next one tops up), capped at max_attempts in
  all. `k_max` is refitted every round: the largest whole number whose requests fit what is left of the
  wave's budget, `budget_per_variant` x its variants extra requests (at least 1; when nothing fits
  whole, the next k_max's requests share what is left in proportion). So round 1 goes to the
  hardest first (a variant that failed all of round 0 asks for its cap), and later rounds raise the
  targets with what the earlier ones left. Solving stops when the budget is spent or every variant with
  a failure reached its cap or the highest target. Everything is recomputed from the tallies (the budget
  spent is the requests sent beyond k), so `round_requests` keeps no state; integer arithmetic and
  key-order ties make it deterministic. The targets need every round-0 answer of the wave judged first,
  so the budget is per wave, not per run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Iterable, Literal

AdaptiveMode = Literal["off", "uniform", "prop2diff"]
ENGINE_ERROR = "engine_error"
# GSM8K has no difficulty label: its questions are bucketed by their round-0 pass rate.
PASS_RATE_BUCKETS = ("round-0 pass 0%", "round-0 pass 1-49%", "round-0 pass 50-99%", "round-0 pass 100%")


@dataclass
class VariantTally:
    """What one question variant has been asked and answered so far (round 0 sends exactly k)."""

    k: int  # accepted chains of thought wanted by uniform, and sent in round 0 (aug.<name>.k)
    max_attempts: int  # requests at most, all rounds together
    sent: int = 0  # requests sent
    judged: int = 0  # of those, answers judged (a request that failed with engine_error says nothing)
    accepted: int = 0
    round0_judged: int = 0  # prop2diff's difficulty is measured on round 0 only, so targets stay fixed
    round0_accepted: int = 0

    def record(self, rnd: int, judged: bool, accepted: bool) -> None:
        """One answer of round `rnd` came back (judged: not an engine error)."""
        self.judged += int(judged)
        self.accepted += int(accepted)
        if rnd == 0:
            self.round0_judged += int(judged)
            self.round0_accepted += int(accepted)

    @property
    def headroom(self) -> int:
        return max(0, self.max_attempts - self.sent)


def wave_budget(n_variants: int, budget_per_variant: float) -> int:
    """Extra requests for a wave: the per-variant average times its variants, rounded down so a run
    never spends more than budget_per_variant x its variants."""
    return math.floor(round(budget_per_variant * n_variants, 6))


def extra_spent(tallies: dict[Hashable, VariantTally]) -> int:
    """Requests sent after round 0 (round 0 sends k per variant)."""
    return sum(max(0, t.sent - t.k) for t in tallies.values())


def requests_to_reach(target: int, accepted: int, judged: int, headroom: int) -> int:
    """ceil(missing / optimistic pass rate), capped at headroom; 0 when the target is met."""
    missing = target - accepted
    if missing <= 0 or headroom <= 0:
        return 0
    return min(headroom, -(-missing * (judged + 1) // (accepted + 1)))


def prop2diff_target(t: VariantTally, k_max: int) -> int:
    """ceil(k_max x round-0 failure rate), never below what round 0 accepted."""
    if not t.round0_judged:
        return t.round0_accepted
    failed = t.round0_judged - t.round0_accepted
    return max(t.round0_accepted, -(-k_max * failed // t.round0_judged))


def _requests_at(tallies: dict[Hashable, VariantTally], k_max: int) -> dict[Hashable, int]:
    """Requests per variant to reach its target at this k_max from where it stands now (0s left out)."""
    wants = {key: requests_to_reach(prop2diff_target(t, k_max), t.accepted, t.judged, t.headroom) for key, t in tallies.items()}
    return {key: n for key, n in wants.items() if n > 0}


def prop2diff_k_max(tallies: dict[Hashable, VariantTally], left: int) -> int:
    """The largest k_max whose requests fit `left` (at least 1). They never fall as k_max grows and
    stop growing once every target is out of reach of max_attempts, so bisect up to there."""
    low, high = 1, max([t.max_attempts * max(1, t.round0_judged) for t in tallies.values()] + [1])
    while low < high:
        mid = (low + high + 1) // 2
        if sum(_requests_at(tallies, mid).values()) <= left:
            low = mid
        else:
            high = mid - 1
    return low


def split_in_proportion(wants: dict[Hashable, int], total: int) -> dict[Hashable, int]:
    """`total` (< sum of wants) split in proportion to the wants, whole requests by largest remainder
    (ties: larger want, then key order), so no share exceeds its want and the result is deterministic."""
    weight = sum(wants.values())
    share = {key: total * n // weight for key, n in wants.items()}
    remainder = {key: total * n % weight for key, n in wants.items()}
    by_remainder = sorted(wants, key=lambda key: (-remainder[key], -wants[key], key))
    for key in by_remainder[:total - sum(share.values())]:
        share[key] += 1
    return share


def prop2diff_round(tallies: dict[Hashable, VariantTally], budget_per_variant: float) -> dict[Hashable, int]:
    """One prop2diff round after round 0: k_max refitted to what is left of the wave's budget, then
    per variant short of its target the requests to reach it (split in proportion when they ask for
    more than is left)."""
    left = wave_budget(len(tallies), budget_per_variant) - extra_spent(tallies)
    if left <= 0:
        return {}
    k_max = prop2diff_k_max(tallies, left)
    # Nothing fits whole (every target at this k_max met): raise it by one and share what is left,
    # rather than stop with budget unspent.
    wants = _requests_at(tallies, k_max) or _requests_at(tallies, k_max + 1)
    if sum(wants.values()) > left:
        wants = {key: n for key, n in split_in_proportion(wants, left).items() if n > 0}
    return wants


def round_requests(mode: AdaptiveMode, tallies: dict[Hashable, VariantTally], rnd: int,
                   budget_per_variant: float = 0.0) -> dict[Hashable, int]:
    """Chains of thought to request per variant in round `rnd` (0 = the first), given what the
    earlier rounds returned. Variants that get nothing are left out; {} means the solving is done."""
    if rnd == 0:
        return {key: t.k for key, t in tallies.items()}
    if mode == "uniform":
        wanted = {key: min(t.k - t.accepted, t.headroom) for key, t in tallies.items()}
        return {key: n for key, n in wanted.items() if n > 0}
    if mode == "prop2diff":
        return prop2diff_round(tallies, budget_per_variant)
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
