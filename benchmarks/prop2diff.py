"""Prop2Diff vs uniform at the same total budget: where do the accepted solutions go?

    flock /tmp/metamath-heavy.lock unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 \
        RAY_USAGE_STATS_ENABLED=0 python benchmarks/prop2diff.py [--variants 20000] [--pipeline-seeds 150]'

Every question has a known solve rate p (the chance that one sampled chain of thought is right),
drawn from a MATH-level-like spread: five difficulty levels with mean p 0.85, 0.65, 0.45, 0.30, 0.15
(roughly a 7B teacher's accuracy by MATH level), and within a level p ~ Beta(mean x 2, (1 - mean) x 2),
so many questions sit near 0 or 1 as real pass rates do. k = 4 per question in round 0.

Part 1 (simulated sampler, many questions): the round sizes come from the pipeline's own pure policy
(`augment/budget.round_requests`, as `AugmentJob._solve` calls it); each request is a Bernoulli(p)
draw. `uniform` runs first; its extra requests after round 0 set prop2diff's `budget_per_variant`, so
both spend the same total. Per max_attempts cap (8 = the default, 32 = a DART-Math-like cap); also
prop2diff at that budget with a cap 4x higher (DART-Math samples its hardest queries far more).

Part 2 (one small real run each): `run_augment` on local Ray with `engine.kind=scripted`, whose
answer is right with the question's p (a hash of seed id and sample index, so reproducible), on the
first GSM8K and MATH training questions (AnsAug only); stats.json and candidates are read back.

Reported per difficulty decile (by true p; decile 10 = hardest): accepted solutions; the hardest
decile's share of all accepted rows; questions of the hardest decile with at least one accepted.
Writes benchmarks/results/prop2diff.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "prop2diff.json"
SHARED = ROOT.parent / "shared" / "data"
LEVEL_MEAN_P = {"Level 1": 0.85, "Level 2": 0.65, "Level 3": 0.45, "Level 4": 0.30, "Level 5": 0.15}
CONCENTRATION = 2.0
K = 4
WIDE_CAP = 4


def _unit(*parts) -> float:
    """A reproducible uniform draw in [0, 1) from `parts` (same on the driver and in Ray workers)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big") / 2**64


def solve_rate(question_id: str, level: str = "") -> float:
    """The question's known p: its level's mean (MATH), or a level drawn from the id (GSM8K), spread by a Beta."""
    if level not in LEVEL_MEAN_P:
        level = sorted(LEVEL_MEAN_P)[int(_unit("level", question_id) * len(LEVEL_MEAN_P))]
    mean = LEVEL_MEAN_P[level]
    return random.Random(f"p|{question_id}").betavariate(mean * CONCENTRATION, (1 - mean) * CONCENTRATION)


def scripted_answer(row: dict) -> str:
    """engine.script="prop2diff:scripted_answer": right with the question's p, reproducibly per sample."""
    p = solve_rate(row["seed_id"], row.get("level") or "")
    right = _unit("sample", row["seed_id"], row["variant"], row["sample_idx"]) < p
    return f"Attempt {row['sample_idx']}.\nThe answer is: {row['expected'] if right else '-98765'}"


# ---------------------------------------------------------------------------------------------
# Part 1: the pure policy with a simulated sampler


def simulate(mode: str, rates: dict[str, float], max_attempts: int, budget_per_variant: float, seed: int) -> dict:
    """Rounds sized by budget.round_requests, answers drawn with each question's p: accepted per question."""
    from metamath_ray.augment.budget import VariantTally, round_requests

    rng = random.Random(seed)
    tallies = {q: VariantTally(K, max_attempts) for q in rates}
    rnd = 0
    while wanted := round_requests(mode, tallies, rnd, budget_per_variant):
        for q, n in wanted.items():
            t = tallies[q]
            t.sent += n
            for _ in range(n):
                t.record(rnd, judged=True, accepted=rng.random() < rates[q])
        rnd += 1
    return {q: (t.sent, t.accepted) for q, t in tallies.items()}


def by_decile(rates: dict[str, float], outcome: dict[str, tuple[int, int]]) -> dict:
    """Per decile of true p (1 = easiest, 10 = hardest): questions, requests, accepted, questions with any."""
    order = sorted(rates, key=lambda q: (-rates[q], q))
    size = len(order) / 10
    rows = []
    for d in range(10):
        qs = order[round(d * size):round((d + 1) * size)]
        rows.append({"decile": d + 1, "mean_p": round(sum(rates[q] for q in qs) / len(qs), 3), "questions": len(qs),
                     "requests": sum(outcome[q][0] for q in qs), "accepted": sum(outcome[q][1] for q in qs),
                     "with_any_accepted": sum(outcome[q][1] > 0 for q in qs)})
    total = sum(r["accepted"] for r in rows)
    hardest = rows[-1]
    return {"deciles": rows, "requests": sum(r["requests"] for r in rows), "accepted": total,
            "hardest_decile_share": round(hardest["accepted"] / total, 4) if total else None,
            "hardest_half_share": round(sum(r["accepted"] for r in rows[5:]) / total, 4) if total else None,
            "hardest_decile_coverage": round(hardest["with_any_accepted"] / hardest["questions"], 4)}


def part1(n_variants: int, caps: list[int], repeats: int) -> list[dict]:
    rates = {f"q{i}": solve_rate(f"q{i}") for i in range(n_variants)}
    out = []
    for cap in caps:
        for rep in range(repeats):
            uniform = by_decile(rates, simulate("uniform", rates, cap, 0, seed=rep))
            per_variant = (uniform["requests"] - K * n_variants) / n_variants
            prop = by_decile(rates, simulate("prop2diff", rates, cap, per_variant, seed=rep))
            # DART-Math lets its hardest queries sample far more than the others: the same budget with
            # prop2diff's cap raised 4x shows what the cap, not the allocation, holds back
            wide = by_decile(rates, simulate("prop2diff", rates, WIDE_CAP * cap, per_variant, seed=rep))
            out.append({"max_attempts": cap, "repeat": rep, "budget_per_variant": round(per_variant, 4),
                        "uniform": uniform, "prop2diff": prop, f"prop2diff_max_attempts_x{WIDE_CAP}": wide})
    return out


# ---------------------------------------------------------------------------------------------
# Part 2: one small real pipeline run per mode


def pipeline_run(mode: str, n_seeds: int, max_attempts: int, budget_per_variant: float, out: str) -> dict:
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.config import load_config
    from metamath_ray.pipeline.augment import run_augment
    from metamath_ray.storage import RunStore

    cfg = load_config(AugmentConfig, None, [
        f"seeds=[{{path: '{SHARED / 'gsm8k' / 'train.jsonl'}'}}, {{path: '{SHARED / 'math' / 'train.jsonl'}'}}]",
        f"limit={n_seeds}", "chunk_seeds=64", "chunks_per_wave=16", "augmentations=[AnsAug]",
        f"adaptive={mode}", f"budget_per_variant={budget_per_variant}", f"aug.AnsAug.k={K}",
        f"aug.AnsAug.max_attempts={max_attempts}", "engine.kind=scripted", "engine.script=prop2diff:scripted_answer",
        "engine.batch_size=256", "decontam.enabled=false", "dedup.enabled=false", "ray.num_cpus=2",
    ], base={"output": out, "run_name": mode})
    t0 = time.perf_counter()
    run_augment(cfg)
    wall = time.perf_counter() - t0
    store = RunStore(out, mode)
    rows = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist() if r["stage"] == "solve"]
    rates = {r["seed_id"]: solve_rate(r["seed_id"], r["level"] or "") for r in rows}
    outcome = {q: (0, 0) for q in rates}
    for r in rows:
        sent, acc = outcome[r["seed_id"]]
        outcome[r["seed_id"]] = (sent + 1, acc + int(bool(r["accepted"])))
    stats = json.loads((Path(out) / mode / "stats.json").read_text())
    return {"mode": mode, "wall_s": round(wall, 1), "budget_per_variant": budget_per_variant,
            "by_decile": by_decile(rates, outcome), "by_difficulty": stats["by_difficulty"]}


def part2(n_seeds: int, max_attempts: int) -> dict:
    out = tempfile.mkdtemp(prefix="prop2diff-")
    uniform = pipeline_run("uniform", n_seeds, max_attempts, 0, out)
    variants = sum(c["variants"] for c in uniform["by_difficulty"]["table"])
    per_variant = round(uniform["by_difficulty"]["extra_attempts"] / variants, 4)
    prop = pipeline_run("prop2diff", n_seeds, max_attempts, per_variant, out)
    return {"seeds_per_dataset": n_seeds, "max_attempts": max_attempts, "variants": variants,
            "uniform": uniform, "prop2diff": prop}


# ---------------------------------------------------------------------------------------------


def _table(title: str, uniform: dict, prop: dict) -> list[str]:
    lines = [title, f"  {'decile':>6} {'mean p':>6} | {'uniform req':>11} {'acc':>6} {'any':>5} | "
             f"{'prop2diff req':>13} {'acc':>6} {'any':>5}"]
    for u, p in zip(uniform["deciles"], prop["deciles"]):
        lines.append(f"  {u['decile']:>6} {u['mean_p']:>6.3f} | {u['requests']:>11,} {u['accepted']:>6,} "
                     f"{u['with_any_accepted']:>5,} | {p['requests']:>13,} {p['accepted']:>6,} {p['with_any_accepted']:>5,}")
    lines.append(f"  total requests {uniform['requests']:,} vs {prop['requests']:,}; accepted {uniform['accepted']:,} vs "
                 f"{prop['accepted']:,}; hardest decile's share of accepted {uniform['hardest_decile_share']:.2%} vs "
                 f"{prop['hardest_decile_share']:.2%}; hardest half's share {uniform['hardest_half_share']:.1%} vs "
                 f"{prop['hardest_half_share']:.1%}; hardest decile with >=1 accepted "
                 f"{uniform['hardest_decile_coverage']:.1%} vs {prop['hardest_decile_coverage']:.1%}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=20000, help="simulated questions (part 1)")
    ap.add_argument("--repeats", type=int, default=3, help="simulations per cap (different draws)")
    ap.add_argument("--pipeline-seeds", type=int, default=150, help="GSM8K and MATH questions each (part 2); 0 skips it")
    args = ap.parse_args()
    results = {"k": K, "level_mean_p": LEVEL_MEAN_P, "beta_concentration": CONCENTRATION,
               "simulated": part1(args.variants, [8, 32], args.repeats)}
    for r in results["simulated"]:
        if r["repeat"] == 0:
            print("\n".join(_table(f"simulated, {args.variants:,} questions, k={K}, max_attempts={r['max_attempts']}, "
                                   f"prop2diff budget_per_variant={r['budget_per_variant']} (= uniform's spend)",
                                   r["uniform"], r["prop2diff"])))
            wide = r[f"prop2diff_max_attempts_x{WIDE_CAP}"]
            print(f"  prop2diff with max_attempts {WIDE_CAP * r['max_attempts']} at the same budget: requests "
                  f"{wide['requests']:,}, accepted {wide['accepted']:,}, per decile "
                  f"{[d['accepted'] for d in wide['deciles']]}; hardest decile's share {wide['hardest_decile_share']:.2%}, "
                  f"hardest half's {wide['hardest_half_share']:.1%}, hardest decile with >=1 accepted "
                  f"{wide['hardest_decile_coverage']:.1%}")
    if args.pipeline_seeds:
        real = results["pipeline"] = part2(args.pipeline_seeds, 8)
        print("\n".join(_table(f"pipeline (scripted engine, local Ray), {real['variants']} questions, k={K}, "
                               f"max_attempts=8, budget_per_variant={real['prop2diff']['budget_per_variant']}",
                               real["uniform"]["by_decile"], real["prop2diff"]["by_decile"])))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
