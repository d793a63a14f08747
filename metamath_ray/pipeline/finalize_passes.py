"""Finalize's parallel passes on Ray Data: per-chunk work on workers, small results to the driver.

Three passes over the committed candidate chunks (one chunk = one task; every output committed
once, atomically, under `finalize/<inputs digest>/`, so an interrupted finalize skips what it
committed and a repaired chunk, which changes the digest, starts afresh):
  1. features  per chunk: the rows dedup compares (one representative per variant for the
               question pass, every accepted row for the (question, response) pass), their
               MinHash signatures (vectorised) and LSH band keys -> features/part-NNNNN.parquet
  2. edges     per LSH band: rows sharing a bucket whose signatures match -> edges/band-NN.parquet;
               then one resolve task reads every band's edges and resolves them in id order
               (`dedup.resolve_duplicates`) -> dedup.parquet (one row group per chunk)
  3. outcome   per chunk: its dedup decisions (its row group of dedup.parquet) + decontamination
               applied in Arrow; data/ and rejected/ shards, the chunk's export records
               (export/part-NNNNN.parquet), its per-seed counts (per_seed/part-NNNNN.parquet) and
               its partial stats (done/part-NNNNN.json, committed last)
The driver holds only file names and the per-chunk partial counts (a few KB each); edges, decisions
and per-seed counts stay in files and tasks.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metamath_ray.augment import decontam, dedup, export
from metamath_ray.augment.registry import AUGMENTATIONS, augmentation
from metamath_ray.storage import RunStore

FINALIZE_VERSION = 2  # bump when the work files' layout or meaning changes
QUESTION_COT, QUESTION_POT, QUESTION_RESPONSE = 0, 1, 2  # dedup passes (PoT questions among themselves)
_SEP = "\x1f"


def inputs_digest(store: RunStore, shards: dict[str, tuple[int, str]], cfg) -> str:
    """What the work files depend on: the chunk shards (path, size, modification time: a chunk
    committed again after a crash is new input) and the dedup/decontam settings."""
    infos = store.fs.get_file_info([store.path(path) for _, path in shards.values()])
    identity = [[path, info.size, info.mtime_ns] for (_, path), info in zip(shards.values(), infos)]
    payload = {"v": FINALIZE_VERSION, "shards": identity,
               "dedup": cfg.dedup.model_dump(mode="json"), "decontam": cfg.decontam.model_dump(mode="json"),
               "export_seed": cfg.sampling.seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def map_chunks(fn: Callable[[dict], dict], items: list[dict]) -> list[dict]:
    """`fn` on every item, one Ray Data task each (items and results are small JSON-able dicts);
    results in the order of `items` (Ray Data does not promise to keep it, so it is restored)."""
    import ray

    if not items:
        return []
    rows = [{"at": i, "item": json.dumps(item)} for i, item in enumerate(items)]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    done = ds.map(lambda row: {"at": row["at"], "result": json.dumps(fn(json.loads(row["item"])))}).take_all()
    return [json.loads(r["result"]) for r in sorted(done, key=lambda r: r["at"])]


def read_columns(store: RunStore, rel: str, columns: list[str]) -> pa.Table:
    """Only `columns` of a Parquet file of the run (the others are not read)."""
    with store.fs.open_input_file(store.path(rel)) as f:
        return pq.read_table(f, columns=columns)


# -- pass 1: features ------------------------------------------------------------------------------

def _accepted_solutions(table: pa.Table) -> pa.Table:
    solved = pc.and_(pc.equal(table["stage"], "solve"), pc.fill_null(table["accepted"], False))
    return table.filter(solved).sort_by("id")


def _variant_keys(table: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(table["seed_id"], table["aug"], pc.cast(table["variant"], pa.string()), _SEP)


def _dedup_rows(table: pa.Table) -> list[tuple[int, pa.Table, list[str]]]:
    """(pass, rows, texts) of one chunk's accepted solutions, as `finalize.clean_accepted` builds them."""
    vkeys = _variant_keys(table).to_numpy(zero_copy_only=False)
    _, first = np.unique(vkeys, return_index=True)  # sorted by id: the first row of a variant is its smallest id
    reps = table.take(np.sort(first))
    rank = {a: str(i) for i, a in enumerate(AUGMENTATIONS)}
    order = [f"{rank[a]}-{s}-{v:05d}" for a, s, v in zip(reps["aug"].to_pylist(), reps["seed_id"].to_pylist(),
                                                        reps["variant"].to_pylist())]
    reps = reps.append_column("order", pa.array(order, pa.string()))
    out = []
    for code, programs in ((QUESTION_COT, False), (QUESTION_POT, True)):
        part = reps.filter(pc.equal(pc.equal(reps["aug"], "PoT"), programs))
        out.append((code, part, [str(q or "") for q in part["query"].to_pylist()]))
    rows = table.append_column("order", table["id"])
    texts = [f"{q or ''}\n{r or ''}" for q, r in zip(rows["query"].to_pylist(), rows["response"].to_pylist())]
    out.append((QUESTION_RESPONSE, rows, texts))
    return out


def _sibling_columns(rows: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(family, member) of `finalize.backward_siblings`; null family when the aug has none."""
    with_siblings = [a for a in AUGMENTATIONS if augmentation(a).distinct_siblings]
    is_sibling = pc.is_in(rows["aug"], pa.array(with_siblings, pa.string()))
    family = pc.if_else(is_sibling, pc.binary_join_element_wise(rows["seed_id"], rows["aug"], _SEP), None)
    return family, rows["variant"]


def chunk_features(table: pa.Table, cfg) -> pa.Table:
    """The dedup features of one chunk: one row per compared text, with signature and band keys."""
    hasher = dedup.MinHasher(cfg.dedup.num_perm)
    parts = []
    for code, rows, texts in _dedup_rows(_accepted_solutions(table)):
        if not rows.num_rows:
            continue
        norms = [dedup.normalize_text(t) for t in texts]
        sigs = hasher.signatures(norms, cfg.dedup.ngram)
        keys = dedup.band_keys(sigs, cfg.dedup.threshold)
        digests = [int.from_bytes(hashlib.sha1(n.encode()).digest()[:8], "little") for n in norms]
        family, member = _sibling_columns(rows)
        columns = {
            "pass": pa.array(np.full(rows.num_rows, code, np.int8)), "order": rows["order"],
            "vkey": _variant_keys(rows), "id": rows["id"], "digest": pa.array(digests, pa.uint64()),
            "family": family, "member": member,
            "signature": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(4 * sigs.shape[1]), len(sigs), [None, pa.py_buffer(np.ascontiguousarray(sigs).tobytes())]),
            **{f"band_{b}": pa.array(keys[:, b]) for b in range(keys.shape[1])},
        }
        parts.append(pa.table(columns))
    return pa.concat_tables(parts) if parts else None


# -- pass 2: edges ---------------------------------------------------------------------------------

# One match edge: the dedup pass, the earlier and later row (their `order`), whether the texts are
# equal, the variants of both (a dropped question drops its variant) and the later row's chunk.
EDGE_SCHEMA = pa.schema([("pass", pa.int8()), ("earlier", pa.string()), ("later", pa.string()), ("exact", pa.bool_()),
                         ("earlier_vkey", pa.string()), ("later_vkey", pa.string()), ("later_chunk", pa.string())])
# One dedup decision: a dropped variant (key = vkey) or a dropped row (key = id) of `chunk`.
DECISION_SCHEMA = pa.schema([("chunk", pa.string()), ("kind", pa.string()), ("key", pa.string()),
                             ("reason", pa.string()), ("detail", pa.string())])


def band_edges(store: RunStore, feature_files: list[str], band: int, threshold: float) -> pa.Table:
    """The match edges (EDGE_SCHEMA) one band finds: pairs sharing one of its buckets whose signatures
    agree on >= threshold, distinct backward siblings excepted, pairs an earlier band finds left out."""
    tables = [read_columns(store, f, ["pass", f"band_{band}"]) for f in feature_files]
    file_of = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    row_of = np.concatenate([np.arange(t.num_rows) for t in tables]) if tables else np.zeros(0, np.int64)
    both = pa.concat_tables(tables) if tables else None
    if both is None or both.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    left, right = dedup.bucket_pairs(both[f"band_{band}"].to_numpy(), both["pass"].to_numpy())
    if not len(left):
        return EDGE_SCHEMA.empty_table()
    needed = np.unique(np.concatenate([left, right]))
    details = _rows_at(store, feature_files, file_of[needed], row_of[needed])
    at = {int(g): i for i, g in enumerate(needed)}
    # A pair that also shares a bucket in an earlier band is that band's task's edge: report each once.
    keys = dedup.band_keys(np.stack([d["sig"] for d in details]), threshold)[:, :band]
    edges = []
    for a, b in zip(left.tolist(), right.tolist()):
        x, y = details[at[a]], details[at[b]]
        if x["family"] is not None and x["family"] == y["family"] and x["member"] != y["member"]:
            continue  # distinct backward siblings of one seed
        if band and (keys[at[a]] == keys[at[b]]).any():
            continue
        if np.mean(x["sig"] == y["sig"]) < threshold:
            continue
        first, second = (x, y) if x["order"] < y["order"] else (y, x)
        edges.append((int(x["pass"]), first["order"], second["order"], x["digest"] == y["digest"],
                      first["vkey"], second["vkey"], second["chunk"]))
    return pa.Table.from_pylist([dict(zip(EDGE_SCHEMA.names, e)) for e in edges], schema=EDGE_SCHEMA)


def resolve_edges(edges: pa.Table) -> pa.Table:
    """Dedup decisions (DECISION_SCHEMA, sorted by chunk) from every band's edges: the question passes
    first (a dropped question drops its variant), then (question, response) pairs among the surviving
    variants, each resolved in id order exactly as `finalize.clean_accepted` orders `dedup_rows`."""
    unique = sorted(set(zip(*(edges[name].to_pylist() for name in EDGE_SCHEMA.names))))
    chunk_of = {e[2]: e[6] for e in unique}  # the later row of an edge is the one dropped
    out: list[tuple] = []
    dropped_variants: set[str] = set()
    for code in (QUESTION_COT, QUESTION_POT):
        mine = [e for e in unique if e[0] == code]
        vkey = {e[1]: e[4] for e in mine} | {e[2]: e[5] for e in mine}
        for order, (_, dup_of) in dedup.resolve_duplicates([(e[1], e[2], e[3]) for e in mine]).items():
            dropped_variants.add(vkey[order])
            out.append((chunk_of[order], "variant", vkey[order], "duplicate_query", f"duplicate of {dup_of}"))
    mine = [e for e in unique if e[0] == QUESTION_RESPONSE]
    vkey = {e[1]: e[4] for e in mine} | {e[2]: e[5] for e in mine}
    resolved = dedup.resolve_duplicates([(e[1], e[2], e[3]) for e in mine], excluded=lambda i: vkey[i] in dropped_variants)
    out += [(chunk_of[k], "row", k, f"{reason}_response", f"duplicate of {dup_of}") for k, (reason, dup_of) in resolved.items()]
    out.sort()
    return pa.Table.from_pylist([dict(zip(DECISION_SCHEMA.names, d)) for d in out], schema=DECISION_SCHEMA)


def decisions_bytes(decisions: pa.Table) -> bytes:
    """dedup.parquet: one row group per chunk (sorted by chunk), so a chunk's task reads only its own."""
    buf = io.BytesIO()
    chunks = decisions["chunk"].to_pylist()
    starts = [i for i in range(len(chunks)) if i == 0 or chunks[i] != chunks[i - 1]] + [len(chunks)]
    with pq.ParquetWriter(buf, DECISION_SCHEMA) as writer:
        for lo, hi in zip(starts[:-1], starts[1:]):
            writer.write_table(decisions.slice(lo, hi - lo))
    return buf.getvalue()


def chunk_decisions(store: RunStore, rel: str, chunk: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(dropped variant -> detail, dropped row id -> (reason, detail)) of one chunk, from dedup.parquet."""
    with store.fs.open_input_file(store.path(rel)) as f:
        parquet = pq.ParquetFile(f)
        column = parquet.schema_arrow.get_field_index("chunk")
        groups = []
        for g in range(parquet.metadata.num_row_groups):
            stats = parquet.metadata.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max or stats.min <= chunk <= stats.max:
                groups.append(g)
        table = parquet.read_row_groups(groups) if groups else DECISION_SCHEMA.empty_table()
    table = table.filter(pc.equal(table["chunk"], chunk))
    variants, rows = {}, {}
    for kind, key, reason, detail in zip(*(table[c].to_pylist() for c in ("kind", "key", "reason", "detail"))):
        if kind == "variant":
            variants[key] = detail
        else:
            rows[key] = (reason, detail)
    return variants, rows


def _rows_at(store: RunStore, feature_files: list[str], files: np.ndarray, rows: np.ndarray) -> list[dict]:
    """The feature rows at (file, row) positions, in the order given, signatures as uint32 arrays."""
    out: list[dict | None] = [None] * len(files)
    for f in np.unique(files):
        where = np.flatnonzero(files == f)
        table = read_columns(store, feature_files[f], ["pass", "order", "vkey", "id", "digest", "family", "member", "signature"])
        picked = table.take(rows[where]).to_pylist()
        for i, row in zip(where, picked):
            row["chunk"] = feature_files[f].rsplit("/", 1)[-1]
            row["sig"] = np.frombuffer(row.pop("signature"), dtype=np.uint32)
            out[i] = row
    return out  # type: ignore[return-value]


# -- pass 3: outcome -------------------------------------------------------------------------------

def apply_decisions(table: pa.Table, dropped_variants: dict[str, str], dropped_rows: dict[str, tuple[str, str]],
                    index, fields=("query",)) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(data, rejected, dropped) of one chunk: accepted solutions minus duplicates and contaminated
    rows, and every other candidate with its reason (dropped rows rewritten as `clean_accepted` does)."""
    accepted = pc.and_(pc.equal(table["stage"], "solve"), pc.fill_null(table["accepted"], False)).to_numpy(
        zero_copy_only=False)
    ids, vkeys = table["id"].to_pylist(), _variant_keys(table).to_pylist()
    reason: dict[int, tuple[str, str | None]] = {}
    for i in np.flatnonzero(accepted):
        if vkeys[i] in dropped_variants:
            reason[int(i)] = ("duplicate_query", dropped_variants[vkeys[i]])
        elif ids[i] in dropped_rows:
            reason[int(i)] = dropped_rows[ids[i]]
    if index is not None:
        texts = {f: table[f].to_pylist() for f in fields}
        todo = [int(i) for i in np.flatnonzero(accepted) if int(i) not in reason]
        _, hits = decontam.decontaminate([{"at": i, **{f: texts[f][i] for f in fields}} for i in todo], index, fields=fields)
        reason.update({hit["at"]: ("contaminated", hit["reject_detail"]) for hit in hits})
    keep = accepted.copy()
    keep[list(reason)] = False
    positions = np.array(sorted(reason), dtype=np.int64)
    rejected_cols = _with_reasons(table, positions, [reason[int(p)] for p in positions])
    data = table.filter(pa.array(keep)).sort_by("id")
    rejected = rejected_cols.filter(pa.array(~keep)).sort_by("id")
    return data, rejected, rejected_cols.take(positions)


def _with_reasons(table: pa.Table, positions: np.ndarray, reasons: list[tuple[str, str | None]]) -> pa.Table:
    if not len(positions):
        return table
    acc = table["accepted"].to_numpy(zero_copy_only=False).copy()
    rr, rd = table["reject_reason"].to_pylist(), table["reject_detail"].to_pylist()
    acc[positions] = False
    for p, (r, d) in zip(positions.tolist(), reasons):
        rr[p], rd[p] = r, d
    for name, values, typ in (("accepted", acc, pa.bool_()), ("reject_reason", rr, pa.string()), ("reject_detail", rd, pa.string())):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, typ))
    return table


def export_part(data: pa.Table, seed: int) -> pa.Table:
    """The chunk's exportable rows as (type rank, id, rank, json line), sorted by type then id."""
    order = {t: i for i, t in enumerate(export.EXPORT_TYPES.values())}
    rows = data.select(["id", "dataset", "aug", "query", "original_question", "response"]).to_pylist()
    rows = [r for r in rows if export.is_exportable(r)]
    rows.sort(key=lambda r: (order[export.export_type(r)], r["id"]))
    return pa.table({
        "type": pa.array([export.export_type(r) for r in rows], pa.string()),
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "rank": pa.array([export.rank_of(seed, r["id"]) for r in rows], pa.string()),
        "line": pa.array([export.record_json(export.record_of(r)) for r in rows], pa.string()),
    })
