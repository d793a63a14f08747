"""adaptive=prop2diff through the augment job on local Ray with a scripted engine: after round 0 the
questions that failed get accepted-answer targets and are resampled over several rounds until the
wave's budget is spent; those that passed get nothing more, and stats.json shows it."""

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment

pytestmark = pytest.mark.pipeline


def _hard(seed_id: str) -> bool:
    return int(seed_id.rsplit("/", 1)[-1]) % 2 == 1


def easy_or_hard(row: dict) -> str:
    """The scripted engine's answers (engine.script="test_prop2diff_pipeline:easy_or_hard"): even seeds
    are always solved; odd ones only on every fourth sample (never in round 0, samples 0 and 1)."""
    right = not _hard(row["seed_id"]) or int(row["sample_idx"]) % 4 == 3
    answer = row["expected"] if right else "-98765"
    return f"Attempt {row['sample_idx']}: add them up.\nThe answer is: {answer}"


def test_prop2diff_gives_the_hard_questions_the_budget(local_ray, tmp_path):
    from metamath_ray.storage import RunStore

    cfg = load_config(AugmentConfig, None, [
        "seeds=[{path: 'bundled:gsm8k'}]", "limit=4", "chunk_seeds=2", "augmentations=[AnsAug]",
        "adaptive=prop2diff", "budget_per_variant=2", "aug.AnsAug.k=2", "aug.AnsAug.max_attempts=8",
        "engine.kind=scripted", "engine.script=test_prop2diff_pipeline:easy_or_hard",
        "decontam.enabled=false",
    ], base={"output": str(tmp_path), "run_name": "p2d"})
    run_augment(cfg)

    store = RunStore(str(tmp_path), "p2d")
    rows = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist()]
    seeds = sorted({r["seed_id"] for r in rows})
    assert len(seeds) == 4 and sum(map(_hard, seeds)) == 2
    attempts = {s: sum(r["seed_id"] == s for r in rows) for s in seeds}
    accepted = {s: sum(r["seed_id"] == s and r["accepted"] for r in rows) for s in seeds}
    # one wave, 4 variants x 2 = 8 extra requests, all to the two that failed every round-0 sample:
    # round 1 fits k_max = 1 (3 samples each at the optimistic pass rate 1/3), finds sample 3 right;
    # round 2 shares the 2 left (k_max 2 would ask 3 each), then the budget is spent
    assert all(attempts[s] == (2 + 3 + 1 if _hard(s) else 2) for s in seeds), attempts
    assert all(accepted[s] == (1 if _hard(s) else 2) for s in seeds), accepted  # sample 3 of 2..5
    assert {r["round"] for r in rows if _hard(r["seed_id"])} == {0, 1, 2}
    assert {r["round"] for r in rows if not _hard(r["seed_id"])} == {0}
    hard = next(s for s in seeds if _hard(s))
    assert sorted(r["sample_idx"] for r in rows if r["seed_id"] == hard) == list(range(6))  # indices continue

    by_difficulty = store.read_json("stats.json")["by_difficulty"]
    assert by_difficulty["adaptive"] == "prop2diff" and by_difficulty["extra_attempts"] == 8
    cells = {c["difficulty"]: c for c in by_difficulty["table"]}
    assert cells["round-0 pass 0%"]["extra_attempts"] == 8 and cells["round-0 pass 100%"]["extra_attempts"] == 0
    assert "## Budget by difficulty" in (tmp_path / "p2d" / "report" / "report.md").read_text()
