"""Finalize an augment run: dedup, decontaminate, write data/rejected shards, export, stats, manifest.

Deterministic given the committed candidate shards, so a crashed finalize reruns to the same
result; shards already committed are kept, and `manifest.json` is written last. The work runs on
Ray Data, per chunk and per LSH band (`finalize_passes`, `finalize_outputs`); the driver holds
file names and per-chunk counts, never the candidates, the duplicate edges or the per-seed counts. `clean_accepted` and `build_stats` are the same semantics
over in-memory rows (the reference the streaming passes are tested against).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from importlib import resources

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metamath_ray import storage
from metamath_ray.augment import budget, decontam, dedup, report
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.augment.registry import AUGMENTATIONS, augmentation
from metamath_ray.pipeline import finalize_outputs as outputs
from metamath_ray.pipeline import finalize_passes as passes
from metamath_ray.engines.pricing import cost_usd, prices_per_1m
from metamath_ray.records import config_hash, versions
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


def partial_counts(candidates: list[dict], kept: list[dict], dropped: list[dict]) -> dict:
    """Everything stats.json counts, for one part of the run (a chunk: a seed's rows are all in one
    chunk, so variant sets become counts); JSON-able, summed by `merge_counts`."""
    by, per_seed = _tally(candidates, kept, dropped)
    cells = {}
    for (ds, aug), b in by.items():
        cell = {k: v for k, v in b.items() if k not in ("variants", "variants_with_accepted", "reject_reasons")}
        cell["reject_reasons"] = dict(b["reject_reasons"])
        cell["variants"] = len(b["variants"])
        cell["variants_failed_validation"] = len(b["variants"] - b["variants_with_accepted"])
        cells[f"{ds}|{aug}"] = cell
    return {
        "by": cells,
        "per_seed": {f"{s}|{a}": v for (s, a), v in per_seed.items()},
        "math_level_type": {json.dumps([lv, ty]): v for (lv, ty), v in _math_level_type_cells(candidates).items()},
        "decontam_by_reference": [[k, v] for k, v in Counter(
            decontam.matched_reference_set(r.get("reject_detail")) for r in dropped
            if r["reject_reason"] == "contaminated").items()],
        "engine_errors": sum(1 for r in candidates if is_engine_error(r)),
        "difficulty": budget.difficulty_table(candidates)["table"],  # per variant: a chunk's cells add up
        "accepted": len(kept),
        "solved": sum(1 for r in candidates if r["stage"] == "solve"),
        "rejected_solved": sum(1 for r in candidates if r["stage"] == "solve" and not r["accepted"]) + len(dropped),
    }


def merge_counts(parts: list[dict]) -> dict:
    """The sum of `partial_counts` of disjoint parts."""
    total: dict = {"by": {}, "per_seed": {}, "math_level_type": {}, "decontam_by_reference": Counter(),
                   "difficulty": [], "engine_errors": 0, "accepted": 0, "solved": 0, "rejected_solved": 0}
    difficulty: dict[tuple, dict] = {}
    for part in parts:
        for row in part["difficulty"]:
            into = difficulty.setdefault((row["dataset"], row["difficulty"]), dict.fromkeys(row, 0))
            into.update({k: (v if k in ("dataset", "difficulty") else into[k] + v) for k, v in row.items()})
        for key, cell in part["by"].items():
            into = total["by"].setdefault(key, {"reject_reasons": Counter()})
            for k, v in cell.items():
                if k == "reject_reasons":
                    into[k].update(v)
                else:
                    into[k] = into.get(k, 0) + v
        for name in ("per_seed", "math_level_type"):  # the streaming finalize's parts carry no per_seed
            for key, (x, y) in part.get(name, {}).items():
                into = total[name].setdefault(key, [0, 0])
                into[0] += x
                into[1] += y
        total["decontam_by_reference"].update({(k if k is None else str(k)): v for k, v in part["decontam_by_reference"]})
        for name in ("engine_errors", "accepted", "solved", "rejected_solved"):
            total[name] += part[name]
    order = {label: i for i, label in enumerate(budget.PASS_RATE_BUCKETS)}
    total["difficulty"] = [difficulty[k] for k in sorted(difficulty, key=lambda k: (k[0], order.get(k[1], -1), k[1]))]
    return total


def _by_difficulty(counts: dict, cfg: AugmentConfig) -> dict:
    """stats.json's by_difficulty (`budget.difficulty_table`) from the chunks' summed cells."""
    table = budget.difficulty_table([], cfg.adaptive, cfg.budget_per_variant)
    return {**table, "extra_attempts": sum(c["extra_attempts"] for c in counts["difficulty"]), "table": counts["difficulty"]}


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
        "variants": b["variants"],
        "variants_failed_validation": b["variants_failed_validation"],
    }


def _math_level_type_cells(candidates: list[dict]) -> dict[tuple, list[int]]:
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in candidates:
        if r["dataset"] == "math" and r["stage"] == "solve":
            cells[(r["level"], r["type"])][0] += 1
            cells[(r["level"], r["type"])][1] += int(bool(r["accepted"]))
    return cells


def _decontam_by_reference(dropped: list[dict]) -> dict[str, int]:
    found = Counter(decontam.matched_reference_set(r.get("reject_detail")) for r in dropped
                    if r["reject_reason"] == "contaminated")
    return dict(sorted(found.items(), key=lambda kv: str(kv[0])))


def build_stats(candidates: list[dict], kept: list[dict], dropped: list[dict], loaded: LoadedSeeds, n_chunks: int,
                wall_s: float, cfg: AugmentConfig) -> dict:
    """stats.json: counts per dataset x augmentation x outcome, acceptance, tokens, throughput."""
    return stats_from_counts(merge_counts([partial_counts(candidates, kept, dropped)]), loaded, n_chunks, wall_s, cfg)


def stats_from_counts(counts: dict, loaded: LoadedSeeds, n_chunks: int, wall_s: float, cfg: AugmentConfig) -> dict:
    """stats.json from the (merged) partial counts of the run's chunks."""
    table = []
    for key, b in sorted(counts["by"].items(), key=lambda kv: tuple(kv[0].split("|", 1))):
        ds, aug = key.split("|", 1)
        table.append(_table_row(ds, aug, b, cfg.engine))
    n_gen = sum(t["candidates"] for t in table)
    tokens_in, tokens_out = sum(t["tokens_in"] for t in table), sum(t["tokens_out"] for t in table)
    math_cells = sorted((tuple(json.loads(k)), v) for k, v in counts["math_level_type"].items())
    by_reference = counts["decontam_by_reference"]
    return {
        "run_name": cfg.run_name, "model": cfg.engine.model, "engine": cfg.engine.kind,
        "seeds": {"rows_read": loaded.rows_read, "processed": len(loaded.seeds),
                  "quarantined": len(loaded.quarantine),
                  "quarantine_reasons": dict(Counter(q["reason"] for q in loaded.quarantine))},
        "chunks": n_chunks,
        "totals": {"candidates": n_gen, "accepted": counts["accepted"], "rejected": n_gen - counts["accepted"],
                   "rewrites_rejected": sum(t["rewrites_rejected"] for t in table),
                   # requests that failed after every retry (solve and rewrite); a rerun retries exactly these
                   "engine_errors": counts["engine_errors"],
                   "tokens_in": tokens_in, "tokens_out": tokens_out,
                   "cost_usd": cost_usd(cfg.engine, tokens_in, tokens_out)},
        "prices_per_1m_tokens": prices_per_1m(cfg.engine),  # the config's, which the cost figures assume
        "by_dataset_aug": table,
        "by_math_level_type": [{"level": lv, "type": ty, "candidates": c, "accepted": a} for (lv, ty), (c, a) in math_cells],
        "by_difficulty": _by_difficulty(counts, cfg),
        "decontam_by_reference": (dict(sorted(by_reference.items(), key=lambda kv: str(kv[0])))
                                  if cfg.decontam.enabled else None),
        "per_seed_pass_rate": {k: round(acc / tot, 4) for k, (acc, tot) in sorted(
            counts["per_seed"].items(), key=lambda kv: tuple(kv[0].rsplit("|", 1))) if tot},
        "wall_time_s": round(wall_s, 2),
        "throughput": {"candidates_per_s": round(n_gen / wall_s, 3) if wall_s else None,
                       "tokens_out_per_s": round(tokens_out / wall_s, 1) if wall_s else None},
    }


def finalize(store: RunStore, cfg: AugmentConfig, loaded: LoadedSeeds, *, n_chunks: int, timings: list[dict],
             wall_start: float) -> dict:
    """Everything after generation, from the committed candidate shards; returns the manifest.
    `timings` are this invocation's generation passes (a resumed run lists only what it generated).

    Streams on Ray Data (`finalize_passes`, `finalize_outputs`): per-chunk work on workers, each chunk's outputs
    committed once under `finalize/<digest>/`, so a rerun after a crash redoes only what is missing."""
    from metamath_ray.ray_setup import start_ray
    import ray

    if not ray.is_initialized():  # a resumed run whose chunks were all committed has not started Ray
        start_ray(cfg.ray)
    shards = current_candidate_shards(store)
    work = f"finalize/{passes.inputs_digest(store, shards, cfg)}"
    _drop_stale_work(store, work)
    clock = [("start", time.perf_counter())]
    decisions = _dedup_decisions(store, cfg, shards, work) if cfg.dedup.enabled else None
    clock.append(("dedup_s", time.perf_counter()))
    done = _outcome_pass(store, cfg, shards, work, decisions)
    clock.append(("outcome_s", time.perf_counter()))
    counts = merge_counts([d["counts"] for d in done])
    manifest_shards = ([d["data"] for d in done] + [d["rejected"] for d in done]
                       + [{"kind": "candidates", "path": path, "rows": d["rows"]}
                          for (_, path), d in zip(shards.values(), done)])
    manifest_shards.append({"kind": "quarantine", "path": "quarantine/part-00000.parquet", "rows": len(loaded.quarantine)})

    available = sum((Counter(d["export_by_type"]) for d in done), Counter())
    by_type = outputs.write_export(store, work, cfg.export_mix, dict(available), [d["export"] for d in done])
    clock.append(("export_s", time.perf_counter()))
    n_records = sum(by_type.values())
    stats = stats_from_counts(counts, loaded, n_chunks, time.time() - wall_start, cfg)
    stats["export"] = {"records": n_records, "by_type": by_type}
    stats["timing"] = _timing(timings, time.time() - wall_start)
    # where finalize's time goes: dedup (features + edges + resolution), outcome shards, the export merge
    stats["timing"]["finalize"] = {name: round(t - clock[i][1], 2) for i, (name, t) in enumerate(clock[1:])}
    log.info("finalize: %s", stats["timing"]["finalize"])
    _check_accounting(stats, counts, loaded)
    outputs.write_stats(store, work, stats, [d["per_seed"] for d in done])  # per-seed pass rates from the parts
    _write_report(store, stats)

    manifest = {
        "run_name": cfg.run_name, "uri": store.uri, "config_hash": config_hash(cfg),
        "config": _redacted(cfg.model_dump(mode="json")), "versions": versions(),
        "shards": manifest_shards, "metamathqa_records": n_records,
        "totals": stats["totals"], "seeds": stats["seeds"], "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_json("manifest.json", manifest)  # last: its presence means the run is complete
    if stats["totals"]["engine_errors"]:
        log.warning("%d requests failed after every retry (reject_reason engine_error); rerun the same command "
                    "to retry exactly those", stats["totals"]["engine_errors"])
    log.debug("outputs in %s: data/, rejected/, metamathqa.json (%d records), quarantine/, stats.json, "
              "report/report.md, manifest.json", store.uri, n_records)
    return manifest


def _drop_stale_work(store: RunStore, work: str) -> None:
    """Work files of other inputs (before a repair, or of other settings) are never read again."""
    root = storage.join(store.uri, "finalize")
    for name in storage.list_dirs(root) if store.exists("finalize") else []:
        if f"finalize/{name}" != work:
            storage.delete_dir(storage.join(root, name))


def _dedup_decisions(store: RunStore, cfg: AugmentConfig, shards: dict, work: str) -> str:
    """Passes 1 and 2: features per chunk, edges per band, then one resolve task; the decisions are
    committed as `<work>/dedup.parquet` (a rerun reuses it, and every features / band file)."""
    rel = f"{work}/dedup.parquet"
    if store.exists(rel):
        return rel

    def features(item: dict) -> dict:
        out = f"{work}/features/{item['chunk']}"
        if not store.exists(out):
            table = passes.chunk_features(store.read_table(item["path"]), cfg)
            if table is not None:
                store.commit_table(out, table)
        return {"path": out if store.exists(out) else None}

    made = passes.map_chunks(features, [{"chunk": c, "path": p} for c, (_, p) in shards.items()])
    files = [m["path"] for m in made if m["path"]]

    def edges(item: dict) -> dict:
        out = f"{work}/edges/band-{item['band']:03d}.parquet"
        if not store.exists(out):
            store.commit_table(out, passes.band_edges(store, files, item["band"], cfg.dedup.threshold))
        return {"path": out}

    bands, _ = dedup.lsh_params(cfg.dedup.threshold, cfg.dedup.num_perm)
    edge_files = [e["path"] for e in passes.map_chunks(edges, [{"band": b} for b in range(bands)] if files else [])]

    def resolve(_: dict) -> dict:
        found = [passes.read_columns(store, f, passes.EDGE_SCHEMA.names) for f in edge_files]
        table = pa.concat_tables(found) if found else passes.EDGE_SCHEMA.empty_table()
        store.commit_bytes(rel, passes.decisions_bytes(passes.resolve_edges(table)))
        return {"edges": table.num_rows}

    passes.map_chunks(resolve, [{}])  # in a task: the driver never holds the edges
    return rel


def _outcome_pass(store: RunStore, cfg: AugmentConfig, shards: dict, work: str, decisions: str | None) -> list[dict]:
    """Pass 3, per chunk: data/, rejected/, the export part, the per-seed counts and the partial
    counts (`done/` last)."""
    import ray

    index_ref = ray.put(_decontam_index(cfg)) if cfg.decontam.enabled else None

    def outcome(item: dict) -> dict:
        chunk, name = item["chunk"], item["chunk"].removesuffix(".parquet")
        marker = f"{work}/done/{name}.json"
        if store.exists(marker):
            return store.read_json(marker)
        dropped_variants, dropped_rows = passes.chunk_decisions(store, decisions, chunk) if decisions else ({}, {})
        table = store.read_table(item["path"])
        data, rejected, dropped = passes.apply_decisions(
            table, dropped_variants, dropped_rows, ray.get(index_ref) if index_ref is not None else None)
        _check_unique_ids(table)
        export_rel = f"{work}/export/{chunk}"
        records = passes.export_part(data, cfg.sampling.seed)
        store.commit_bytes(export_rel, _parquet_bytes(records, EXPORT_ROW_GROUP))
        slim = ["dataset", "aug", "stage", "seed_id", "variant", "round", "accepted", "reject_reason", "reject_detail",
                "tokens_in", "tokens_out", "level", "type"]
        counts = partial_counts(table.select(slim).to_pylist(), data.select(["dataset", "aug"]).to_pylist(),
                                dropped.select(slim).to_pylist())
        per_seed_rel = f"{work}/per_seed/{chunk}"  # grows with the seeds: a file, never the driver's
        store.commit_table(per_seed_rel, outputs.per_seed_table(counts.pop("per_seed")))
        result = {
            "rows": table.num_rows, "export": export_rel, "per_seed": per_seed_rel,
            "export_by_type": dict(Counter(records["type"].to_pylist())),
            "data": {"kind": "data", **_commit_derived(store, f"data/{chunk}", data)},
            "rejected": {"kind": "rejected", **_commit_derived(store, f"rejected/{chunk}", rejected)},
            "counts": counts,
        }
        store.commit_bytes(marker, storage.json_bytes(result))
        return result

    return passes.map_chunks(outcome, [{"chunk": c, "path": p} for c, (_, p) in shards.items()])


EXPORT_ROW_GROUP = 64  # an export range task reads only the row groups of its id range


def _parquet_bytes(table, row_group_size: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def _decontam_index(cfg: AugmentConfig):
    with tempfile.TemporaryDirectory() as tmp:
        refs = decontam.load_reference_texts(_reference_paths(cfg.decontam.references, tmp))
    return decontam.NgramIndex(refs, sizes=tuple(cfg.decontam.ngram_sizes))


def _check_unique_ids(table) -> None:
    # A seed's rows are all in one chunk and ids include the seed, so unique per chunk = unique in the run.
    if pc.count_distinct(table["id"]).as_py() != table.num_rows:
        raise AssertionError("accounting: duplicate candidate ids")


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


def _commit_derived(store: RunStore, rel: str, table) -> dict:
    """data/ and rejected/ are derived from the candidates: committed once, and replaced (atomically)
    only when a repair changed their chunk; a rerun without repairs rewrites nothing."""
    data = storage.table_to_parquet_bytes(table)
    digest = hashlib.sha256(data).hexdigest()
    created, stored = store.commit_bytes(rel, data)
    if not created and stored != digest:
        store.write_bytes(rel, data)
    return {"path": rel, "rows": table.num_rows, "bytes": len(data), "sha256": digest}


def _timing(passes: list[dict], wall_s: float) -> dict:
    """Passes overlap in time (a wave's rewrites, rounds and resamples run together): generation_s
    counts the time any of them was waiting on the engine once; first_result_at_s is when the job's
    first engine result came back (seconds after it started: Ray, the engine's start, the first batch)."""
    spans = sorted((p["began_at_s"], p["began_at_s"] + p["seconds"]) for p in passes if "began_at_s" in p)
    generation_s = _covered(spans) if len(spans) == len(passes) else sum(p["seconds"] for p in passes)
    firsts = [p["began_at_s"] + p["to_first_result_s"] for p in passes if "began_at_s" in p]
    return {"passes": passes, "generation_s": round(generation_s, 2),
            "first_result_at_s": round(min(firsts), 2) if firsts else None,
            "engine_starts": sum(p.get("engine_starts", 0) for p in passes),  # engine replicas started
            "other_s": round(wall_s - generation_s, 2)}


def _covered(spans: list[tuple[float, float]]) -> float:
    """Length of the union of sorted [begin, end] intervals."""
    total, end = 0.0, float("-inf")
    for begin, finish in spans:
        if finish > end:
            total += finish - max(begin, end)
            end = finish
    return total


def _write_report(store: RunStore, stats: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for path in report.write_report(stats, tmp):
            with open(path, "rb") as f:
                store.write_bytes(f"report/{os.path.basename(path)}", f.read())

def _check_accounting(stats: dict, counts: dict, loaded: LoadedSeeds) -> None:
    """The run's invariants; a violation is a bug, never silently written out."""
    if counts["accepted"] + counts["rejected_solved"] != counts["solved"]:
        raise AssertionError("accounting: accepted + rejected != generated")
    if stats["seeds"]["processed"] + stats["seeds"]["quarantined"] != loaded.rows_read:
        raise AssertionError("accounting: processed + quarantined != seed rows read")


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
