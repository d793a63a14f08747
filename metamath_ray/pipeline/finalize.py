"""Finalize an augment run: dedup, decontaminate, write data/rejected shards, export, stats, manifest.

Deterministic given the committed candidate shards, so a crashed finalize reruns to the same
result; shards already committed are kept, and `manifest.json` is written last.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from importlib import resources

from metamath_ray import storage
from metamath_ray.augment import budget, decontam, dedup, export, report
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.augment.registry import AUGMENTATIONS, augmentation
from metamath_ray.engines.pricing import cost_usd, prices_per_1m
from metamath_ray.records import CANDIDATE_SCHEMA, config_hash, to_table, versions
from metamath_ray.seeds import LoadedSeeds
from metamath_ray.storage import RunStore

log = logging.getLogger(__name__)


def _reference_paths(specs: list[str], tmp: str) -> list[str]:
    """`bundled:eval` -> the packaged full evaluation sets (data/decontam); s3:// files are
    downloaded to `tmp`."""
    paths: list[str] = []
    for spec in specs:
        if spec == "bundled:eval":
            folder = resources.files("metamath_ray") / "data" / "decontam"
            paths.extend(str(folder / n) for n in sorted(p.name for p in folder.iterdir()) if n.endswith(".jsonl.gz"))
        elif storage.is_s3(spec):
            local = os.path.join(tmp, f"{len(paths)}-{os.path.basename(spec.rstrip('/'))}")
            with open(local, "wb") as f:
                f.write(storage.read_bytes(spec))
            paths.append(local)
        else:
            if not os.path.isfile(spec):
                raise FileNotFoundError(f"decontamination reference not found: {spec}")
            paths.append(spec)
    return paths


def backward_siblings(row: dict) -> tuple | None:
    """(family, member) for dedup: the FOBAR / SV variants of one seed mask different numbers, so
    they are different questions with different answers, however alike they read."""
    if augmentation(row["aug"]).distinct_siblings:
        return (row["seed_id"], row["aug"]), row["variant"]
    return None


def clean_accepted(rows: list[dict], cfg) -> tuple[list[dict], list[dict]]:
    """Accepted candidates -> (kept, dropped with reasons): near-duplicate questions, duplicate
    (question, answer) pairs, contamination with the evaluation sets."""
    dropped: list[dict] = []
    kept = rows
    if cfg.dedup.enabled and kept:
        # Questions: compare one representative per variant, so the K answers of one question are
        # not duplicates of each other, but a rephrasing equal to another variant is. Programs (PoT)
        # are compared among themselves: the same question with a CoT and a PoT answer is intended.
        reps: dict[tuple, dict] = {}
        for r in sorted(kept, key=lambda r: r["id"]):
            reps.setdefault((r["seed_id"], r["aug"], r["variant"]), r)
        aug_rank = {a: i for i, a in enumerate(AUGMENTATIONS)}
        dup_variants: dict[tuple, dict] = {}
        for programs in (False, True):
            ordered = [
                {**r, "id": f"{aug_rank[r['aug']]}-{r['seed_id']}-{r['variant']:05d}"}
                for r in reps.values() if (r["aug"] == "PoT") == programs
            ]
            _, dup_q = dedup.dedup_rows(ordered, key="query", threshold=cfg.dedup.threshold,
                                        num_perm=cfg.dedup.num_perm, ngram=cfg.dedup.ngram,
                                        siblings=backward_siblings)
            dup_variants.update({(r["seed_id"], r["aug"], r["variant"]): r for r in dup_q})
        next_kept = []
        for r in kept:
            hit = dup_variants.get((r["seed_id"], r["aug"], r["variant"]))
            if hit is None:
                next_kept.append(r)
            else:
                dropped.append({**r, "accepted": False, "reject_reason": "duplicate_query",
                                "reject_detail": hit.get("reject_detail")})
        kept, dup_qr = dedup.dedup_rows(next_kept, key=("query", "response"), threshold=cfg.dedup.threshold,
                                        num_perm=cfg.dedup.num_perm, ngram=cfg.dedup.ngram,
                                        siblings=backward_siblings)
        dropped.extend({**r, "reject_reason": f"{r['reject_reason']}_response"} for r in dup_qr)
    if cfg.decontam.enabled and kept:
        with tempfile.TemporaryDirectory() as tmp:
            refs = decontam.load_reference_texts(_reference_paths(cfg.decontam.references, tmp))
        index = decontam.NgramIndex(refs, sizes=tuple(cfg.decontam.ngram_sizes))
        kept, contaminated = decontam.decontaminate(kept, index, fields=("query",))
        dropped.extend(contaminated)
    return kept, dropped


def _new_cell() -> dict:
    return {"prompts": 0, "candidates": 0, "accepted": 0, "verified": 0, "reject_reasons": Counter(),
            "tokens_in": 0, "tokens_out": 0, "dedup_dropped": 0, "decontam_dropped": 0, "rewrites_rejected": 0,
            "variants": set(), "variants_with_accepted": set()}


def _tally(candidates: list[dict], kept: list[dict], dropped: list[dict]) -> tuple[dict, dict]:
    """Counts per (dataset, aug), and (accepted, generated) per (seed, aug)."""
    by: dict[tuple, dict] = defaultdict(_new_cell)
    per_seed: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in candidates:
        b = by[(r["dataset"], r["aug"])]
        b["prompts"] += 1
        b["tokens_in"] += int(r.get("tokens_in") or 0)
        b["tokens_out"] += int(r.get("tokens_out") or 0)
        if r["stage"] == "rewrite":
            b["rewrites_rejected"] += 1
            b["reject_reasons"][r["reject_reason"]] += 1
            continue
        b["candidates"] += 1
        vkey = (r["seed_id"], r["aug"], r["variant"])
        b["variants"].add(vkey)
        per_seed[(r["seed_id"], r["aug"])][1] += 1
        if r["accepted"]:
            b["verified"] += 1
            b["variants_with_accepted"].add(vkey)
            per_seed[(r["seed_id"], r["aug"])][0] += 1
        else:
            b["reject_reasons"][r["reject_reason"]] += 1
    for r in kept:
        by[(r["dataset"], r["aug"])]["accepted"] += 1
    for r in dropped:
        b = by[(r["dataset"], r["aug"])]
        b["reject_reasons"][r["reject_reason"]] += 1
        b["decontam_dropped" if r["reject_reason"] == "contaminated" else "dedup_dropped"] += 1
    return by, per_seed


def _table_row(dataset: str, aug: str, b: dict, engine) -> dict:
    rejected = b["candidates"] - b["accepted"]
    return {
        "dataset": dataset, "aug": aug, "prompts": b["prompts"], "candidates": b["candidates"],
        "verified": b["verified"], "accepted": b["accepted"], "rejected": rejected,
        "acceptance_rate": round(b["accepted"] / b["candidates"], 4) if b["candidates"] else None,
        "reject_reasons": dict(sorted(b["reject_reasons"].items())),
        "tokens_in": b["tokens_in"], "tokens_out": b["tokens_out"],
        "cost_usd": cost_usd(engine, b["tokens_in"], b["tokens_out"]),  # None without engine prices
        "dedup_dropped": b["dedup_dropped"], "decontam_dropped": b["decontam_dropped"],
        "rewrites_rejected": b["rewrites_rejected"],
        "variants": len(b["variants"]),
        "variants_failed_validation": len(b["variants"] - b["variants_with_accepted"]),
    }


def _math_level_type(candidates: list[dict]) -> list[dict]:
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in candidates:
        if r["dataset"] == "math" and r["stage"] == "solve":
            cells[(r["level"], r["type"])][0] += 1
            cells[(r["level"], r["type"])][1] += int(bool(r["accepted"]))
    return [{"level": lv, "type": ty, "candidates": c, "accepted": a} for (lv, ty), (c, a) in sorted(cells.items())]


def _decontam_by_reference(dropped: list[dict]) -> dict[str, int]:
    found = Counter(decontam.matched_reference_set(r.get("reject_detail")) for r in dropped
                    if r["reject_reason"] == "contaminated")
    return dict(sorted(found.items(), key=lambda kv: str(kv[0])))


def build_stats(candidates: list[dict], kept: list[dict], dropped: list[dict], loaded: LoadedSeeds, n_chunks: int,
                wall_s: float, cfg: AugmentConfig) -> dict:
    """stats.json: counts per dataset x augmentation x outcome, acceptance, tokens, throughput."""
    by, per_seed = _tally(candidates, kept, dropped)
    table = [_table_row(ds, aug, b, cfg.engine) for (ds, aug), b in sorted(by.items())]
    n_gen = sum(t["candidates"] for t in table)
    tokens_in, tokens_out = sum(t["tokens_in"] for t in table), sum(t["tokens_out"] for t in table)
    return {
        "run_name": cfg.run_name, "model": cfg.engine.model, "engine": cfg.engine.kind,
        "seeds": {"rows_read": loaded.rows_read, "processed": len(loaded.seeds),
                  "quarantined": len(loaded.quarantine),
                  "quarantine_reasons": dict(Counter(q["reason"] for q in loaded.quarantine))},
        "chunks": n_chunks,
        "totals": {"candidates": n_gen, "accepted": len(kept), "rejected": n_gen - len(kept),
                   "rewrites_rejected": sum(t["rewrites_rejected"] for t in table),
                   # requests that failed after every retry (solve and rewrite); a rerun retries exactly these
                   "engine_errors": sum(1 for r in candidates if is_engine_error(r)),
                   "tokens_in": tokens_in, "tokens_out": tokens_out,
                   "cost_usd": cost_usd(cfg.engine, tokens_in, tokens_out)},
        "prices_per_1m_tokens": prices_per_1m(cfg.engine),  # the config's, which the cost figures assume
        "by_dataset_aug": table,
        "by_math_level_type": _math_level_type(candidates),
        "by_difficulty": budget.difficulty_table(candidates, cfg.adaptive, cfg.budget_per_variant),
        "decontam_by_reference": _decontam_by_reference(dropped) if cfg.decontam.enabled else None,
        "per_seed_pass_rate": {f"{s}|{a}": round(acc / tot, 4) for (s, a), (acc, tot) in sorted(per_seed.items()) if tot},
        "wall_time_s": round(wall_s, 2),
        "throughput": {"candidates_per_s": round(n_gen / wall_s, 3) if wall_s else None,
                       "tokens_out_per_s": round(tokens_out / wall_s, 1) if wall_s else None},
    }

def finalize(store: RunStore, cfg: AugmentConfig, loaded: LoadedSeeds, *, n_chunks: int, timings: list[dict],
             wall_start: float) -> dict:
    """Everything after generation, from the committed candidate shards; returns the manifest.
    `timings` are this invocation's generation passes (a resumed run lists only what it generated)."""
    candidates, chunk_of_seed, shards = _read_candidates(store)
    solved = [r for r in candidates if r["stage"] == "solve"]
    kept, dropped = clean_accepted([r for r in solved if r["accepted"]], cfg)
    rejected = [r for r in candidates if not r["accepted"]] + dropped
    manifest_shards = _write_outcome_shards(store, kept, rejected, chunk_of_seed)
    rows_per_shard = Counter(chunk_of_seed[r["seed_id"]] for r in candidates)
    manifest_shards += [{"kind": "candidates", "path": s, "rows": rows_per_shard[shard_version(s)[0]]} for s in shards]
    manifest_shards.append({"kind": "quarantine", "path": "quarantine/part-00000.parquet", "rows": len(loaded.quarantine)})

    records = export.to_metamathqa(kept, cfg.export_mix, seed=cfg.sampling.seed)
    buf = io.BytesIO()
    export.write_json(records, buf)
    store.write_bytes("metamathqa.json", buf.getvalue())

    stats = build_stats(candidates, kept, dropped, loaded, n_chunks, time.time() - wall_start, cfg)
    stats["export"] = {"records": len(records), "by_type": dict(Counter(r["type"] for r in records))}
    stats["timing"] = _timing(timings, time.time() - wall_start)
    _check_accounting(stats, candidates, kept, rejected, loaded)
    store.write_json("stats.json", stats)
    _write_report(store, stats)

    manifest = {
        "run_name": cfg.run_name, "uri": store.uri, "config_hash": config_hash(cfg),
        "config": _redacted(cfg.model_dump(mode="json")), "versions": versions(),
        "shards": manifest_shards, "metamathqa_records": len(records),
        "totals": stats["totals"], "seeds": stats["seeds"], "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_json("manifest.json", manifest)  # last: its presence means the run is complete
    if stats["totals"]["engine_errors"]:
        log.warning("%d requests failed after every retry (reject_reason engine_error); rerun the same command "
                    "to retry exactly those", stats["totals"]["engine_errors"])
    log.debug("outputs in %s: data/, rejected/, metamathqa.json (%d records), quarantine/, stats.json, "
              "report/report.md, manifest.json", store.uri, len(records))
    return manifest


# -- candidate shard versions (engine_error repair) ----------------------------------------------
# A chunk is committed once as candidates/part-NNNNN.parquet. A rerun that retries its engine_error
# candidates commits the whole chunk again, errors replaced, as candidates/part-NNNNN.repair-K.parquet
# (K = 1, 2, ...): each version is written once, atomically; the newest is the chunk's truth and
# older versions are never read again (nor listed in the manifest).
ENGINE_ERROR_REASONS = ("engine_error", "rewrite_engine_error")
_VERSIONED = re.compile(r"^(part-\d+)(?:\.repair-(\d+))?\.parquet$")


def is_engine_error(row: dict) -> bool:
    return row.get("reject_reason") in ENGINE_ERROR_REASONS


def shard_version(path: str) -> tuple[str, int]:
    """candidates/part-00003.repair-2.parquet -> ("part-00003.parquet", 2); the first commit is version 0."""
    m = _VERSIONED.match(path.rsplit("/", 1)[-1])
    if not m:
        raise ValueError(f"not a candidate shard name: {path}")
    return f"{m.group(1)}.parquet", int(m.group(2) or 0)


def repair_shard_name(chunk_name: str, version: int) -> str:
    return f"candidates/{chunk_name[: -len('.parquet')]}.repair-{version}.parquet"


def current_candidate_shards(store: RunStore) -> dict[str, tuple[int, str]]:
    """chunk name -> (version, path) of the newest committed version of every chunk."""
    newest: dict[str, tuple[int, str]] = {}
    for path in store.list("candidates", ".parquet"):
        chunk, version = shard_version(path)
        if chunk not in newest or version > newest[chunk][0]:
            newest[chunk] = (version, path)
    return dict(sorted(newest.items()))


def _read_candidates(store: RunStore) -> tuple[list[dict], dict[str, str], list[str]]:
    """One read of the committed work (the newest version of every chunk): the candidates, the chunk
    of every seed, the shards read."""
    shards = [path for _, path in current_candidate_shards(store).values()]
    candidates, chunk_of_seed = [], {}
    for s in shards:
        rows = store.read_table(s).to_pylist()
        candidates.extend(rows)
        chunk_of_seed.update((r["seed_id"], shard_version(s)[0]) for r in rows)
    return candidates, chunk_of_seed, shards


def _commit_derived(store: RunStore, rel: str, table) -> dict:
    """data/ and rejected/ are derived from the candidates: committed once, and replaced (atomically)
    only when a repair changed their chunk; a rerun without repairs rewrites nothing."""
    data = storage.table_to_parquet_bytes(table)
    digest = hashlib.sha256(data).hexdigest()
    created, stored = store.commit_bytes(rel, data)
    if not created and stored != digest:
        store.write_bytes(rel, data)
    return {"path": rel, "rows": table.num_rows, "bytes": len(data), "sha256": digest}


def _write_outcome_shards(store: RunStore, kept: list[dict], rejected: list[dict], chunk_of_seed: dict[str, str]) -> list[dict]:
    """data/ and rejected/ keep the chunk layout of candidates/ (one shard each per chunk)."""
    written = []
    for kind, rows in (("data", kept), ("rejected", rejected)):
        per = defaultdict(list)
        for r in rows:
            per[chunk_of_seed[r["seed_id"]]].append(r)
        for name in sorted(set(chunk_of_seed.values())):
            part = sorted(per.get(name, []), key=lambda r: r["id"])
            written.append({"kind": kind, **_commit_derived(store, f"{kind}/{name}", to_table(part, CANDIDATE_SCHEMA))})
    return written


def _timing(passes: list[dict], wall_s: float) -> dict:
    generation_s = sum(p["seconds"] for p in passes)
    return {"passes": passes, "generation_s": round(generation_s, 2),
            "to_first_result_s": round(sum(p["to_first_result_s"] for p in passes), 2),
            "engine_starts": sum(p.get("engine_starts", 0) for p in passes),  # engine replicas started
            "other_s": round(wall_s - generation_s, 2)}


def _write_report(store: RunStore, stats: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for path in report.write_report(stats, tmp):
            with open(path, "rb") as f:
                store.write_bytes(f"report/{os.path.basename(path)}", f.read())

def _check_accounting(stats, candidates, kept, rejected, loaded) -> None:
    """The run's invariants; a violation is a bug, never silently written out."""
    solved = sum(1 for r in candidates if r["stage"] == "solve")
    if len(kept) + sum(1 for r in rejected if r["stage"] == "solve") != solved:
        raise AssertionError("accounting: accepted + rejected != generated")
    if stats["seeds"]["processed"] + stats["seeds"]["quarantined"] != loaded.rows_read:
        raise AssertionError("accounting: processed + quarantined != seed rows read")
    ids = [r["id"] for r in candidates]
    if len(ids) != len(set(ids)):
        raise AssertionError("accounting: duplicate candidate ids")


def _looks_like_a_credential(key: str) -> bool:
    # "token" alone would also hide max_tokens and price_per_1m_*_tokens; *_env names a variable, not its value
    key = key.lower()
    if key.endswith(("_env", "tokens")):
        return False
    return any(s in key for s in ("secret", "password", "token", "access_key", "api_key"))


def _redacted(obj):
    """Configs written to storage never carry secrets (keys that look like credentials)."""
    if isinstance(obj, dict):
        return {k: ("***" if _looks_like_a_credential(k) and v else _redacted(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redacted(v) for v in obj]
    return obj
