"""The augment job: seeds -> (rewrites) -> K chains of thought -> verification -> shards.

Work is cut into chunks of `chunk_seeds` seeds. A chunk's generated candidates are committed as
`candidates/part-NNNNN.parquet` once every round for it is done; a rerun of the same run name skips
committed chunks (resume) and never writes one twice. When all chunks are committed, `finalize`
deduplicates and decontaminates, writes `data/` and `rejected/` shards, `metamathqa.json`,
`quarantine/`, `stats.json` and, last, `manifest.json`.

The stage knows augmentations only through their protocol (`augment/protocol.py`, registered in
`augment/registry.py`) and engines only through the engine registry. Ray is used at the edges: the
engines are long-lived replicas started once per job (engines/service.py); each generation pass
sends them batches and judges each result in a Ray task as it streams back.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Callable, Iterable, Iterator

from metamath_ray.augment import budget
from metamath_ray.augment.base import Rejection, Variant, Verdict
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.augment.protocol import cut_at_stop
from metamath_ray.augment.registry import AugBudgets, augmentation
from metamath_ray.records import (
    CANDIDATE_SCHEMA,
    QUARANTINE_SCHEMA,
    REWRITE_SAMPLE_IDX,
    candidate_row,
    config_hash,
    sampling_seed,
    to_table,
)
from metamath_ray.engines import preflight
from metamath_ray.seeds import load_seeds
from metamath_ray.storage import RunStore, with_retries

log = logging.getLogger(__name__)

VariantKey = tuple  # (seed_id, aug, variant)

# ---------------------------------------------------------------------------------------------
# Pure planning: what to ask the engine, and what its answers mean


def direct_variants(seed: dict, aug: str, cfg: AugmentConfig) -> list[Variant]:
    """Variants an augmentation builds without the LLM, capped at `aug.<name>.max_variants`."""
    found = augmentation(aug).variants(seed)
    limit = cfg.aug[aug].max_variants
    return found[:limit] if limit else found


def rewrite_rows(seed: dict, aug: str, cfg: AugmentConfig) -> list[dict]:
    """Rows asking the engine for one seed's rewrites (Rephrasing, SV), capped at max_variants."""
    settings = cfg.aug[aug]
    requests = augmentation(aug).rewrite_requests(seed, settings)[: settings.max_variants or None]
    return [
        {"seed_id": seed["seed_id"], "aug": aug, "variant": int(variant), "prompt": prompt,
         "sample_seed": sampling_seed(cfg.rewrite_sampling.seed, "rewrite", seed["seed_id"], aug, variant)}
        for variant, prompt in requests
    ]


def solve_rows(variant: Variant, seed: dict, start: int, count: int, rnd: int, cfg: AugmentConfig, chunk: int) -> list[dict]:
    """Samples `start .. start+count-1` of one variant (one row each: the engines keep one output per row)."""
    prompt = augmentation(variant.aug).solve_prompt(variant)
    return [
        {"chunk": chunk, "seed_id": variant.seed_id, "dataset": variant.dataset, "aug": variant.aug,
         "variant": variant.variant, "sample_idx": i, "round": rnd, "query": variant.query,
         "original_question": variant.original_question, "expected": variant.expected,
         "level": seed.get("level", ""), "type": seed.get("type", ""), "prompt": prompt,
         "sample_seed": sampling_seed(cfg.sampling.seed, variant.seed_id, variant.aug, variant.variant, i)}
        for i in range(start, start + count)
    ]


def judge_rows(rows: list[dict], model: str, engine_key: str, prompt_version: str,
               budgets: AugBudgets | None = None, check_steps: bool = True) -> list[dict]:
    """Engine output rows -> candidate rows (pure; runs inside Ray workers, never on the driver:
    PoT programs run in sandbox child processes). `prompt_version` is the run's; each row records
    it with its augmentation's solve-prompt version. `check_steps` (verify.steps): a right final
    answer reached through a wrong arithmetic step is rejected as `wrong_step`."""
    from metamath_ray.answers import warm_up_once

    warm_up_once()  # a fresh worker's first comparison must not pay sympy's import inside its budget
    budgets = budgets or AugBudgets()
    out = []
    for r in rows:
        aug = augmentation(r["aug"])
        error = r.get("engine_error") or None  # the request failed after every retry: nothing to judge
        verdict = (Verdict(False, None, "engine_error", "") if error else
                   aug.judge(r.get("generated_text") or "", r["expected"], r["dataset"], budgets[r["aug"]]))
        if check_steps:
            verdict = aug.check_steps(verdict)
        row = candidate_row(
            seed_id=r["seed_id"], dataset=r["dataset"], aug=r["aug"], stage="solve", variant=r["variant"],
            sample_idx=r["sample_idx"], round=r["round"], query=r["query"],
            original_question=r["original_question"], response=verdict.response, expected=r["expected"],
            predicted=verdict.predicted, accepted=verdict.accepted, reject_reason=verdict.reject_reason,
            reject_detail=error or verdict.detail, level=r.get("level", ""), type=r.get("type", ""),
            tokens_in=r.get("num_input_tokens") or 0, tokens_out=r.get("num_generated_tokens") or 0,
            model=model, prompt_version=f"{prompt_version}/{aug.prompt_version}", engine_key=engine_key,
        )
        out.append({**row, "chunk": int(r["chunk"])})
    return out


def rewrite_rejection(seed: dict, row: dict, text: str, rejection: Rejection, cfg: AugmentConfig, engine_key: str) -> dict:
    """A refused rewrite is a candidate too (stage "rewrite"), so every request is accounted for."""
    return candidate_row(
        seed_id=seed["seed_id"], dataset=seed["dataset"], aug=row["aug"], stage="rewrite", variant=row["variant"],
        sample_idx=REWRITE_SAMPLE_IDX, round=0, query=text, original_question=seed["question"], response="",
        expected=seed["answer"], predicted=None, accepted=False, reject_reason=f"rewrite_{rejection.reason}",
        reject_detail=rejection.detail, level=seed.get("level", ""), type=seed.get("type", ""),
        tokens_in=row.get("num_input_tokens") or 0, tokens_out=row.get("num_generated_tokens") or 0,
        model=cfg.engine.model, prompt_version=cfg.prompt_version, engine_key=engine_key,
    )


def parse_rewrite_row(seed: dict, row: dict) -> tuple[str, Variant | Rejection]:
    """One rewrite pass result -> (the rewrite text, its variant or why it was refused). Runs on the
    driver, where rewrite checks (SV: does the statement state the answer?) may compare symbolically."""
    from metamath_ray.answers import warm_up_once

    warm_up_once()  # sympy's first import must not eat a symbolic check's time budget and refuse a right rewrite
    aug = augmentation(row["aug"])
    text = cut_at_stop(row.get("generated_text") or "", aug.rewrite_stop)
    if row.get("engine_error"):
        return text, Rejection("engine_error", row["engine_error"])
    return text, aug.parse_rewrite(seed, text, int(row["variant"]))


def solve_sampling(cfg: AugmentConfig):
    """The chains-of-thought sampling: the config's stop strings plus every selected augmentation's."""
    stops = [s for name in cfg.augmentations for s in augmentation(name).solve_stop]
    return cfg.sampling.model_copy(update={"stop": list(dict.fromkeys([*cfg.sampling.stop, *stops]))})


def judge_concurrency(cfg: AugmentConfig, rows: list[dict]) -> int | None:
    """Judging tasks at once: bounded when an augmentation's judge is heavy (PoT runs programs)."""
    limits = [augmentation(a).judge_concurrency(cfg.aug[a]) for a in {r["aug"] for r in rows}]
    limits = [n for n in limits if n]
    return min(limits) if limits else None


# ---------------------------------------------------------------------------------------------
# Ray edge: one generation pass


def generate(rows: list[dict], engine_cfg, sampling, *,
             post: Callable[[list[dict]], list[dict]] | None = None,
             post_concurrency: int | None = None) -> Iterable[dict]:
    """Run `rows` through the engine (and `post` inside Ray workers, at most `post_concurrency` tasks
    at once when set); yield result rows as they complete. Inside a job's `engine_scope` every pass on
    one engine configuration reuses the replicas its first pass started (engines/service.py)."""
    from metamath_ray.engines.service import generate as generate_on_replicas

    return generate_on_replicas(rows, engine_cfg, sampling, post=post, post_concurrency=post_concurrency)


def _warm_judging_worker() -> None:
    from metamath_ray.answers import warm_up_once

    warm_up_once()


def warm_up_judging(max_workers: int = 4) -> None:
    """Start judging workers while the engines load: a cold Ray worker spends seconds importing this
    module and the judging stack (sympy), which would otherwise delay round 0's first judged result
    (measured: 10 s of a scripted job's round 0, then 0.03 s for later rounds)."""
    import ray

    task = ray.remote(_warm_judging_worker)
    for _ in range(max(1, min(max_workers, int(ray.cluster_resources().get("CPU", 1))))):
        task.remote()  # nothing waits for them: an idle worker stays in the pool, imports done


# ---------------------------------------------------------------------------------------------
# The job


def shard_name(kind: str, chunk: int) -> str:
    return f"{kind}/part-{chunk:05d}.parquet"


class AugmentJob:
    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.store = RunStore(cfg.output, cfg.run_name)
        self.engine_key = f"{cfg.engine.key()}:{config_hash(cfg)}"
        self.timings: list[dict] = []  # one entry per generation pass, for stats.json

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> dict:
        from metamath_ray.engines.service import engine_scope
        from metamath_ray.pipeline.finalize import finalize
        from metamath_ray.ray_setup import start_ray

        started = time.time()
        cfg = self.cfg
        done = self._check_resumable()
        if done is not None:
            return done
        preflight(cfg.engine)  # e.g. chat mode without a chat template: one line before any work
        loaded = load_seeds(cfg.seeds, limit=cfg.limit, max_question_chars=cfg.max_question_chars)
        log.info("%d seed rows read: %d seeds, %d quarantined", loaded.rows_read, len(loaded.seeds), len(loaded.quarantine))
        self.store.commit_table("quarantine/part-00000.parquet", to_table(loaded.quarantine, QUARANTINE_SCHEMA))
        chunks = [loaded.seeds[i:i + cfg.chunk_seeds] for i in range(0, len(loaded.seeds), cfg.chunk_seeds)]
        pending = {i: c for i, c in enumerate(chunks) if not self.store.exists(shard_name("candidates", i))}
        if len(pending) < len(chunks):
            log.info("resuming: %d of %d chunks already committed", len(chunks) - len(pending), len(chunks))
        damaged = self._damaged_chunks() if len(pending) < len(chunks) else {}
        if pending or damaged:
            start_ray(cfg.ray, cfg.engine)
            warm_up_judging()
        # Engines start on the first pass and serve every later one; leaving the scope (done, or an
        # error anywhere in it) kills them and frees their GPUs before finalize.
        with engine_scope():
            if damaged:
                self.repair_chunks(damaged, chunks)
            if pending:
                ids = sorted(pending)
                for i in range(0, len(ids), cfg.chunks_per_wave):
                    self.run_chunks({c: pending[c] for c in ids[i:i + cfg.chunks_per_wave]})
        return finalize(self.store, cfg, loaded, n_chunks=len(chunks), timings=self.timings, wall_start=started)

    def _check_resumable(self) -> dict | None:
        """The manifest of a finished run with this config; refuse a run name used by another config."""
        cfg, store, digest = self.cfg, self.store, config_hash(self.cfg)
        if store.exists("manifest.json"):
            manifest = store.read_json("manifest.json")
            failed = int(manifest.get("totals", {}).get("engine_errors") or 0)
            if manifest.get("config_hash") == digest and failed:
                # Complete but for requests that failed after every retry: retry exactly those. The run is
                # incomplete again until the repaired chunks are committed and finalize has rerun.
                log.info("%s: retrying %d requests that failed with engine_error", store.uri, failed)
                with_retries(lambda: store.fs.delete_file(store.path("manifest.json")))
            elif manifest.get("config_hash") == digest:
                log.info("%s is already complete (manifest.json present)", store.uri)
                return manifest
            else:
                raise RuntimeError(f"run {cfg.run_name!r} in {cfg.output} was completed with a different config; "
                                   "choose another run_name")
        prior = store.exists("run_config.json") and store.read_json("run_config.json")
        if prior and prior.get("config_hash") != digest:
            raise RuntimeError(f"run {cfg.run_name!r} in {cfg.output} was started with a different config; "
                               "rerun with the same config to resume, or choose another run_name")
        store.write_json("run_config.json", {"config_hash": digest, "config": cfg.model_dump(mode="json")})
        return None

    # -- one wave of chunks --------------------------------------------------------------------
    def run_chunks(self, chunks: dict[int, list[dict]]) -> None:
        """Generate every augmentation for `chunks` (chunk index -> seeds) and commit them."""
        seeds_by_id = {s["seed_id"]: s for c in chunks.values() for s in c}
        chunk_of = {s["seed_id"]: c for c, ss in chunks.items() for s in ss}
        results: dict[int, list[dict]] = defaultdict(list)
        variants = self._variants(seeds_by_id, chunk_of, results)
        for cand in self._solve(variants, seeds_by_id, chunk_of):
            results[int(cand.pop("chunk"))].append(cand)
        for chunk in sorted(chunks):
            rows = sorted(results.get(chunk, []), key=lambda r: r["id"])
            info = self.store.commit_table(shard_name("candidates", chunk), to_table(rows, CANDIDATE_SCHEMA))
            log.debug("committed %s: %d candidates", info.path, info.rows)

    def _variants(self, seeds_by_id: dict, chunk_of: dict, results: dict[int, list[dict]]) -> list[Variant]:
        """Every question variant of the wave: direct ones, then one LLM pass for the rewrites (a refused
        rewrite is recorded in `results` as a rejected candidate)."""
        cfg = self.cfg
        variants: list[Variant] = []
        requests: list[dict] = []
        for seed in seeds_by_id.values():
            for aug in cfg.augmentations:
                if augmentation(aug).needs_rewrite:
                    requests.extend(rewrite_rows(seed, aug, cfg))
                else:
                    variants.extend(direct_variants(seed, aug, cfg))
        return variants + self._rewrite(requests, seeds_by_id, chunk_of, results)

    def _rewrite(self, requests: list[dict], seeds_by_id: dict, chunk_of: dict, results: dict[int, list[dict]]) -> list[Variant]:
        """One LLM pass for rewrite requests: the variants parsed; refused or failed rewrites go to `results`."""
        cfg = self.cfg
        if not requests:
            return []
        log.info("rewriting: %d rewrite requests", len(requests))
        variants = []
        for row in self._timed("rewrite", requests, generate(requests, cfg.engine, cfg.rewrite_sampling)):
            seed = seeds_by_id[row["seed_id"]]
            text, parsed = parse_rewrite_row(seed, row)
            if isinstance(parsed, Rejection):
                results[chunk_of[seed["seed_id"]]].append(rewrite_rejection(seed, row, text, parsed, cfg, self.engine_key))
            else:
                variants.append(parsed)
        return variants

    def _solve(self, variants: list[Variant], seeds_by_id: dict, chunk_of: dict,
               retry_rows: list[dict] | None = None) -> Iterator[dict]:
        """Chains of thought in rounds, sized by `cfg.adaptive` (augment/budget.py): round 0 asks k per
        variant; `uniform` resamples variants short of k accepted until k or max_attempts; `prop2diff`
        resamples each variant towards an accepted-answer target proportional to its round-0 failure
        rate within the wave's budget, so it sizes rounds only once every round-0 answer of the wave is
        judged (a round is one pass, read to its end before the next is sized). Sample indices continue
        per variant, so ids and seeds do not depend on the mode's timing. `retry_rows` (failed requests sent again) ride along in the first pass, outside the
        budget. Yields judged candidate rows (with their chunk)."""
        cfg = self.cfg
        tallies = {(v.seed_id, v.aug, v.variant): budget.VariantTally(cfg.aug[v.aug].k, cfg.aug[v.aug].max_attempts)
                   for v in variants}
        todo = {(v.seed_id, v.aug, v.variant): v for v in variants}
        rnd = 0
        wanted = budget.round_requests(cfg.adaptive, tallies, rnd, cfg.budget_per_variant)
        while wanted or (rnd == 0 and retry_rows):
            rows = list(retry_rows or []) if rnd == 0 else []
            for key, n in wanted.items():
                v, tally = todo[key], tallies[key]
                rows.extend(solve_rows(v, seeds_by_id[v.seed_id], tally.sent, n, rnd, cfg, chunk_of[v.seed_id]))
                tally.sent += n
            log.info("round %d: %d chains of thought for %d questions", rnd, len(rows), len(wanted))
            for cand in self._judged(rows, f"solve round {rnd}"):
                tally = tallies.get((cand["seed_id"], cand["aug"], cand["variant"]))
                if tally is not None:  # a retried row of another variant is outside the budget
                    tally.record(rnd, judged=cand["reject_reason"] != budget.ENGINE_ERROR,
                                 accepted=bool(cand["accepted"]))
                yield cand
            rnd += 1
            wanted = budget.round_requests(cfg.adaptive, tallies, rnd, cfg.budget_per_variant)

    def _judged(self, rows: list[dict], name: str) -> Iterator[dict]:
        """One generation pass over solve rows, judged inside Ray workers; yields candidate rows."""
        cfg = self.cfg
        model, engine_key, version, budgets = cfg.engine.model, self.engine_key, cfg.prompt_version, cfg.aug
        judged = generate(rows, cfg.engine, solve_sampling(cfg),
                          post=lambda batch, steps=cfg.verify.steps: judge_rows(batch, model, engine_key, version, budgets, steps),
                          post_concurrency=judge_concurrency(cfg, rows))
        return self._timed(name, rows, judged)

    # -- retrying engine errors of committed chunks ---------------------------------------------
    def _damaged_chunks(self) -> dict[int, tuple[int, list[dict]]]:
        """Committed chunks whose newest version holds engine_error candidates: chunk -> (version, rows)."""
        from metamath_ray.pipeline.finalize import current_candidate_shards, is_engine_error

        damaged = {}
        for name, (version, path) in current_candidate_shards(self.store).items():
            rows = self.store.read_table(path).to_pylist()
            if any(is_engine_error(r) for r in rows):
                damaged[int(name[len("part-"):-len(".parquet")])] = (version, rows)
        return damaged

    def repair_chunks(self, damaged: dict[int, tuple[int, list[dict]]], chunks: list[list[dict]]) -> None:
        """Retry exactly the engine_error candidates of committed chunks (same ids, same prompts and seeds)
        and commit each chunk again, those rows replaced, as its next version (written once, atomically)."""
        from metamath_ray.pipeline.finalize import is_engine_error, repair_shard_name

        ids = sorted(damaged)
        for start in range(0, len(ids), self.cfg.chunks_per_wave):
            wave = ids[start:start + self.cfg.chunks_per_wave]
            seeds_by_id = {s["seed_id"]: s for c in wave for s in chunks[c]}
            chunk_of = {s["seed_id"]: c for c in wave for s in chunks[c]}
            failed = [r for c in wave for r in damaged[c][1] if is_engine_error(r)]
            log.info("retrying %d engine_error requests of %d committed chunks", len(failed), len(wave))
            results: dict[int, list[dict]] = defaultdict(list)
            self._regenerate(failed, seeds_by_id, chunk_of, results)
            for c in wave:
                version, rows = damaged[c]
                # A failed row is replaced by its retry's row (same id); a rewrite that now parses has no row
                # of its own (its variant's chains of thought are the new rows).
                merged = {r["id"]: r for r in rows if not is_engine_error(r)}
                merged.update((r["id"], r) for r in results.get(c, []))
                table = to_table(sorted(merged.values(), key=lambda r: r["id"]), CANDIDATE_SCHEMA)
                info = self.store.commit_table(repair_shard_name(f"part-{c:05d}.parquet", version + 1), table)
                log.debug("committed %s: %d candidates", info.path, info.rows)

    def _regenerate(self, failed: list[dict], seeds_by_id: dict, chunk_of: dict, results: dict[int, list[dict]]) -> None:
        """New candidate rows for failed ones, into `results`: a failed rewrite is requested again (and a
        variant it now yields is solved as any new variant); a failed chain of thought is sampled again
        with its own sample index, round and seed. Nothing else is regenerated."""
        cfg = self.cfg
        requests = [q for r in failed if r["stage"] == "rewrite"
                    for q in rewrite_rows(seeds_by_id[r["seed_id"]], r["aug"], cfg) if q["variant"] == r["variant"]]
        variants = self._rewrite(requests, seeds_by_id, chunk_of, results)
        rows = [solve_rows(self._variant_of(r, seeds_by_id[r["seed_id"]]), seeds_by_id[r["seed_id"]], r["sample_idx"],
                           1, r["round"], cfg, chunk_of[r["seed_id"]])[0]
                for r in failed if r["stage"] == "solve"]
        for cand in self._solve(variants, seeds_by_id, chunk_of, retry_rows=rows):
            results[int(cand.pop("chunk"))].append(cand)

    def _variant_of(self, row: dict, seed: dict) -> Variant:
        """The question variant a stored candidate answered: rebuilt from the seed when the augmentation
        builds it without the LLM, else from the candidate's own query (the rewrite it was given)."""
        if augmentation(row["aug"]).needs_rewrite:
            return Variant(seed_id=row["seed_id"], dataset=row["dataset"], aug=row["aug"], variant=int(row["variant"]),
                           query=row["query"], expected=row["expected"], original_question=row["original_question"])
        for v in direct_variants(seed, row["aug"], self.cfg):
            if v.variant == row["variant"]:
                return v
        raise RuntimeError(f"candidate {row['id']}: variant {row['variant']} of {row['aug']} no longer exists")

    def _timed(self, name: str, requests: list, stream: Iterable[dict]) -> Iterator[dict]:
        """Pass `stream` through with a progress display, recording where the pass's time goes: until
        its first result (engine start-up, model load, first batch) and streaming the rest."""
        from metamath_ray.engines.service import engine_starts
        from metamath_ray.logs import track

        start, starts_before = time.perf_counter(), engine_starts()
        first = None
        tokens = lambda row: int(row.get("num_generated_tokens") or row.get("tokens_out") or 0)  # noqa: E731
        for row in track(stream, log, name, len(requests), tokens=tokens):
            if first is None:
                first = time.perf_counter() - start
            yield row
        total = time.perf_counter() - start
        self.timings.append({"pass": name, "requests": len(requests), "seconds": round(total, 2),
                             "to_first_result_s": round(first if first is not None else total, 2),
                             "engine_starts": engine_starts() - starts_before})


def run_augment(cfg: AugmentConfig) -> dict:
    """Run (or resume) the augment job of `cfg`; returns its manifest."""
    return AugmentJob(cfg).run()


__all__ = ["AugmentJob", "run_augment", "judge_rows", "generate"]
