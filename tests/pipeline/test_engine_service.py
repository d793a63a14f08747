"""Engines start once per job and never outlive it (local Ray on loopback, the scripted engine).

A job with a rewrite pass and adaptive rounds runs several generation passes; they must share one
engine replica (stats.json: timing.engine_starts == 1, only the first pass starts it), and after the
job, finished or failed mid-run, no engine actor is alive and every GPU is free again.
"""

from __future__ import annotations

import time

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment
from metamath_ray.storage import RunStore

pytestmark = pytest.mark.pipeline

OVERRIDES = [
    "engine.kind=scripted", "engine.num_gpus_per_replica=1", "engine.batch_size=4", "limit=2", "chunk_seeds=1",
    "chunks_per_wave=1", "augmentations=[AnsAug, Rephrasing]", "aug.AnsAug.k=1", "aug.AnsAug.max_attempts=3",
    "aug.Rephrasing.k=1", "aug.Rephrasing.max_attempts=1",
]


def wrong_answers(row: dict) -> str:
    """Rewrites echo the question (a rephrasing); chains of thought are wrong, so AnsAug resamples."""
    if "expected" not in row:
        return "Rephrased: " + str(row["prompt"])[-200:]
    return "We guess.\nThe answer is: -987654"


def fails_in_round_one(row: dict) -> str:
    if int(row.get("round") or 0) >= 1:
        raise RuntimeError("the engine broke mid-run")
    return wrong_answers(row)


def _cfg(output: str, script, *extra: str) -> AugmentConfig:
    return load_config(AugmentConfig, None, [*OVERRIDES, f"engine.script={__name__}:{script.__name__}", *extra],
                       base={"output": output, "run_name": "engines"})


def _engine_actors_alive() -> list[str]:
    import ray

    return [a["ActorClassName"] for a in ray._private.state.actors().values()
            if "Generator" in a["ActorClassName"] and a["State"] != "DEAD"]


def _assert_released(ray) -> None:
    """No engine actor alive and every GPU free (actor death is asynchronous: allow a few seconds)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (_engine_actors_alive() or
                                           ray.available_resources().get("GPU", 0) < ray.cluster_resources()["GPU"]):
        time.sleep(0.2)
    assert _engine_actors_alive() == []
    assert ray.available_resources().get("GPU", 0) == ray.cluster_resources()["GPU"]


def test_one_engine_start_for_every_pass_and_released_after(local_ray, tmp_path):
    run_augment(_cfg(str(tmp_path), wrong_answers))
    timing = RunStore(str(tmp_path), "engines").read_json("stats.json")["timing"]
    passes = timing["passes"]
    # two waves x (rewrite + rounds 0, 1, 2): one replica served them all
    assert len(passes) >= 6, passes
    assert timing["engine_starts"] == 1
    assert [p["engine_starts"] for p in passes] == [1] + [0] * (len(passes) - 1)
    _assert_released(local_ray)


def test_engines_released_when_the_job_fails_mid_run(local_ray, tmp_path):
    with pytest.raises(Exception, match="the engine broke mid-run"):
        run_augment(_cfg(str(tmp_path), fails_in_round_one))
    _assert_released(local_ray)
