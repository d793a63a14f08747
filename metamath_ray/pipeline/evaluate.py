"""The evaluation graph on Ray Data: questions -> prompts -> engine replicas -> scoring -> Parquet + report.

Read top to bottom, `run_evaluate` is the whole stage:

    build_requests (driver, small)   one row per response to generate
    plan_passes                      one engine pass per decoding config, run one after the other so
                                     they never compete for the same GPUs: greedy answers together
                                     with hybrid mode's programs (both greedy: one engine start),
                                     then the k samples
    run_pass (per pass)              from_items -> engine stage (registry: vllm / hf / scripted
                                     replicas) -> map_batches(score) (CPU workers, sympy, sandbox)
                                     -> batches stream back to the driver through a progress display
    write_samples                    <run>/samples/<pass>.parquet: every response, both scorers
    build_report + write_report      report.json (written last: it marks a finished run), report.md, plots/
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from metamath_ray import storage
from metamath_ray.engines.pricing import cost_usd
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.evaluate.datasets import dataset_spec, load_items
from metamath_ray.evaluate.prompts import build_eval_prompt, default_stop, fewshot_prefix
from metamath_ray.evaluate.scoring import score_response
from metamath_ray.records import sampling_seed

if TYPE_CHECKING:
    import pyarrow as pa

    from metamath_ray.engines.config import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)

# Columns the driver needs for metrics; the texts stay in the Parquet files.
METRIC_COLUMNS = [
    "dataset", "item_id", "type", "level", "decoding", "sample_idx", "extracted", "extracted_metamath",
    "correct_strict", "correct_metamath", "vote_key", "vote_key_metamath",
    "num_input_tokens", "num_generated_tokens", "scored_at", "pot_status", "engine_error",
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
        ("engine_error", pa.string()),  # the request failed after every retry (openai engine): scored wrong
        ("score_error", pa.string()),  # "<scorer>: why" it is wrong uncompared (e.g. MetaMath's script crashes)
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
        # A failed request has an empty response, so both scorers count it wrong; the reason stays visible.
        record["engine_error"] = _plain(row.get("engine_error")) or None
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


@dataclass(frozen=True)
class EnginePass:
    """One engine start: every request of `decodings` is generated with the same `sampling`."""

    name: str  # names the pass's samples file: samples/<name>.parquet
    decodings: tuple[str, ...]
    sampling: SamplingConfig


def plan_passes(cfg: EvaluateConfig, stop: list[str]) -> list[EnginePass]:
    """Greedy answers and hybrid programs share a temperature-0 pass; the k samples get their own."""
    greedy = cfg.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0, "stop": stop})
    return [
        EnginePass("greedy", ("greedy", "pot"), greedy),
        EnginePass("sample", ("sample",), cfg.sampling.model_copy(update={"stop": stop})),
    ]


def scored_stream(cfg: EvaluateConfig, engine: EngineConfig, sampling: SamplingConfig, rows: list[dict]):
    """The lazy Ray Data graph of one pass: requests -> engine replicas -> scored sample rows."""
    import ray

    from metamath_ray.engines import build_generation_stage

    generated = build_generation_stage(engine, sampling)(ray.data.from_items(rows))
    if not any(r["decoding"] == "pot" for r in rows):
        return generated.map_batches(_score_batch, batch_format="numpy", zero_copy_batch=False)
    # programs run in sandbox child processes: bounded Ray tasks, never the driver
    from metamath_ray.sandbox import SandboxLimits

    return generated.map_batches(
        _score_batch, batch_format="numpy", zero_copy_batch=False, concurrency=cfg.sandbox_concurrency,
        fn_kwargs={"pot_limits": SandboxLimits(wall_s=cfg.sandbox_wall_s)})


def run_pass(cfg: EvaluateConfig, engine: EngineConfig, engine_pass: EnginePass, rows: list[dict]):
    """Generate and score one pass. Scored batches stream back to the driver as they finish and
    advance the pass's progress display; returns the pass's sample table and a record of the pass."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from metamath_ray.logs import progress

    started = time.perf_counter()
    batches = []
    with progress(log, f"evaluate {engine_pass.name}", len(rows)) as bar:
        for batch in scored_stream(cfg, engine, engine_pass.sampling, rows).iter_batches(
                batch_size=None, batch_format="pyarrow"):
            batches.append(batch)
            bar.update(batch.num_rows, tokens=pc.sum(batch["num_generated_tokens"]).as_py() or 0)
    record = {
        "name": engine_pass.name,
        "decodings": [d for d in engine_pass.decodings if any(r["decoding"] == d for r in rows)],
        "temperature": engine_pass.sampling.temperature,
        "requests": len(rows),
        "wall_s": time.perf_counter() - started,
    }
    return pa.concat_tables(batches) if batches else sample_schema().empty_table(), record


def generate_and_score(cfg: EvaluateConfig, engine: EngineConfig, requests: list[dict], stop: list[str]):
    """Every pass with requests, one after the other: {pass name: sample table}, and the pass records."""
    tables: dict[str, pa.Table] = {}
    records: list[dict] = []
    for engine_pass in plan_passes(cfg, stop):
        rows = [r for r in requests if r["decoding"] in engine_pass.decodings]
        if not rows:
            continue
        log.info("%d %s requests on %s (%s)", len(rows), engine_pass.name, cfg.engine.model, engine.kind)
        tables[engine_pass.name], record = run_pass(cfg, engine, engine_pass, rows)
        records.append(record)
    return tables, records


def write_samples(tables: dict[str, pa.Table], samples_uri: str) -> None:
    """One Parquet file per pass; a rerun replaces the folder, never mixes with an older run."""
    storage.delete_dir(samples_uri)
    for name, table in tables.items():
        storage.write_bytes(storage.join(samples_uri, f"{name}.parquet"), storage.table_to_parquet_bytes(table))


def throughput_summary(metric_rows: list[dict], wall_s: float, passes: list[dict], engine=None) -> dict[str, Any]:
    """Speed and volume; with `engine` prices (an API teacher), what the evaluation cost."""
    generated_tokens = sum(int(r["num_generated_tokens"]) for r in metric_rows)
    input_tokens = sum(int(r["num_input_tokens"] or 0) for r in metric_rows)
    return {
        "samples": len(metric_rows),
        "wall_s": wall_s,
        "samples_per_s": len(metric_rows) / wall_s if wall_s > 0 else 0.0,
        "input_tokens": input_tokens,
        "generated_tokens": generated_tokens,
        "cost_usd": cost_usd(engine, input_tokens, generated_tokens),  # None without engine prices
        "generated_tokens_per_s": generated_tokens / wall_s if wall_s > 0 else 0.0,
        # per decoding, since each pass starts its own engine replicas
        "steady_samples_per_s": {
            decoding: steady_state_rate([r["scored_at"] for r in metric_rows if r["decoding"] == decoding])
            for decoding in sorted({r["decoding"] for r in metric_rows})
        },
        "passes": passes,  # one entry per engine start
    }


def dataset_results(cfg: EvaluateConfig, metric_rows: list[dict]) -> dict[str, dict]:
    """Per dataset, in the order asked for: CoT metrics from the CoT rows, and in hybrid mode the
    program-with-fallback table from both."""
    from metamath_ray.evaluate.summary import summarize

    results = summarize([r for r in metric_rows if r["decoding"] != "pot"])
    if cfg.mode == "hybrid":
        from metamath_ray.evaluate.hybrid import hybrid_summary

        for name, ds in results.items():
            ds["hybrid"] = hybrid_summary([r for r in metric_rows if r["dataset"] == name])
    return {name: results[name] for name in cfg.datasets if name in results}


def build_report(cfg: EvaluateConfig, engine_kind: str, stop: list[str], metric_rows: list[dict],
                 throughput: dict[str, Any], outputs: dict[str, str]) -> dict[str, Any]:
    from metamath_ray.records import versions

    return {
        "report_version": 1,
        "run_name": cfg.run_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.engine.model,
        "engine": engine_kind,
        "template": cfg.template,
        "config": cfg.model_dump(mode="json"),
        "stop": stop,
        "sources": {name: cfg.paths.get(name, "bundled") for name in cfg.datasets},
        "datasets": dataset_results(cfg, metric_rows),
        "throughput": throughput,
        "engine_errors": sum(1 for r in metric_rows if r.get("engine_error")),  # requests failed after every retry
        "versions": versions(),
        "outputs": outputs,
    }


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate `cfg.engine.model` on `cfg.datasets`; write samples, report and plots; return the report."""
    from metamath_ray.evaluate.model_source import materialize_model
    from metamath_ray.evaluate.report import write_report
    from metamath_ray.ray_setup import start_ray

    run_uri = storage.join(cfg.output, cfg.run_name)
    storage.ensure_reachable(run_uri)  # a wrong S3 endpoint fails now, not after the whole evaluation
    samples_uri = storage.join(run_uri, "samples")
    # the engine loads a local copy; the report names the model as the user gave it
    from metamath_ray.engines import engine_spec, preflight

    if engine_spec(cfg.engine.kind).loads_model:
        engine = cfg.engine.model_copy(update={"model": materialize_model(cfg.engine.model, cfg.model_cache_dir)})
    else:  # a server's model name (kind=openai): nothing to download
        engine = cfg.engine
    stop = cfg.stop if cfg.stop is not None else default_stop()
    requests = build_requests(cfg)
    preflight(engine)  # e.g. chat mode without a chat template: one line before Ray starts
    start_ray(cfg.ray, engine)

    started = time.perf_counter()
    tables, passes = generate_and_score(cfg, engine, requests, stop)
    wall_s = time.perf_counter() - started

    write_samples(tables, samples_uri)
    metric_rows = [row for table in tables.values() for row in table.select(METRIC_COLUMNS).to_pylist()]
    report = build_report(cfg, engine.kind, stop, metric_rows, throughput_summary(metric_rows, wall_s, passes, engine),
                          {"run": run_uri, "samples": samples_uri})
    write_report(report, run_uri)  # report.json last: it marks a finished evaluation
    log.info("report %s", storage.join(run_uri, "report.json"))
    return report
