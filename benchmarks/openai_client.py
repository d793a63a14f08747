"""The openai engine's client under a rate limit, with and without faults.

    unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 python benchmarks/openai_client.py'

The real engine stage (`engine.kind=openai`, a Ray Data actor on a local loopback Ray) sends N
requests to the fault-injecting OpenAI-compatible server of the tests (tests/fault_server.py, on
127.0.0.1 in this process), which answers at once. Measured at the server, from the arrival time of
every request:

- no faults, `engine.qps=Q`: achieved requests/s over the steady window (first to last arrival) and
  its ratio to Q (target >= 0.9); the end-to-end rate includes Ray Data start-up and is shown too;
- faults (429 with Retry-After, 500, a response slower than request_timeout_s, a connection dropped
  mid-body on a share of first attempts; some requests doomed to 503 on every attempt): retries
  (the rows' `engine_retries`), engine_error rows, and the faults the server injected.

Writes a table to stdout and benchmarks/results/openai_client.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "openai_client.json"

from tests.fault_server import FaultServer, hashed_faults  # noqa: E402


def _answer(question: str, body: dict) -> str:
    return "Two and two make four.\nThe answer is: 4"


def run_scenario(name: str, *, qps: float, n: int, fault_rate: float, doomed_every: int, concurrency: int) -> dict:
    import ray.data

    from metamath_ray.engines import build_generation_stage
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

    doomed = (lambda body: body.get("seed", 1) % doomed_every == 0) if doomed_every else (lambda body: False)
    with FaultServer(_answer, faults=hashed_faults(fault_rate, seed=name) if fault_rate else (lambda k: None),
                     doomed=doomed, slow_s=2.0, retry_after_s="1") as server:
        engine = EngineConfig(kind="openai", base_url=server.base_url, model="bench", qps=qps,
                              max_concurrent_requests=concurrency, max_retries=3, request_timeout_s=1.0,
                              batch_size=32)
        rows = [{"prompt": f"Question: what is 2+2? (request {i})\nAnswer:", "sample_seed": i + 1} for i in range(n)]
        started = time.monotonic()
        out = build_generation_stage(engine, SamplingConfig(max_tokens=16))(ray.data.from_items(rows)).take_all()
        wall = time.monotonic() - started
        arrivals = sorted(server.arrivals)
        faults = {k: v for k, v in server.stats.items() if k not in ("requests", "answered")}
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return {
        "scenario": name, "qps_limit": qps, "rows": n, "requests_sent": len(arrivals),
        "steady_requests_per_s": round(steady, 2), "ratio_to_qps": round(steady / qps, 3),
        "end_to_end_rows_per_s": round(n / wall, 2), "wall_s": round(wall, 2),
        "retries": int(sum(r["engine_retries"] for r in out)),
        "engine_errors": sum(1 for r in out if r["engine_error"]),
        "error_reasons": dict(Counter(r["engine_error"].split(" (gave up")[0] for r in out if r["engine_error"])),
        "faults_injected": faults,
        "answered": sum(1 for r in out if not r["engine_error"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qps", type=float, nargs="+", default=[10.0, 40.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="requests per scenario = qps x seconds")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--doomed-every", type=int, default=50, help="every Nth request fails on every attempt")
    args = parser.parse_args()

    from metamath_ray.ray_setup import init_ray

    init_ray(num_cpus=2)
    results = []
    for qps in args.qps:
        n = int(qps * args.seconds)
        results.append(run_scenario(f"no faults, qps {qps:g}", qps=qps, n=n, fault_rate=0.0, doomed_every=0,
                                    concurrency=32))
        results.append(run_scenario(f"faults {args.fault_rate:.0%}, qps {qps:g}", qps=qps, n=n,
                                    fault_rate=args.fault_rate, doomed_every=args.doomed_every, concurrency=32))
    header = f"{'scenario':<24} {'rows':>5} {'sent':>5} {'req/s':>7} {'/qps':>6} {'e2e/s':>6} {'retries':>7} {'errors':>6}  faults injected"
    print(header)
    for r in results:
        print(f"{r['scenario']:<24} {r['rows']:>5} {r['requests_sent']:>5} {r['steady_requests_per_s']:>7} "
              f"{r['ratio_to_qps']:>6} {r['end_to_end_rows_per_s']:>6} {r['retries']:>7} {r['engine_errors']:>6}  "
              f"{r['faults_injected']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "command": "python benchmarks/openai_client.py " + " ".join(sys.argv[1:]),
                                   "results": results}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
