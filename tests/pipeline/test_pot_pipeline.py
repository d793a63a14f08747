"""PoT through the augment job on local Ray with a scripted engine: programs are judged by running
them in the sandbox inside Ray map tasks, and every outcome lands in data/, rejected/ and the export."""

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment

pytestmark = pytest.mark.pipeline

# Per sample index: a correct program, one that imports socket, one that sleeps past the wall clock.
PROGRAMS = {
    0: "answer = {expected}\nprint(answer)\n```",
    1: "import socket\nprint({expected})\n```",
    2: "import time\ntime.sleep(30)\n```",
}


def program_script(row: dict) -> str:
    """The scripted engine's answers (engine.script="test_pot_pipeline:program_script")."""
    if row["aug"] == "PoT":
        assert row["prompt"].endswith("Program:\n```python\n")
        return PROGRAMS[int(row["sample_idx"])].format(expected=row["expected"])
    return f"Add them up.\nThe answer is: {row['expected']}"


def test_pot_augmentation_runs_programs_in_ray(local_ray, tmp_path):
    from metamath_ray.storage import RunStore

    cfg = load_config(AugmentConfig, None, [
        "seeds=[{path: 'bundled:gsm8k'}]", "limit=2", "chunk_seeds=2", "augmentations=[AnsAug, PoT]",
        "adaptive=false", "aug.AnsAug.k=1", "aug.AnsAug.max_attempts=1",
        "aug.PoT.k=3", "aug.PoT.max_attempts=3", "aug.PoT.sandbox_wall_s=1",
        "engine.kind=scripted", "engine.script=test_pot_pipeline:program_script",
        "decontam.enabled=false",
    ], base={"output": str(tmp_path), "run_name": "pot"})
    run_augment(cfg)

    store = RunStore(str(tmp_path), "pot")
    rows = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist()]
    pot_rows = [r for r in rows if r["aug"] == "PoT"]
    assert len(pot_rows) == 2 * 3
    by_sample = {i: [r for r in pot_rows if r["sample_idx"] == i] for i in PROGRAMS}
    assert all(r["accepted"] for r in by_sample[0])
    assert {r["reject_reason"] for r in by_sample[1]} == {"sandbox_forbidden"}
    assert {r["reject_reason"] for r in by_sample[2]} == {"sandbox_timeout"}
    assert all(r["prompt_version"].endswith("/pot-v1") for r in pot_rows)

    stats = store.read_json("stats.json")
    pot_stats = [t for t in stats["by_dataset_aug"] if t["aug"] == "PoT"]
    assert pot_stats and pot_stats[0]["candidates"] == 6 and pot_stats[0]["accepted"] == 2
    assert pot_stats[0]["reject_reasons"] == {"sandbox_forbidden": 2, "sandbox_timeout": 2}

    records = store.read_json("metamathqa.json")
    types = {r["type"] for r in records}
    assert types == {"GSM_AnsAug", "GSM_PoT"}  # PoT answers to the same question are not duplicates
    for r in records:
        if r["type"] == "GSM_PoT":
            assert r["response"].startswith("```python\nanswer = ")
            assert r["response"].splitlines()[-1].startswith("The answer is: ")


def hybrid_answer(row):
    """CoT right on even questions; programs: right on the first two, crashing on the rest."""
    idx = int(row["source_index"])
    if row["decoding"] == "pot":
        return f"```python\nprint({row['gold']})\n```" if idx < 2 else "```python\nprint(1/0)\n```"
    return f"The answer is: {row['gold'] if idx % 2 == 0 else 123456789}"


def test_hybrid_evaluation_reports_beside_cot(local_ray, tmp_path):
    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.pipeline import evaluate as pipeline

    cfg = EvaluateConfig(datasets="gsm8k", limit=4, mode="hybrid", output=str(tmp_path), run_name="h",
                         engine={"kind": "scripted", "script": "test_pot_pipeline:hybrid_answer"})
    report = pipeline.run_evaluate(cfg)
    passes = report["throughput"]["passes"]
    assert [(p["decodings"], p["temperature"], p["requests"]) for p in passes] == [(["greedy", "pot"], 0.0, 8)], \
        "greedy CoT and programs share one greedy engine pass"
    ds = report["datasets"]["gsm8k"]
    assert ds["questions"] == 4 and ds["greedy"]["strict"]["accuracy"] == 0.5  # CoT metrics: CoT rows only
    h = ds["hybrid"]
    # q0: pot right; q1: pot right (CoT wrong); q2: pot crashes -> CoT right; q3: crashes -> CoT wrong
    assert h["strict"]["cot"]["accuracy"] == 0.5
    assert h["strict"]["pot"]["accuracy"] == 0.5
    assert h["strict"]["hybrid"]["accuracy"] == 0.75
    assert h["pot_status"] == {"ok": 2, "sandbox_error": 2} and h["fallback_rate"] == 0.5
    md = (tmp_path / "h" / "report.md").read_text()
    assert "## Hybrid decoding" in md and "| gsm8k | 50.0 (50.0) | 50.0 (50.0) | 75.0 (75.0) | 50.0% |" in md
