"""The evaluation graph on local Ray: the scripted engine (known answers -> known metrics), then the
tiny model through the real engines.

The scripted engine answers with functions of this module (engine.script="<module>:<function>");
they travel to the Ray workers by value."""

import json
import os

import pyarrow.parquet as pq
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

from metamath_ray.evaluate.compare import compare_runs  # noqa: E402
from metamath_ray.evaluate.config import EvaluateConfig  # noqa: E402
from metamath_ray.pipeline import evaluate as pipeline  # noqa: E402

pytestmark = pytest.mark.pipeline


WRONG = "123456789"  # a number no gold equals, so wrong samples vote together


def half_right(row):
    """Right on even source_index, wrong on odd; sampled answers: right for sample 0 only."""
    right = row["source_index"] % 2 == 0
    if row["decoding"] == "sample":
        right = row["sample_idx"] == 0
    return f"Work.\nThe answer is: {row['gold'] if right else WRONG}"


def all_right(row):
    return f"The answer is: {row['gold']}"


def scripted(script, **cfg):
    """An EvaluateConfig whose engine answers with `script` (a function of this module)."""
    return EvaluateConfig(engine={"kind": "scripted", "script": f"{__name__}:{script.__name__}"}, **cfg)


def _samples(run_dir):
    return pq.read_table(run_dir / "samples").to_pylist()


def test_scripted_engine_gives_known_metrics(local_ray, tmp_path):
    cfg = scripted(half_right, datasets="gsm8k,math500,svamp", limit=4, k=3, output=str(tmp_path), run_name="a")
    report = pipeline.run_evaluate(cfg)

    run_dir = tmp_path / "a"
    on_disk = json.loads((run_dir / "report.json").read_text())
    assert on_disk["datasets"] == json.loads(json.dumps(report["datasets"]))
    assert list(report["datasets"]) == ["gsm8k", "math500", "svamp"]
    for name, ds in report["datasets"].items():
        assert ds["questions"] == 4 and ds["samples"] == 4 * (1 + 3)
        for scorer in ("strict", "metamath"):
            assert ds["greedy"][scorer]["accuracy"] == 0.5, (name, scorer)
            assert ds["maj@3"][scorer]["accuracy"] == 0.0  # two of three votes go to WRONG
            assert ds["pass@k"][scorer]["1"]["accuracy"] == pytest.approx(1 / 3)
            assert ds["pass@k"][scorer]["3"]["accuracy"] == 1.0
    assert "by_type_level" in report["datasets"]["math500"]
    assert report["throughput"]["samples"] == 48
    passes = report["throughput"]["passes"]
    assert [(p["name"], p["decodings"], p["temperature"], p["requests"]) for p in passes] == [
        ("greedy", ["greedy"], 0.0, 12), ("sample", ["sample"], 0.7, 36)]
    assert report["model"] == "tiny" and report["engine"] == "scripted"

    samples = _samples(run_dir)
    assert len(samples) == 48
    row = next(s for s in samples if s["item_id"] == "gsm8k/0" and s["decoding"] == "greedy")
    assert row["response"].endswith("The answer is: 18") and row["correct_strict"] and row["extracted"] == "18"
    assert row["prompt"].endswith("Let's think step by step.")
    assert (run_dir / "report.md").read_text().startswith("# Evaluation: a")
    assert (run_dir / "plots" / "accuracy.png").exists() and (run_dir / "plots" / "math500_type_level.png").exists()

    # a second run with every answer right, then the comparison
    pipeline.run_evaluate(scripted(all_right, datasets="gsm8k,math500", limit=4, output=str(tmp_path), run_name="b"))
    text = compare_runs(str(run_dir), str(tmp_path / "b"))
    assert "| gsm8k | 50.0 -> 100.0 (+50.0) | 50.0 -> 100.0 (+50.0) |" in text
    assert "Evaluated only in a: svamp" in text


def test_rerun_replaces_samples(local_ray, tmp_path):
    cfg = scripted(half_right, datasets="gsm8k", limit=3, output=str(tmp_path), run_name="r")
    pipeline.run_evaluate(cfg)
    pipeline.run_evaluate(cfg)
    assert len(_samples(tmp_path / "r")) == 3


@pytest.mark.parametrize(
    "kind",
    ["hf", pytest.param("vllm", marks=pytest.mark.integration)],
)
def test_tiny_model_end_to_end(local_ray, tmp_path, kind):
    cfg = EvaluateConfig(
        datasets="gsm8k,math500",
        limit=2,
        k=2,
        max_tokens_default=8,
        engine={"kind": kind, "model": "tiny", "batch_size": 4, "max_model_len": 1024, "num_gpus_per_replica": 1.0 if kind == "vllm" else 0.0},
        output=str(tmp_path),
        run_name=kind,
    )
    report = pipeline.run_evaluate(cfg)
    samples = _samples(tmp_path / kind)
    assert len(samples) == 2 * 2 * 3
    assert all(0 < s["num_generated_tokens"] <= 8 for s in samples)
    assert all(s["num_input_tokens"] > 0 for s in samples)
    for ds in report["datasets"].values():
        assert ds["questions"] == 2 and 0.0 <= ds["greedy"]["strict"]["accuracy"] <= 1.0
    assert {(s["decoding"], s["sample_idx"]) for s in samples} == {("greedy", 0), ("sample", 0), ("sample", 1)}
