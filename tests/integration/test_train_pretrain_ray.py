"""objective=pretrain through Ray Train: jobs/pretrain_tiny.yaml (2 CPU workers, ZeRO-3) with a
shorter budget. Each worker reads its own share of the sources; the realised mixture is summed over
both; the export loads with transformers. Run inside `unshare -n` (loopback only), as CI does.

Opt-in (METAMATH_RAY_PRETRAIN_RAY_TEST=1): ~100 s on 2 cores, nearly all Ray and DeepSpeed start-up;
the pretraining logic itself is covered by test_train_pretrain.py (one process, ~50 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_driver import PRIVATE_LOCAL_RAY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("METAMATH_RAY_PRETRAIN_RAY_TEST") != "1",
                       reason="opt-in: set METAMATH_RAY_PRETRAIN_RAY_TEST=1 (Ray start-up dominates, ~100 s)"),
]

ROOT = Path(__file__).resolve().parents[2]

DRIVER = PRIVATE_LOCAL_RAY + r"""
import json, sys
from metamath_ray.config import load_config
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.run import run_train
cfg = load_config(TrainConfig, "jobs/pretrain_tiny.yaml", sys.argv[1:])
print("SUMMARY " + json.dumps(run_train(cfg)), flush=True)
"""


def test_pretrain_tiny_job_on_ray(tmp_path):
    steps = 8
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, f"output={tmp_path}", f"max_steps={steps}", "checkpoint_every_steps=4",
         "warmup_steps=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    summary = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("SUMMARY "))[len("SUMMARY "):])
    assert summary["steps"] == steps and summary["world_size"] == 2

    mix = summary["mixture"]
    sequences = steps * 4  # global_batch_size 4, over both workers
    assert mix["sequences"] == sequences and mix["seq_len"] == 256
    assert mix["sources"]["math"]["realised_share"] == pytest.approx(2 / 3, abs=2 * 2 / sequences)
    assert mix["sources"]["gsm8k"]["sequences"] + mix["sources"]["math"]["sequences"] == sequences

    log = [json.loads(l) for l in (tmp_path / "tiny/train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    assert all(r["tokens"] == 4 * 256 for r in log)  # full sequences on both workers
    assert log[-1]["loss"] < log[0]["loss"]

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny/model")
    assert model.config.model_type == "llama"
