"""verify.steps through the augment job on local Ray with a scripted engine: right final answers
reached through a wrong arithmetic step are rejected as wrong_step (step in reject_detail), stay out
of data/ and metamathqa.json, and the report counts them; verify.steps=false keeps them."""

import json

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment

pytestmark = pytest.mark.pipeline


def slip_on_odd_samples(row: dict) -> str:
    """engine.script="test_wrong_step_pipeline:slip_on_odd_samples": every answer is right; odd
    samples reach it through `2 * 3 = 7`."""
    step = "2 * 3 = 7" if int(row["sample_idx"]) % 2 else "2 * 3 = 6"
    return f"First, {step} apples.\nThe answer is: {row['expected']}"


@pytest.mark.parametrize("steps", [True, False])
def test_wrong_steps_are_rejected_and_kept_out_of_the_export(local_ray, tmp_path, steps):
    from metamath_ray.storage import RunStore

    cfg = load_config(AugmentConfig, None, [
        "seeds=[{path: 'bundled:gsm8k'}]", "limit=2", "augmentations=[AnsAug]", "adaptive=off",
        "aug.AnsAug.k=4", "engine.kind=scripted", "engine.script=test_wrong_step_pipeline:slip_on_odd_samples",
        "decontam.enabled=false", "dedup.enabled=false", f"verify.steps={str(steps).lower()}",
    ], base={"output": str(tmp_path), "run_name": "ws"})
    run_augment(cfg)

    store = RunStore(str(tmp_path), "ws")
    rows = [r for s in store.list("candidates") for r in store.read_table(s).to_pylist()]
    slipped = [r for r in rows if "2 * 3 = 7" in r["response"]]
    assert len(rows) == 8 and len(slipped) == 4
    exported = json.loads((tmp_path / "ws" / "metamathqa.json").read_text())
    lost = store.read_json("stats.json")["by_dataset_aug"][0]["reject_reasons"].get("wrong_step", 0)
    report = (tmp_path / "ws" / "report" / "report.md").read_text()
    if steps:
        assert all(r["reject_reason"] == "wrong_step" and "2 * 3 = 7" in r["reject_detail"] for r in slipped)
        assert len(exported) == 4 and not any("2 * 3 = 7" in e["response"] for e in exported)
        assert lost == 4 and "| gsm8k/AnsAug | 8 | 4 | 50.0% |" in report
    else:
        assert all(r["accepted"] for r in rows) and len(exported) == 8 and lost == 0
