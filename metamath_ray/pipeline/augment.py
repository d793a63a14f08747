"""The augment job: seeds -> (rewrites) -> K chains of thought -> verification -> shards.

Work is cut into chunks of `chunk_seeds` seeds. A chunk's generated candidates are committed as
`candidates/part-NNNNN.parquet` once every round for it is done; a rerun of the same run name skips
committed chunks (resume) and never writes one twice. When all chunks are committed, `finalize`
deduplicates and decontaminates, writes `data/` and `rejected/` shards, `metamathqa.json`,
`quarantine/`, `stats.json` and, last, `manifest.json`.

The stage knows augmentations only through their protocol (`augment/protocol.py`, registered in
`augment/registry.py`) and engines only through the engine registry. Ray is used at the edges: the
engines are long-lived replicas started once per job (engines/service.py). A wave is one event loop
(`WaveLoop`): rewrites and chains of thought are submitted as soon as they can be, each result is
judged in a Ray task as it streams back, and no pass waits for the slowest request of another.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

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
# Ray edge: the engine service a wave talks to


def engine_service(engine_cfg):
    """The job's engine service for `engine_cfg` (engines/service.py: submit, poll, pending,
    close_stream); a test's in-process stand-in replaces this function."""
    from metamath_ray.engines.service import engine_service as service_in_scope

    return service_in_scope(engine_cfg)


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
        self.started = time.perf_counter()  # reset by run(): the passes' began_at_s count from it

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> dict:
        from metamath_ray.engines.service import engine_scope
        from metamath_ray.pipeline.finalize import finalize

        started, self.started = time.time(), time.perf_counter()
        cfg = self.cfg
        done = self._check_resumable()
        if done is not None:
            return done
        preflight(cfg.engine)  # e.g. chat mode without a chat template: one line before any work
        loaded = self._read_seeds_while_ray_starts()
        log.info("%d seed rows read: %d seeds, %d quarantined", loaded.rows_read, len(loaded.seeds), len(loaded.quarantine))
        self.store.commit_table("quarantine/part-00000.parquet", to_table(loaded.quarantine, QUARANTINE_SCHEMA))
        chunks = [loaded.seeds[i:i + cfg.chunk_seeds] for i in range(0, len(loaded.seeds), cfg.chunk_seeds)]
        pending = {i: c for i, c in enumerate(chunks) if not self.store.exists(shard_name("candidates", i))}
        if len(pending) < len(chunks):
            log.info("resuming: %d of %d chunks already committed", len(chunks) - len(pending), len(chunks))
        damaged = self._damaged_chunks() if len(pending) < len(chunks) else {}
        if pending or damaged:
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

    def _read_seeds_while_ray_starts(self):
        """Ray's start (~10 s on a small node) and reading the seeds (seconds: the gold checks import
        sympy) overlap. An unfinished run always needs Ray: for its chunks, or at least for finalize."""
        from concurrent.futures import ThreadPoolExecutor

        from metamath_ray.ray_setup import start_ray

        cfg = self.cfg
        with ThreadPoolExecutor(1, thread_name_prefix="read-seeds") as pool:
            reading = pool.submit(load_seeds, cfg.seeds, limit=cfg.limit, max_question_chars=cfg.max_question_chars)
            start_ray(cfg.ray, cfg.engine)
            return reading.result()

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
        direct, requests = [], []
        for seed in seeds_by_id.values():
            for aug in self.cfg.augmentations:
                if augmentation(aug).needs_rewrite:
                    requests.extend(rewrite_rows(seed, aug, self.cfg))
                else:
                    direct.extend(direct_variants(seed, aug, self.cfg))
        results: dict[int, list[dict]] = defaultdict(list)
        WaveLoop(self, seeds_by_id, chunk_of, results).run(direct, requests)
        for chunk in sorted(chunks):
            rows = sorted(results.get(chunk, []), key=lambda r: r["id"])
            info = self.store.commit_table(shard_name("candidates", chunk), to_table(rows, CANDIDATE_SCHEMA))
            log.debug("committed %s: %d candidates", info.path, info.rows)

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
        rows = [solve_rows(self._variant_of(r, seeds_by_id[r["seed_id"]]), seeds_by_id[r["seed_id"]], r["sample_idx"],
                           1, r["round"], cfg, chunk_of[r["seed_id"]])[0]
                for r in failed if r["stage"] == "solve"]
        WaveLoop(self, seeds_by_id, chunk_of, results).run([], requests, retry_rows=rows)

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


# ---------------------------------------------------------------------------------------------
# One wave as one event loop: no barrier between the rewrites, round 0 and later rounds


class PassClock:
    """Per kind of request ("rewrite", "solve round r") of a wave: requests, when its first submit
    went out (seconds after `job_start`), seconds from then to its last result and to its first, and
    the engine replicas its first submit started. Kinds overlap in time; each entry says how long
    its requests waited for the engine, and `began_at_s` lets stats.json count overlapping time once."""

    def __init__(self, job_start: float):
        self.job_start = job_start  # time.perf_counter() when the job started
        self.kinds: dict[str, dict] = {}

    def submitted(self, kind: str, count: int, starts_before: int) -> None:
        from metamath_ray.engines.service import engine_starts

        entry = self.kinds.setdefault(kind, {"start": time.perf_counter(), "requests": 0, "first": None,
                                             "last": None, "engine_starts": engine_starts() - starts_before})
        entry["requests"] += count

    def returned(self, kind: str) -> None:
        entry = self.kinds[kind]
        entry["last"] = time.perf_counter() - entry["start"]
        if entry["first"] is None:
            entry["first"] = entry["last"]

    def entries(self) -> list[dict]:
        return [{"pass": kind, "requests": e["requests"], "began_at_s": round(e["start"] - self.job_start, 2),
                 "seconds": round(e["last"] or 0.0, 2),
                 "to_first_result_s": round(e["first"] or 0.0, 2), "engine_starts": e["engine_starts"]}
                for kind, e in self.kinds.items()]


class WaveLoop:
    """A wave's generation as one event loop on the engine service: the rewrite requests and the
    direct variants' round 0 go out together; a parsed rewrite queues its variant's round 0 at once;
    each judged chain of thought updates its variant's tally, and under `uniform` a variant whose
    round is fully judged and short of k is resampled at once (its r-th resample is round r, sample
    indices continue). `off`: round 0 only. `prop2diff` sizes its rounds over the whole wave (its
    targets need every round-0 failure rate), so each of its rounds waits for the previous one.
    Ids, sample indices, rounds and seeds are those of a pass-by-pass run on the same engine outputs."""

    def __init__(self, job: "AugmentJob", seeds_by_id: dict, chunk_of: dict, results: dict[int, list[dict]]):
        self.job, self.cfg = job, job.cfg
        self.seeds_by_id, self.chunk_of, self.results = seeds_by_id, chunk_of, results
        self.service = engine_service(self.cfg.engine)
        self.tallies: dict[VariantKey, budget.VariantTally] = {}
        self.variants: dict[VariantKey, Variant] = {}
        self.unjudged: dict[VariantKey, int] = defaultdict(int)  # requests of its current round not judged yet
        self.wave_round = 0  # prop2diff: the last round sized over the wave
        self.clock = PassClock(job.started)
        self.streams = (("rewrite", id(self)), ("solve", id(self)))

    def run(self, direct: list[Variant], rewrite_requests: list[dict], retry_rows: list[dict] | None = None) -> None:
        """Generate and judge everything the wave asks for; candidates land in `results` by chunk."""
        if rewrite_requests:
            log.info("rewriting: %d rewrite requests", len(rewrite_requests))
            self._submit(self.streams[0], "rewrite", rewrite_requests)
        if retry_rows:
            self._submit_solve(list(retry_rows))  # failed requests sent again, outside the budget
        for variant in direct:
            self._add_variant(variant)
        try:
            while self._pending() or self._next_wave_round():
                for stream, rows in self.service.poll():
                    if stream == self.streams[0]:
                        self._on_rewrites(rows)
                    elif stream == self.streams[1]:
                        self._on_judged(rows)
        finally:
            for stream in self.streams:
                self.service.close_stream(stream)
            self.job.timings.extend(self.clock.entries())

    def _pending(self) -> int:
        return sum(self.service.pending(stream) for stream in self.streams)

    # -- sending --------------------------------------------------------------------------------
    def _submit(self, stream: tuple, kind: str, rows: list[dict], **post) -> None:
        from metamath_ray.engines.service import engine_starts

        starts_before = engine_starts()
        sampling = self.cfg.rewrite_sampling if kind == "rewrite" else solve_sampling(self.cfg)
        self.service.submit(rows, sampling, stream=stream, **post)
        self.clock.submitted(kind, len(rows), starts_before)

    def _submit_solve(self, rows: list[dict]) -> None:
        cfg, job = self.cfg, self.job
        model, engine_key, version, budgets, steps = cfg.engine.model, job.engine_key, cfg.prompt_version, cfg.aug, cfg.verify.steps
        by_round: dict[int, list[dict]] = defaultdict(list)
        for row in rows:
            by_round[int(row["round"])].append(row)
        for rnd, batch in sorted(by_round.items()):
            self._submit(self.streams[1], f"solve round {rnd}", batch,
                         post=lambda b: judge_rows(b, model, engine_key, version, budgets, steps),
                         post_concurrency=judge_concurrency(cfg, [{"aug": a} for a in cfg.augmentations]))

    def _ask(self, key: VariantKey, count: int, rnd: int) -> None:
        """Samples `tally.sent ..` of one variant, as round `rnd`."""
        variant, tally = self.variants[key], self.tallies[key]
        self._submit_solve(solve_rows(variant, self.seeds_by_id[variant.seed_id], tally.sent, count, rnd,
                                      self.cfg, self.chunk_of[variant.seed_id]))
        tally.sent += count
        self.unjudged[key] += count

    def _add_variant(self, variant: Variant) -> None:
        key = (variant.seed_id, variant.aug, variant.variant)
        settings = self.cfg.aug[variant.aug]
        self.variants[key], self.tallies[key] = variant, budget.VariantTally(settings.k, settings.max_attempts)
        self._ask(key, budget.round_requests(self.cfg.adaptive, {key: self.tallies[key]}, 0)[key], 0)

    # -- receiving ------------------------------------------------------------------------------
    def _on_rewrites(self, rows: list[dict]) -> None:
        self.clock.returned("rewrite")
        for row in rows:
            seed = self.seeds_by_id[row["seed_id"]]
            text, parsed = parse_rewrite_row(seed, row)
            if isinstance(parsed, Rejection):
                self.results[self.chunk_of[seed["seed_id"]]].append(
                    rewrite_rejection(seed, row, text, parsed, self.cfg, self.job.engine_key))
            else:
                self._add_variant(parsed)

    def _on_judged(self, candidates: list[dict]) -> None:
        for cand in candidates:
            self.clock.returned(f"solve round {int(cand['round'])}")
            key = (cand["seed_id"], cand["aug"], cand["variant"])
            tally = self.tallies.get(key)
            if tally is not None:  # a retried row of another variant is outside the budget
                tally.record(int(cand["round"]), judged=cand["reject_reason"] != budget.ENGINE_ERROR,
                             accepted=bool(cand["accepted"]))
                self.unjudged[key] -= 1
                if not self.unjudged[key] and self.cfg.adaptive == "uniform":
                    wanted = budget.round_requests("uniform", {key: tally}, int(cand["round"]) + 1)
                    if wanted:
                        self._ask(key, wanted[key], int(cand["round"]) + 1)
            self.results[int(cand.pop("chunk"))].append(cand)

    def _next_wave_round(self) -> bool:
        """prop2diff, once everything sent is judged: the wave's next round (False when it has none)."""
        if self.cfg.adaptive != "prop2diff" or not self.tallies:
            return False
        wanted = budget.round_requests("prop2diff", self.tallies, self.wave_round + 1, self.cfg.budget_per_variant)
        if not wanted:
            return False
        self.wave_round += 1
        log.info("round %d: %d chains of thought for %d questions", self.wave_round, sum(wanted.values()), len(wanted))
        for key, count in wanted.items():
            self._ask(key, count, self.wave_round)
        return True


def run_augment(cfg: AugmentConfig) -> dict:
    """Run (or resume) the augment job of `cfg`; returns its manifest."""
    return AugmentJob(cfg).run()


__all__ = ["AugmentJob", "run_augment", "judge_rows"]
