"""objective=pretrain in one process (the loop without Ray): a Parquet source and a JSON-lines source
on local disk plus one in S3 (moto on 127.0.0.1), mixed by weight and packed; the loss falls, every
sequence is full, the schedule ends at 1/30 of the peak, the export loads with transformers, and a
re-run with more steps resumes where the first stopped. Run inside `unshare -n`, as CI does."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metamath_ray.train.config import PretrainSettings, PretrainSource, TrainConfig

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "metamath_ray" / "data" / "seeds"


def _rows(name: str) -> list[dict]:
    return [json.loads(l) for l in (SEEDS / name).read_text().splitlines() if l.strip()]


def test_pretrain_mixture_loss_export_and_resume(tmp_path, s3_env):
    import boto3

    math_solutions = [r["solution"] for r in _rows("math_train_sample.jsonl")]
    pq.write_table(pa.table({"text": math_solutions}), tmp_path / "math.parquet", row_group_size=8)
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("".join(json.dumps({"answer": r["answer"]}) + "\n" for r in _rows("gsm8k_train_sample.jsonl")))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=s3_env, Key="corpus/questions.jsonl",
                  Body="".join(json.dumps({"text": r["question"]}) + "\n" for r in _rows("gsm8k_train_sample.jsonl")))

    weights = {"math": 3.0, "gsm8k": 2.0, "questions": 1.0}
    cfg = TrainConfig(
        objective="pretrain", model="tiny", output=str(tmp_path / "runs"), run_name="pt",
        pretrain=PretrainSettings(sources=[
            PretrainSource(name="math", path=str(tmp_path / "math.parquet"), weight=weights["math"]),
            PretrainSource(name="gsm8k", path=str(gsm), text_column="answer", weight=weights["gsm8k"]),
            PretrainSource(name="questions", path=f"s3://{s3_env}/corpus", weight=weights["questions"]),
        ]),
        max_length=64, micro_batch_size=2, global_batch_size=4, max_steps=36, lr=3e-3, warmup_steps=3,
        lr_min_ratio=1 / 30, checkpoint_every_steps=12, keep_checkpoints=1, dtype="bf16",
    )
    from metamath_ray.train.run import train_single_process

    first = train_single_process(cfg)
    assert first["steps"] == 36 and first["resumed_from_step"] == 0
    assert first["planned_tokens"] == 36 * 4 * 64

    log = [json.loads(l) for l in (tmp_path / "runs/pt/train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 37))
    assert all(r["tokens"] == 4 * 64 for r in log)  # full sequences: no padding anywhere
    early, late = sum(r["loss"] for r in log[:4]) / 4, sum(r["loss"] for r in log[-8:]) / 8
    assert late < early - 0.5, (early, late)  # ~6.9 -> ~6.0 on this data
    # warm-up from 0, peak after 3 steps, cosine down towards lr/30 (the last step's lr is just above it)
    assert log[0]["lr"] == 0.0 and log[3]["lr"] == pytest.approx(3e-3)
    assert 3e-3 / 30 <= log[-1]["lr"] < 3e-3 / 30 * 1.1

    mix = first["mixture"]
    assert mix["sequences"] == 36 * 4 and mix["tokens"] == 36 * 4 * 64
    total = sum(weights.values())
    for name, w in weights.items():
        src = mix["sources"][name]
        assert src["realised_share"] == pytest.approx(w / total, abs=2 / mix["sequences"]), name
        assert src["documents_read"] > 0
    assert mix["sources"]["questions"]["path"].startswith("s3://")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tmp_path / "runs/pt/model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok("The answer is", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5 or tok.eos_token_id in out[0].tolist()

    # The same run with a longer budget continues from its last checkpoint and from the same place in
    # the data stream (replayed up to step 36, then new sequences), not from the stream's start.
    second = train_single_process(cfg.model_copy(update={"max_steps": 40}))
    assert second["resumed_from_step"] == 36 and second["steps"] == 40
    log2 = [json.loads(l) for l in (tmp_path / "runs/pt/train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log2] == list(range(1, 41))
    assert log2[:36] == log  # earlier records kept as they were
    assert second["mixture"]["sequences"] == 40 * 4
