"""The pieces that keep finalize's driver flat, without Ray: edge resolution and the per-chunk
decision file, the id ranges of the export tasks, the per-seed fragment spliced into stats.json."""

from __future__ import annotations

import random

import pyarrow as pa

from metamath_ray import storage
from metamath_ray.augment import dedup
from metamath_ray.pipeline import finalize_outputs as outputs
from metamath_ray.pipeline import finalize_passes as passes
from metamath_ray.storage import RunStore


def _edge(code, earlier, later, exact, chunk, ev=None, lv=None):
    return {"pass": code, "earlier": earlier, "later": later, "exact": exact,
            "earlier_vkey": ev or f"v{earlier}", "later_vkey": lv or f"v{later}", "later_chunk": chunk}


def test_resolve_edges_is_the_greedy_id_order_resolution_and_reads_back_per_chunk(tmp_path):
    edges = [
        _edge(passes.QUESTION_COT, "a", "b", True, "part-00001.parquet"),
        _edge(passes.QUESTION_COT, "b", "c", False, "part-00002.parquet"),  # b dropped: c has no kept match
        _edge(passes.QUESTION_RESPONSE, "r1", "r2", False, "part-00001.parquet"),
        _edge(passes.QUESTION_RESPONSE, "r1", "r3", True, "part-00002.parquet", lv="vb"),  # r3's variant dropped
        _edge(passes.QUESTION_RESPONSE, "r1", "r2", False, "part-00001.parquet"),  # found by two bands: counted once
    ]
    decisions = passes.resolve_edges(pa.Table.from_pylist(edges, schema=passes.EDGE_SCHEMA))
    assert decisions.to_pylist() == [
        {"chunk": "part-00001.parquet", "kind": "row", "key": "r2", "reason": "duplicate_near_response",
         "detail": "duplicate of r1"},
        {"chunk": "part-00001.parquet", "kind": "variant", "key": "vb", "reason": "duplicate_query",
         "detail": "duplicate of a"},
    ]
    assert dedup.resolve_duplicates([("a", "b", True), ("b", "c", False)]) == {"b": ("duplicate_exact", "a")}
    store = RunStore(str(tmp_path), "r")
    store.commit_bytes("dedup.parquet", passes.decisions_bytes(decisions))
    assert passes.chunk_decisions(store, "dedup.parquet", "part-00001.parquet") == (
        {"vb": "duplicate of a"}, {"r2": ("duplicate_near_response", "duplicate of r1")})
    assert passes.chunk_decisions(store, "dedup.parquet", "part-00002.parquet") == ({}, {})


def test_decision_file_has_one_row_group_per_chunk(tmp_path):
    rows = [{"chunk": f"part-{c:05d}.parquet", "kind": "row", "key": f"{c}-{i}", "reason": "x", "detail": None}
            for c in range(5) for i in range(c)]
    store = RunStore(str(tmp_path), "r")
    store.commit_bytes("d.parquet", passes.decisions_bytes(pa.Table.from_pylist(rows, schema=passes.DECISION_SCHEMA)))
    import pyarrow.parquet as pq

    assert pq.ParquetFile(store.path("d.parquet")).metadata.num_row_groups == 4  # chunk 0 has none
    for c in range(5):
        _, dropped = passes.chunk_decisions(store, "d.parquet", f"part-{c:05d}.parquet")
        assert sorted(dropped) == sorted(f"{c}-{i}" for i in range(c))


def test_id_ranges_cover_every_id_once_in_order():
    rng = random.Random(0)
    ids = [f"{rng.getrandbits(96):024x}" for _ in range(2000)] + ["", "0", "fff", "ffffffffffff", "zz", "G"]
    for n in (1, outputs.EXPORT_RANGE_ROWS, 7 * outputs.EXPORT_RANGE_ROWS + 1):
        ranges = outputs.id_ranges(n)
        assert ranges[0][0] == "" and ranges[-1][1] is None
        assert all(hi == lo for (_, hi), (lo, _) in zip(ranges, ranges[1:]))
        for i in ids:
            assert sum(1 for lo, hi in ranges if lo <= i and (hi is None or i < hi)) == 1
    assert len(outputs.id_ranges(7 * outputs.EXPORT_RANGE_ROWS + 1)) == 8


def test_stats_with_the_per_seed_fragment_is_exactly_json_bytes():
    per_seed = {"gsm8k/train/2|AnsAug": [1, 3], "gsm8k/train/10|AnsAug": [2, 2], "math/train/é|SV": [0, 5],
                "math/train/x|FOBAR": [0, 0]}
    stats = {"run_name": "r", "totals": {"candidates": 10}, "wall_time_s": 1.5, "per_seed_pass_rate": None}
    halves = [{k: v for i, (k, v) in enumerate(per_seed.items()) if i % 2 == j} for j in (0, 1)]
    table = pa.concat_tables([outputs.per_seed_table(h) for h in halves])
    head, tail = outputs.stats_around_per_seed(stats)
    expected = {k: round(a / t, 4) for k, (a, t) in per_seed.items() if t}
    assert head + outputs.per_seed_fragment(table) + tail == storage.json_bytes({**stats, "per_seed_pass_rate": expected})
    empty = outputs.per_seed_fragment(outputs.PER_SEED_SCHEMA.empty_table())
    assert head + empty + tail == storage.json_bytes({**stats, "per_seed_pass_rate": {}})
