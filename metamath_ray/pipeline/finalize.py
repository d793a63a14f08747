"""Finalize an augment run: dedup, decontaminate, write data/rejected shards, export, stats, manifest.

Deterministic given the committed candidate shards, so a crashed finalize reruns to the same
result; shards already committed are kept, and `manifest.json` is written last.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import Counter, defaultdict
from importlib import resources

from metamath_ray.augment import decontam, dedup, export, report
from metamath_ray.augment.base import AUGMENTATIONS


def _reference_paths(specs: list[str], tmp: str) -> list[str]:
    """`bundled:eval` -> the packaged eval slices; s3:// files are downloaded to `tmp`."""
    from metamath_ray.storage import read_bytes, resolve_filesystem

    paths: list[str] = []
    for spec in specs:
        if spec == "bundled:eval":
            folder = resources.files("metamath_ray") / "data" / "eval"
            paths.extend(str(folder / n) for n in sorted(p.name for p in folder.iterdir()) if n.endswith((".jsonl", ".json")))
        elif spec.startswith("s3://"):
            fs, p = resolve_filesystem(spec)
            local = os.path.join(tmp, f"{len(paths)}-{os.path.basename(p)}")
            with open(local, "wb") as f:
                f.write(read_bytes(fs, p))
            paths.append(local)
        else:
            if not os.path.isfile(spec):
                raise FileNotFoundError(f"decontamination reference not found: {spec}")
            paths.append(spec)
    return paths


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
                                        num_perm=cfg.dedup.num_perm, ngram=cfg.dedup.ngram)
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
                                        num_perm=cfg.dedup.num_perm, ngram=cfg.dedup.ngram)
        dropped.extend({**r, "reject_reason": f"{r['reject_reason']}_response"} for r in dup_qr)
    if cfg.decontam.enabled and kept:
        with tempfile.TemporaryDirectory() as tmp:
            refs = decontam.load_reference_texts(_reference_paths(cfg.decontam.references, tmp))
        index = decontam.NgramIndex(refs, sizes=tuple(cfg.decontam.ngram_sizes))
        kept, contaminated = decontam.decontaminate(kept, index, fields=("query",))
        dropped.extend(contaminated)
    return kept, dropped


def build_stats(candidates: list[dict], kept: list[dict], dropped: list[dict], loaded, n_chunks: int,
                wall_s: float, cfg) -> dict:
    by = defaultdict(lambda: {"prompts": 0, "candidates": 0, "accepted": 0, "rejected": 0, "verified": 0,
                              "reject_reasons": Counter(), "tokens_in": 0, "tokens_out": 0,
                              "dedup_dropped": 0, "decontam_dropped": 0, "rewrites_rejected": 0,
                              "variants": set(), "variants_with_accepted": set()})
    seeds_per_variant: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
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
        seeds_per_variant[(r["seed_id"], r["aug"])][1] += 1
        if r["accepted"]:
            b["verified"] += 1
            b["variants_with_accepted"].add(vkey)
            seeds_per_variant[(r["seed_id"], r["aug"])][0] += 1
        else:
            b["reject_reasons"][r["reject_reason"]] += 1
    for r in kept:
        by[(r["dataset"], r["aug"])]["accepted"] += 1
    for r in dropped:
        b = by[(r["dataset"], r["aug"])]
        b["reject_reasons"][r["reject_reason"]] += 1
        if r["reject_reason"] == "contaminated":
            b["decontam_dropped"] += 1
        else:
            b["dedup_dropped"] += 1
    table = []
    for (ds, aug), b in sorted(by.items()):
        b["rejected"] = b["candidates"] - b["accepted"]
        table.append({
            "dataset": ds, "aug": aug, "prompts": b["prompts"], "candidates": b["candidates"],
            "verified": b["verified"], "accepted": b["accepted"], "rejected": b["rejected"],
            "acceptance_rate": round(b["accepted"] / b["candidates"], 4) if b["candidates"] else None,
            "reject_reasons": dict(sorted(b["reject_reasons"].items())),
            "tokens_in": b["tokens_in"], "tokens_out": b["tokens_out"],
            "dedup_dropped": b["dedup_dropped"], "decontam_dropped": b["decontam_dropped"],
            "rewrites_rejected": b["rewrites_rejected"],
            "variants": len(b["variants"]),
            "variants_failed_validation": len(b["variants"] - b["variants_with_accepted"]),
        })
    math_lt: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in candidates:
        if r["dataset"] == "math" and r["stage"] == "solve":
            math_lt[(r["level"], r["type"])][0] += 1
            math_lt[(r["level"], r["type"])][1] += int(bool(r["accepted"]))
    n_gen = sum(t["candidates"] for t in table)
    tokens_out = sum(t["tokens_out"] for t in table)
    return {
        "run_name": cfg.run_name, "model": cfg.engine.model, "engine": cfg.engine.kind,
        "seeds": {"rows_read": loaded.rows_read, "processed": len(loaded.seeds),
                  "quarantined": len(loaded.quarantine),
                  "quarantine_reasons": dict(Counter(q["reason"] for q in loaded.quarantine))},
        "chunks": n_chunks,
        "totals": {"candidates": n_gen, "accepted": len(kept), "rejected": n_gen - len(kept),
                   "rewrites_rejected": sum(t["rewrites_rejected"] for t in table),
                   "tokens_in": sum(t["tokens_in"] for t in table), "tokens_out": tokens_out},
        "by_dataset_aug": table,
        "by_math_level_type": [{"level": lv, "type": ty, "candidates": c, "accepted": a}
                               for (lv, ty), (c, a) in sorted(math_lt.items())],
        "per_seed_pass_rate": {f"{s}|{a}": round(acc / tot, 4) for (s, a), (acc, tot) in sorted(seeds_per_variant.items()) if tot},
        "wall_time_s": round(wall_s, 2),
        "throughput": {"candidates_per_s": round(n_gen / wall_s, 3) if wall_s else None,
                       "tokens_out_per_s": round(tokens_out / wall_s, 1) if wall_s else None},
    }


def finalize(job, loaded, n_chunks: int, wall_start: float) -> dict:
    from metamath_ray.pipeline.augment import CANDIDATE_SCHEMA, _table, config_hash, versions

    store, cfg, log = job.store, job.cfg, job.log
    shards = store.list("candidates", ".parquet")
    # One read of the committed work; remember which chunk (shard name) each seed belongs to.
    candidates, chunk_of_seed = [], {}
    for s in shards:
        rows = store.read_table(s).to_pylist()
        candidates.extend(rows)
        chunk_of_seed.update((r["seed_id"], s.rsplit("/", 1)[1]) for r in rows)
    solved = [r for r in candidates if r["stage"] == "solve"]
    kept, dropped = clean_accepted([r for r in solved if r["accepted"]], cfg)
    rejected = [r for r in candidates if not r["accepted"]] + dropped

    # data/ and rejected/ keep the chunk layout of candidates/ (one shard each per chunk).
    manifest_shards = []
    for kind, rows in (("data", kept), ("rejected", rejected)):
        per = defaultdict(list)
        for r in rows:
            per[chunk_of_seed[r["seed_id"]]].append(r)
        for name in sorted({n for n in chunk_of_seed.values()}):
            part = sorted(per.get(name, []), key=lambda r: r["id"])
            info = store.commit_table(f"{kind}/{name}", _table(part, CANDIDATE_SCHEMA))
            manifest_shards.append({"kind": kind, **info.as_dict()})
    rows_per_shard = Counter(chunk_of_seed[r["seed_id"]] for r in candidates)
    for s in shards:
        manifest_shards.append({"kind": "candidates", "path": s, "rows": rows_per_shard[s.rsplit("/", 1)[1]]})
    manifest_shards.append({"kind": "quarantine", "path": "quarantine/part-00000.parquet", "rows": len(loaded.quarantine)})

    records = export.to_metamathqa(kept, cfg.export_mix, seed=cfg.sampling.seed)
    buf = io.BytesIO()
    export.write_json(records, buf)
    store.write_bytes("metamathqa.json", buf.getvalue())

    stats = build_stats(candidates, kept, dropped, loaded, n_chunks, time.time() - wall_start, cfg)
    stats["export"] = {"records": len(records), "by_type": dict(Counter(r["type"] for r in records))}
    # This invocation's generation passes (a resumed run lists only the chunks it generated).
    passes = job.timings
    gen_s = sum(p["seconds"] for p in passes)
    stats["timing"] = {"passes": passes, "generation_s": round(gen_s, 2),
                       "to_first_result_s": round(sum(p["to_first_result_s"] for p in passes), 2),
                       "other_s": round(time.time() - wall_start - gen_s, 2)}
    _check_accounting(stats, candidates, kept, rejected, loaded)
    store.write_json("stats.json", stats)
    with tempfile.TemporaryDirectory() as tmp:
        for path in report.write_report(stats, tmp):
            with open(path, "rb") as f:
                store.write_bytes(f"report/{os.path.basename(path)}", f.read())

    manifest = {
        "run_name": cfg.run_name, "uri": store.uri, "config_hash": config_hash(cfg),
        "config": _redacted(cfg.model_dump(mode="json")), "versions": versions(),
        "shards": manifest_shards, "metamathqa_records": len(records),
        "totals": stats["totals"], "seeds": stats["seeds"], "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_json("manifest.json", manifest)  # last: its presence means the run is complete
    log_table(stats, log)
    log(f"[augment] outputs in {store.uri}: data/, rejected/, metamathqa.json ({len(records)} records), "
        "quarantine/, stats.json, report/report.md, manifest.json")
    return manifest


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


def _redacted(obj):
    """Configs written to storage never carry secrets (keys that look like credentials)."""
    if isinstance(obj, dict):
        return {k: ("***" if any(s in k.lower() for s in ("secret", "password", "token", "access_key")) and v else _redacted(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redacted(v) for v in obj]
    return obj


def log_table(stats: dict, log) -> None:
    s = stats["seeds"]
    log(f"[augment] seeds: {s['rows_read']} read = {s['processed']} processed + {s['quarantined']} quarantined")
    header = f"{'dataset':8} {'aug':11} {'generated':>9} {'accepted':>8} {'rejected':>8} {'rate':>6} {'rewrites_rej':>12}"
    log(header)
    for t in stats["by_dataset_aug"]:
        rate = "-" if t["acceptance_rate"] is None else f"{t['acceptance_rate']:.1%}"
        log(f"{t['dataset']:8} {t['aug']:11} {t['candidates']:>9} {t['accepted']:>8} {t['rejected']:>8} {rate:>6} {t['rewrites_rejected']:>12}")
    tot = stats["totals"]
    log(f"{'total':8} {'':11} {tot['candidates']:>9} {tot['accepted']:>8} {tot['rejected']:>8}")
