"""The run-wide outputs of finalize, assembled from per-chunk parts in Ray tasks, so the driver's
memory does not grow with the run:

  metamathqa.json  per type (EXPORT_TYPES order), its id space cut into ranges of ~EXPORT_RANGE_ROWS
                   records; one task per range reads that range of every chunk's export part (row
                   groups outside it are skipped by their statistics), sorts it by id and commits
                   the JSON text -> export-json/<mix>/TT-RRRR.txt. The driver only concatenates these
                   fragments, in order, into the file (a byte copy with one buffer).
  stats.json       the per-seed pass rates (one entry per seed x augmentation) are summed, rounded
                   and formatted in one task -> per_seed_pass_rate.txt; the driver writes the rest of
                   stats.json around it, copying the fragment in.
Both files are streamed through the storage layer's atomic write (a reader sees the old file or
the new, never a partial one); every fragment is committed once, so a rerun reuses them.
"""

from __future__ import annotations

import hashlib
import json
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from metamath_ray import storage
from metamath_ray.augment import export
from metamath_ray.pipeline.finalize_passes import map_chunks
from metamath_ray.storage import RunStore

EXPORT_RANGE_ROWS = 50_000  # records per export range task (~20-50 MB of JSON text in its memory)
COPY_BLOCK = 4 << 20  # the driver's one buffer when it copies a fragment
PER_SEED_SCHEMA = pa.schema([("key", pa.string()), ("accepted", pa.int64()), ("total", pa.int64())])
_PER_SEED_SLOT = "@@per_seed_pass_rate@@"  # where the fragment goes in stats.json's text


def _copy(store: RunStore, rel: str, out, skip: int = 0) -> None:
    """Append the bytes of `rel` (less its first `skip`) to `out`, a block at a time."""
    with store.fs.open_input_stream(store.path(rel)) as f:
        if skip:
            f.read(skip)
        while block := f.read(COPY_BLOCK):
            out.write(block)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _parts_dataset(store: RunStore, parts: list[str]) -> pads.Dataset:
    return pads.dataset([store.path(p) for p in parts], format="parquet", filesystem=store.fs)


# -- metamathqa.json -------------------------------------------------------------------------------

def id_ranges(n_records: int) -> list[tuple[str, str | None]]:
    """[lo, hi) id ranges (hi None: no bound) that split ~n_records hex ids into ~EXPORT_RANGE_ROWS
    each; any ids are covered, hex hashes are split evenly."""
    k = max(1, min(4096, math.ceil(n_records / EXPORT_RANGE_ROWS)))
    bounds = [format(i * 16**3 // k, "03x") for i in range(1, k)]
    return list(zip([""] + bounds, bounds + [None]))


def _range_filter(type_name: str, lo: str, hi: str | None, cutoff: str | None):
    expr = (pc.field("type") == type_name) & (pc.field("id") >= lo)
    if hi is not None:
        expr &= pc.field("id") < hi
    if cutoff is not None:  # export_mix samples: the type's rows ranked up to the cutoff
        expr &= pc.field("rank") <= cutoff
    return expr


def _export_range(store: RunStore, parts: list[str], item: dict) -> dict:
    """One range of one type, sorted by id, as JSON text: ",\\n" before every record."""
    if not store.exists(item["out"]):
        table = _parts_dataset(store, parts).to_table(
            columns=["id", "line"], filter=_range_filter(item["type"], item["lo"], item["hi"], item["cutoff"]))
        lines = table.sort_by("id")["line"].to_pylist()
        store.commit_bytes(item["out"], "".join(",\n" + line for line in lines).encode("utf-8"))
    # A record line is JSON, newlines escaped: every raw newline byte starts a record.
    with store.fs.open_input_stream(store.path(item["out"])) as f:
        records = sum(block.count(b"\n") for block in iter(lambda: f.read(COPY_BLOCK), b""))
    return {"type": item["type"], "path": item["out"], "records": records}


def _rank_cutoff(store: RunStore, parts: list[str], item: dict) -> dict:
    """The n-th smallest rank among a type's exportable rows (in a task: one column of one type)."""
    table = _parts_dataset(store, parts).to_table(columns=["rank"], filter=pc.field("type") == item["type"])
    ranks = table["rank"].combine_chunks()
    return {"type": item["type"], "cutoff": ranks[pc.sort_indices(ranks)[item["n"] - 1].as_py()].as_py()}


def write_export(store: RunStore, work: str, mix, available: dict[str, int], parts: list[str]) -> dict[str, int]:
    """metamathqa.json from the per-chunk export parts (sorted by type then id): per type in
    EXPORT_TYPES order the `mix` target's lowest-ranked rows, by id. Returns records per type."""
    wanted = export.targets(mix, available)
    sampled = [{"type": t, "n": n} for t, n in wanted.items() if 0 < n < available.get(t, 0)]
    cutoff = {c["type"]: c["cutoff"] for c in map_chunks(lambda item: _rank_cutoff(store, parts, item), sampled)}
    folder = f"{work}/export-json/{_digest(mix)}"  # the fragments depend on the mix too; the work digest does not
    items = [{"type": t, "lo": lo, "hi": hi, "cutoff": cutoff.get(t), "out": f"{folder}/{ti:02d}-{ri:04d}.txt"}
             for ti, t in enumerate(export.EXPORT_TYPES.values()) if wanted.get(t)
             for ri, (lo, hi) in enumerate(id_ranges(wanted[t]))]
    fragments = map_chunks(lambda item: _export_range(store, parts, item), items)

    def write(out) -> None:
        out.write(b"[")
        first = True
        for fragment in (f for f in fragments if f["records"]):
            _copy(store, fragment["path"], out, skip=1 if first else 0)  # the first record follows "[" with "\n"
            first = False
        out.write(b"\n]\n")

    store.write_stream("metamathqa.json", write)
    written: dict[str, int] = {}
    for fragment in fragments:
        if fragment["records"]:
            written[fragment["type"]] = written.get(fragment["type"], 0) + fragment["records"]
    return written


# -- per-seed pass rates in stats.json -------------------------------------------------------------

def per_seed_table(per_seed: dict[str, list[int]]) -> pa.Table:
    """A chunk's per-seed counts ("seed|aug" -> [accepted, generated]) as a committed part."""
    keys = sorted(per_seed)
    return pa.table({"key": pa.array(keys, pa.string()),
                     "accepted": pa.array([per_seed[k][0] for k in keys], pa.int64()),
                     "total": pa.array([per_seed[k][1] for k in keys], pa.int64())}, schema=PER_SEED_SCHEMA)


def per_seed_fragment(table: pa.Table) -> bytes:
    """stats.json's `per_seed_pass_rate` value as `storage.json_bytes` writes it (indent 2, keys
    sorted), from per-seed counts (a key in several parts is summed, as `merge_counts` does)."""
    summed = table.group_by("key").aggregate([("accepted", "sum"), ("total", "sum")])
    rates = sorted((k, round(a / t, 4)) for k, a, t in zip(
        summed["key"].to_pylist(), summed["accepted_sum"].to_pylist(), summed["total_sum"].to_pylist()) if t)
    if not rates:
        return b"{}"
    body = ",\n".join(f"    {json.dumps(k, ensure_ascii=False)}: {json.dumps(r)}" for k, r in rates)
    return ("{\n" + body + "\n  }").encode("utf-8")


def _per_seed_task(store: RunStore, parts: list[str], out: str) -> dict:
    if not store.exists(out):
        table = _parts_dataset(store, parts).to_table() if parts else PER_SEED_SCHEMA.empty_table()
        store.commit_bytes(out, per_seed_fragment(table))
    return {"path": out}


def stats_around_per_seed(stats: dict) -> tuple[bytes, bytes]:
    """stats.json's text before and after the `per_seed_pass_rate` value (`per_seed_fragment`)."""
    text = storage.json_bytes({**stats, "per_seed_pass_rate": _PER_SEED_SLOT})
    head, tail = text.split(json.dumps(_PER_SEED_SLOT).encode(), 1)
    return head, tail


def write_stats(store: RunStore, work: str, stats: dict, per_seed_parts: list[str]) -> None:
    """stats.json: `stats` with the per-seed pass rates of `per_seed_parts` in its
    `per_seed_pass_rate` (computed and formatted in a task, copied in by the driver)."""
    fragment = map_chunks(lambda item: _per_seed_task(store, per_seed_parts, item["out"]),
                          [{"out": f"{work}/per_seed_pass_rate.txt"}])[0]["path"]
    head, tail = stats_around_per_seed(stats)

    def write(out) -> None:
        out.write(head)
        _copy(store, fragment, out)
        out.write(tail)

    store.write_stream("stats.json", write)
