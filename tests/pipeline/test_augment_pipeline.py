"""The augment job end to end on local Ray (loopback) with the hf engine and the tiny model.

A random model's chains of thought are rejected, which exercises rejection and accounting.
"""

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment

pytestmark = pytest.mark.pipeline

OVERRIDES = [
    "engine.kind=hf", "engine.model=tiny", "engine.num_gpus_per_replica=0", "engine.batch_size=64",
    "sampling.max_tokens=16", "rewrite_sampling.max_tokens=16", "limit=3", "chunk_seeds=2",
    "aug.AnsAug.k=2", "aug.AnsAug.max_attempts=3", "aug.Rephrasing.k=1", "aug.Rephrasing.max_attempts=1",
    "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=2",
    "aug.SV.k=1", "aug.SV.max_attempts=1", "aug.SV.max_variants=1",
]


def _cfg(output, *extra):
    return load_config(AugmentConfig, None, OVERRIDES + list(extra), base={"output": output, "run_name": "r1"})


def _ids(store, kind):
    return sorted(i for s in store.list(kind, ".parquet") for i in store.read_table(s).column("id").to_pylist())


def _check_run(store):
    stats, manifest = store.read_json("stats.json"), store.read_json("manifest.json")
    seeds = stats["seeds"]
    assert seeds["rows_read"] == seeds["processed"] + seeds["quarantined"] == 6
    cand = _ids(store, "candidates")
    assert len(cand) == len(set(cand)), "duplicate candidate ids"
    solve = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist() if r["stage"] == "solve"]
    data, rejected = _ids(store, "data"), _ids(store, "rejected")
    assert set(data).isdisjoint(rejected)
    assert set(data) | set(rejected) == set(cand)  # every candidate is accepted or rejected
    assert all(r["reject_reason"] for s in store.list("rejected") for r in store.read_table(s).to_pylist())
    for t in stats["by_dataset_aug"]:
        assert t["candidates"] == t["accepted"] + t["rejected"]
    assert sum(t["candidates"] for t in stats["by_dataset_aug"]) == len(solve)
    assert {t["aug"] for t in stats["by_dataset_aug"]} >= {"AnsAug", "FOBAR"}
    # adaptive: AnsAug variants with nothing accepted were resampled up to max_attempts (3)
    ans = [r for r in solve if r["aug"] == "AnsAug"]
    assert max(r["sample_idx"] for r in ans) == 2 and {r["round"] for r in ans} == {0, 1}
    listed = {s["path"] for s in manifest["shards"]}
    assert set(store.list("data")) <= listed and set(store.list("candidates")) <= listed
    assert store.exists("metamathqa.json") and store.exists("report/report.md")
    return cand


def test_augment_run_resume_and_rerun(local_ray, tmp_path, caplog):
    from metamath_ray.storage import RunStore

    cfg = _cfg(str(tmp_path))
    run_augment(cfg)
    store = RunStore(str(tmp_path), "r1")
    ids = _check_run(store)
    shards = {s: store.read_table(s).num_rows for s in store.list("candidates")}
    assert len(shards) == 3  # 6 seeds in chunks of 2

    # A rerun of a complete run changes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r1" / "candidates").iterdir()}
    run_augment(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r1" / "candidates").iterdir()} == before

    # Simulate a crash after chunk 0 was committed: only the missing chunks are generated again,
    # and the run ends with the same record ids.
    for rel in ["manifest.json", "stats.json", "candidates/part-00001.parquet", "candidates/part-00002.parquet"]:
        (tmp_path / "r1" / rel).unlink()
    for sub in ("data", "rejected"):
        for p in (tmp_path / "r1" / sub).iterdir():
            p.unlink()
    caplog.clear()
    caplog.set_level("INFO", logger="metamath_ray")
    run_augment(cfg)
    assert "1 of 3 chunks already committed" in caplog.text
    assert _check_run(store) == ids


def test_changed_config_is_refused(local_ray, tmp_path):
    run_augment(_cfg(str(tmp_path), "augmentations=[AnsAug]"))
    with pytest.raises(RuntimeError, match="different config"):
        run_augment(_cfg(str(tmp_path), "augmentations=[AnsAug]", "sampling.temperature=0.3"))


def test_augment_to_s3(local_ray, s3_env):
    from metamath_ray.ray_setup import init_ray
    from metamath_ray.storage import RunStore

    # Ray's workers must see the S3 credentials, as on a cluster (the nodes' environment or role):
    # this module's Ray started before s3_env set them. A worker without credentials uploads unsigned
    # aws-chunked parts, which the moto server stores framing and all (finalize's tasks read them back).
    local_ray.shutdown()
    init_ray(num_cpus=2, num_gpus=1)

    out = f"s3://{s3_env}/runs"
    run_augment(_cfg(out, "augmentations=[AnsAug, FOBAR]", "seeds=[{path: 'bundled:gsm8k'}]"))
    store = RunStore(out, "r1")
    manifest = store.read_json("manifest.json")
    assert manifest["seeds"]["processed"] == 3
    assert "testing-secret-do-not-log" not in str(manifest)
    assert store.list("data") and store.list("rejected")
