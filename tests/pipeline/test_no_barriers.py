"""A wave is one event loop (pipeline/augment.py `WaveLoop`), not passes with barriers between them.

(a) It generates exactly what the pass-by-pass job of main (25be256) generated on the same engine
outputs: same candidate ids, rounds, sample indices and verdicts, in every adaptive mode. The expected
rows were computed with that code and pinned in fixtures/pass_based_candidates.json.
(b) Nothing waits for the slowest request: with one seed's rewrite slow, another seed's chains of
thought are judged (and resampled) before that rewrite comes back.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment
from metamath_ray.storage import RunStore

pytestmark = pytest.mark.pipeline

FIXTURE = Path(__file__).parent / "fixtures" / "pass_based_candidates.json"
MODES = {
    "uniform": ["adaptive=uniform"],
    "off": ["adaptive=off"],
    "prop2diff": ["adaptive=prop2diff", "budget_per_variant=2"],
}
OVERRIDES = [
    "engine.kind=scripted", "engine.batch_size=3", "limit=6", "chunk_seeds=2", "chunks_per_wave=2",
    "augmentations=[AnsAug, Rephrasing, FOBAR]", "aug.AnsAug.k=2", "aug.AnsAug.max_attempts=6",
    "aug.Rephrasing.k=2", "aug.Rephrasing.max_attempts=5", "aug.Rephrasing.max_variants=2",
    "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=4", "aug.FOBAR.max_variants=2", "decontam.enabled=false",
]
COLUMNS = ("id", "stage", "seed_id", "aug", "variant", "sample_idx", "round", "accepted", "reject_reason")


def _seed_number(row: dict) -> int:
    return int(str(row["seed_id"]).rsplit("/", 1)[-1])


def mixed_answers(row: dict) -> str:
    """Rewrites: every third seed's are refused (empty), the others echo the question. Chains of
    thought: right for about a third of (seed, aug, variant, sample), decided by a hash of those."""
    if "expected" not in row:
        return "" if _seed_number(row) % 3 == 0 else "Rephrased: " + str(row["prompt"])[-200:]
    key = f"{row['seed_id']}|{row['aug']}|{row['variant']}|{row['sample_idx']}"
    right = zlib.crc32(key.encode()) % 3 == 0
    return f"Attempt {row['sample_idx']}.\nThe answer is: {row['expected'] if right else '-98765'}"


def _cfg(output: str, run_name: str, script, *extra: str) -> AugmentConfig:
    return load_config(AugmentConfig, None, [*OVERRIDES, f"engine.script={__name__}:{script.__name__}", *extra],
                       base={"output": output, "run_name": run_name})


def candidates_of(output: str, run_name: str) -> list[list]:
    store = RunStore(output, run_name)
    rows = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist()]
    return sorted([r[c] for c in COLUMNS] for r in rows)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_same_candidates_as_the_pass_based_job(local_ray, tmp_path, mode):
    run_augment(_cfg(str(tmp_path), mode, mixed_answers, *MODES[mode]))
    expected = json.loads(FIXTURE.read_text())[mode]
    got = candidates_of(str(tmp_path), mode)
    assert len(got) == len(expected)
    assert got == expected
    assert any(r[6] >= 2 for r in got) or mode == "off"  # the fixture exercises later rounds


RELEASE_FLAG = ""  # set by the test: the slow rewrite returns once this file exists (or after 60 s)


def slow_gsm8k_rewrite(row: dict) -> str:
    """The GSM8K seed's rewrite waits until the other seed's resamples were judged (the test then
    writes RELEASE_FLAG); with a barrier anywhere that never happens and it gives up after 60 s.
    Everything else answers at once (wrong, so AnsAug resamples)."""
    import os

    if "expected" not in row:
        if str(row["seed_id"]).startswith("gsm8k"):
            deadline = time.monotonic() + 60
            while not os.path.exists(RELEASE_FLAG) and time.monotonic() < deadline:
                time.sleep(0.05)
        return "Rephrased: " + str(row["prompt"])[-200:]
    return f"Attempt {row['sample_idx']}.\nThe answer is: -98765"


def test_no_barrier_behind_a_slow_rewrite(local_ray, tmp_path, monkeypatch):
    from metamath_ray.pipeline import augment

    flag = tmp_path / "release"
    monkeypatch.setitem(globals(), "RELEASE_FLAG", str(flag))
    judged_at: list[tuple[float, dict]] = []
    rewritten_at: dict[str, float] = {}
    on_judged, on_rewrites = augment.WaveLoop._on_judged, augment.WaveLoop._on_rewrites

    def record_judged(self, candidates):
        judged_at.extend((time.monotonic(), dict(c)) for c in candidates)
        if any(not c["seed_id"].startswith("gsm8k") and c["round"] >= 1 for c in candidates):
            flag.touch()
        return on_judged(self, candidates)

    def record_rewrites(self, rows):
        rewritten_at.update({r["seed_id"]: time.monotonic() for r in rows})
        return on_rewrites(self, rows)

    monkeypatch.setattr(augment.WaveLoop, "_on_judged", record_judged)
    monkeypatch.setattr(augment.WaveLoop, "_on_rewrites", record_rewrites)
    # two replicas: the slow rewrite holds one (a replica runs one batch at a time), the other serves the rest
    run_augment(_cfg(str(tmp_path), "slow", slow_gsm8k_rewrite, "limit=1", "chunk_seeds=2", "chunks_per_wave=1",
                     "engine.replicas=2", "engine.num_gpus_per_replica=0", "engine.batch_size=1",
                     "augmentations=[AnsAug, Rephrasing]",
                     "aug.Rephrasing.max_variants=1", "aug.AnsAug.max_attempts=4"))
    slow_seed = next(s for s in rewritten_at if s.startswith("gsm8k"))
    slow_done = rewritten_at[slow_seed]
    before = [c for t, c in judged_at if t < slow_done and c["seed_id"] != slow_seed]
    assert {c["seed_id"] for t, c in judged_at} == set(rewritten_at) and len(rewritten_at) == 2
    # the other seed's round 0 and its resamples (round 1 on) were judged while the slow rewrite ran
    assert any(c["round"] == 0 for c in before) and any(c["round"] >= 1 for c in before), before
    assert slow_done - judged_at[0][0] < 50  # released by the other seed's progress, not by the timeout
    other_seed = next(s for s in rewritten_at if s != slow_seed)
    assert rewritten_at[other_seed] < slow_done  # rewrites do not wait for each other either
