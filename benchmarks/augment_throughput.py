"""Augment throughput: candidates per second through the whole augment graph, per engine, and where
the time goes; then, on paper, the tokens and H100 GPU-hours for a MetaMathQA-scale (395K) set.

    unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 python benchmarks/augment_throughput.py --engines vllm,hf --seeds 24'

Part 1 (measured, CPU, tiny random LLaMA): `run_augment` on the bundled GSM8K/MATH seeds with all
four augmentations, the same budgets for both engines; from stats.json: wall time, candidates/s,
and the split into generation passes (time to a pass's first result = engine start-up + first
batch; the rest = streaming) and everything else (seed loading, judging on the driver side,
commits, dedup/decontamination, export, report).

Part 2 (paper): tokens per request measured with the real LLaMA-2 tokenizer on our own prompts
(few-shot solve prompts, rewrite prompts) and on the seeds' reference solutions (a stand-in for a
teacher's chain of thought); acceptance rates are *assumptions* stated in the output (a 7B teacher
cannot run here): defaults are MetaMath-7B's published test accuracies (GSM8K 66.5%, MATH 19.8%)
as per-sample acceptance for forward questions, scaled for backward ones. Throughput is a published
figure for vLLM with an 8B model on one H100 (output tokens/s), overridable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "augment_throughput.json"
LLAMA2_TOKENIZER_DIR = ROOT.parent / "shared" / "data" / "tokenizers" / "llama2"

# MetaMathQA-395K composition (Yu et al. 2023, Table 1).
METAMATHQA = {
    ("gsm8k", "AnsAug"): 80_000, ("gsm8k", "Rephrasing"): 80_000, ("gsm8k", "SV"): 40_000, ("gsm8k", "FOBAR"): 40_000,
    ("math", "AnsAug"): 75_000, ("math", "Rephrasing"): 50_000, ("math", "SV"): 15_000, ("math", "FOBAR"): 15_000,
}


def measure_engine(engine: str, n_seeds: int, max_tokens: int) -> dict:
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.config import load_config
    from metamath_ray.demo import VLLM_CPU_KWARGS
    from metamath_ray.pipeline.augment import run_augment

    out = tempfile.mkdtemp(prefix=f"augbench-{engine}-")
    overrides = [
        f"engine.kind={engine}", "engine.model=tiny", "engine.max_model_len=2048", "engine.batch_size=32",
        VLLM_CPU_KWARGS if engine == "vllm" else "engine.num_gpus_per_replica=0",
        f"sampling.max_tokens={max_tokens}", f"rewrite_sampling.max_tokens={max_tokens}",
        "aug.AnsAug.k=4", "aug.AnsAug.max_attempts=4", "aug.Rephrasing.k=2", "aug.Rephrasing.max_attempts=2",
        "aug.Rephrasing.rewrites=1", "aug.FOBAR.k=2", "aug.FOBAR.max_attempts=2", "aug.FOBAR.max_variants=2",
        "aug.SV.k=2", "aug.SV.max_attempts=2", "aug.SV.max_variants=1",
        "adaptive=false", "chunk_seeds=16", "ray.num_cpus=2", f"limit={n_seeds // 2}",
    ]
    cfg = load_config(AugmentConfig, None, overrides, base={"output": out, "run_name": "bench"})
    fixed = fixed_pass_cost(cfg)
    t0 = time.perf_counter()
    run_augment(cfg)
    wall = time.perf_counter() - t0
    stats = json.loads((Path(out) / "bench" / "stats.json").read_text())
    timing = stats["timing"]
    passes = timing["passes"]
    # Results stream back in large batches, so "time to first result" is most of a small pass; the
    # fixed cost of a pass (engine start-up and teardown) is measured instead with a 1-request pass.
    streaming = sum(max(0.0, p["seconds"] - fixed) for p in passes)
    n = stats["totals"]["candidates"]
    return {
        "engine": engine, "seeds": stats["seeds"]["processed"], "candidates": n,
        "rewrites_rejected": stats["totals"]["rewrites_rejected"],
        "tokens_in": stats["totals"]["tokens_in"], "tokens_out": stats["totals"]["tokens_out"],
        "wall_s": round(wall, 1),
        "candidates_per_s": round(n / wall, 3),
        "candidates_per_s_streaming": round(n / streaming, 3) if streaming > 0 else None,
        "tokens_out_per_s_streaming": round(stats["totals"]["tokens_out"] / streaming, 1) if streaming > 0 else None,
        "time": {"passes": len(passes), "fixed_cost_per_pass_s": round(fixed, 1),
                 "fixed_s": round(len(passes) * fixed, 1), "marginal_generation_s": round(streaming, 1),
                 "outside_generation_s": round(wall - timing["generation_s"], 1)},
        "passes": passes,
    }


def fixed_pass_cost(cfg) -> float:
    """Seconds for a generation pass of one request: the per-pass cost of starting the engine."""
    from metamath_ray.augment import cot
    from metamath_ray.pipeline.augment import generate
    from metamath_ray.ray_setup import init_from_config

    init_from_config(cfg.ray, cfg.engine)
    row = {"seed_id": "bench/0", "prompt": cot.solve_prompt("What is 2 + 3?", "gsm8k"), "sample_seed": 1,
           "max_tokens": cfg.sampling.max_tokens}
    t0 = time.perf_counter()
    list(generate([row], cfg.engine, cfg.sampling))
    return time.perf_counter() - t0


def _tokenizer():
    from transformers import LlamaTokenizer

    return LlamaTokenizer.from_pretrained(str(LLAMA2_TOKENIZER_DIR))


def measure_tokens(n_per_dataset: int) -> dict:
    """Mean LLaMA-2 tokens per request and per response, from our prompts and reference solutions."""
    import re

    from metamath_ray.augment import cot, rephrase
    from metamath_ray.seeds import load_seeds
    from metamath_ray.augment.config import SeedSource

    tok = _tokenizer()
    shared = ROOT.parent / "shared" / "data"
    sources = [SeedSource(path=str(shared / "gsm8k" / "train.jsonl"), dataset="gsm8k"),
               SeedSource(path=str(shared / "math" / "train.jsonl"), dataset="math")]
    sources = [s for s in sources if Path(s.path).exists()] or [SeedSource(path="bundled:gsm8k"), SeedSource(path="bundled:math")]
    seeds = load_seeds(sources, limit=n_per_dataset).seeds
    out: dict = {}
    for ds in ("gsm8k", "math"):
        rows = [s for s in seeds if s["dataset"] == ds]
        if not rows:
            continue
        solve = [len(tok(cot.solve_prompt(s["question"], ds)).input_ids) for s in rows]
        prefix = len(tok(cot.solve_prompt("", ds)).input_ids)
        rewrite = [len(tok(rephrase.rewrite_prompt(s)).input_ids) for s in rows]
        body = [re.sub(r"<<[^>]*>>", "", s["solution"].split("####")[0]) + f"\nThe answer is: {s['answer']}" for s in rows]
        response = [len(tok(b).input_ids) for b in body]
        question = [len(tok(s["question"]).input_ids) for s in rows]
        out[ds] = {"seeds": len(rows), "solve_prompt_tokens": statistics.mean(solve),
                   "shared_fewshot_prefix_tokens": prefix, "rewrite_prompt_tokens": statistics.mean(rewrite),
                   "response_tokens": statistics.mean(response), "question_tokens": statistics.mean(question)}
    return out


def paper_estimate(tokens: dict, accept: dict, rewrite_valid: float, out_tok_s: float, prefill_tok_s: float) -> dict:
    """Requests, tokens and H100-hours to end with METAMATHQA's counts of accepted records."""
    rows, total_out, total_prefill = [], 0.0, 0.0
    for (ds, aug), want in METAMATHQA.items():
        t = tokens[ds]
        rate = accept[(ds, aug)]
        solves = want / rate
        out_tokens = solves * t["response_tokens"]
        # prefix caching: the few-shot prefix is computed once per replica, only the question is new
        prefill = solves * (t["solve_prompt_tokens"] - t["shared_fewshot_prefix_tokens"])
        if aug in ("Rephrasing", "SV"):  # one rewrite request per validated variant (rejected ones too)
            rewrites = solves / 2 / rewrite_valid  # k=2 accepted chains of thought per kept rewrite
            out_tokens += rewrites * t["question_tokens"] * 1.2
            prefill += rewrites * t["rewrite_prompt_tokens"]
        total_out += out_tokens
        total_prefill += prefill
        rows.append({"dataset": ds, "aug": aug, "target_records": want, "acceptance": rate,
                     "solve_requests": round(solves), "output_tokens": round(out_tokens), "prefill_tokens": round(prefill)})
    hours = total_out / out_tok_s / 3600 + total_prefill / prefill_tok_s / 3600
    return {"rows": rows, "output_tokens": round(total_out), "prefill_tokens": round(total_prefill),
            "h100_hours": round(hours, 1), "h100_hours_at_half_throughput": round(2 * hours, 1),
            "assumptions": {"output_tokens_per_s_per_h100": out_tok_s, "prefill_tokens_per_s_per_h100": prefill_tok_s,
                            "rewrite_valid_fraction": rewrite_valid,
                            "acceptance": {f"{d}/{a}": r for (d, a), r in accept.items()}}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="vllm,hf")
    ap.add_argument("--seeds", type=int, default=24, help="bundled seeds in all (half GSM8K, half MATH)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--token-sample", type=int, default=500, help="seeds per dataset for token counts")
    ap.add_argument("--gsm8k-accept", type=float, default=0.665, help="per-sample acceptance, GSM8K forward")
    ap.add_argument("--math-accept", type=float, default=0.198, help="per-sample acceptance, MATH forward")
    ap.add_argument("--backward-factor", type=float, default=0.7, help="FOBAR/SV acceptance = forward x this")
    ap.add_argument("--rewrite-valid", type=float, default=0.9)
    ap.add_argument("--out-tok-s", type=float, default=12_500.0, help="vLLM output tokens/s, 8B bf16, 1xH100")
    ap.add_argument("--prefill-tok-s", type=float, default=100_000.0)
    ap.add_argument("--paper-only", action="store_true")
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    result: dict = {"measured": [], "command": " ".join(sys.argv)}
    if not args.paper_only:
        import ray

        for engine in [e for e in args.engines.split(",") if e]:
            result["measured"].append(measure_engine(engine, args.seeds, args.max_tokens))
            ray.shutdown()  # each engine gets a fresh local Ray

    tokens = measure_tokens(args.token_sample)
    accept = {}
    for (ds, aug) in METAMATHQA:
        fwd = args.gsm8k_accept if ds == "gsm8k" else args.math_accept
        accept[(ds, aug)] = fwd * (args.backward_factor if aug in ("FOBAR", "SV") else 1.0)
    result["tokens"] = tokens
    result["paper"] = paper_estimate(tokens, accept, args.rewrite_valid, args.out_tok_s, args.prefill_tok_s)

    print("\n| engine | seeds | candidates | wall s | cand/s | cand/s past start-up | passes | fixed s/pass | generation past start-up s | outside generation s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in result["measured"]:
        t = m["time"]
        print(f"| {m['engine']} | {m['seeds']} | {m['candidates']} | {m['wall_s']} | {m['candidates_per_s']} | "
              f"{m['candidates_per_s_streaming']} | {t['passes']} | {t['fixed_cost_per_pass_s']} | {t['marginal_generation_s']} | {t['outside_generation_s']} |")
    p = result["paper"]
    print("\nPaper estimate, MetaMathQA-395K with a 7B teacher on H100s (vLLM):")
    print("| dataset | aug | records | acceptance | solve requests | output tokens |")
    print("|---|---|---|---|---|---|")
    for r in p["rows"]:
        print(f"| {r['dataset']} | {r['aug']} | {r['target_records']} | {r['acceptance']:.3f} | {r['solve_requests']} | {r['output_tokens']:.3g} |")
    print(f"\ntotal: {p['output_tokens']:.3g} output tokens, {p['prefill_tokens']:.3g} prefill tokens "
          f"-> {p['h100_hours']} H100-hours ({p['h100_hours_at_half_throughput']} at half the published throughput)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
