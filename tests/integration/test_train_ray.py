"""Ray Train + DeepSpeed ZeRO-3 on CPU: 2 workers, the tiny LLaMA, a fixed batch.

One run is killed (SIGKILL to the whole driver process group, Ray included) after its first
checkpoint; re-submitting the same config must resume from the saved step; in that run a training
worker is killed after a newer checkpoint and Ray Train must restart from it and finish the planned
steps. The finished run must have learned its fixed batch and exported a model that loads and generates.
Run inside `unshare -n` (loopback only), as CI does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metamath_ray.train.config import TrainConfig
from ray_driver import PRIVATE_LOCAL_RAY

pytestmark = [pytest.mark.integration]

DRIVER = PRIVATE_LOCAL_RAY + r"""
import json, os, sys
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.run import run_train
summary = run_train(TrainConfig.model_validate_json(sys.argv[1]))
print("SUMMARY " + json.dumps(summary), flush=True)
"""

STEPS = 16
CKPT_EVERY = 4
EXAMPLES = [
    ("What is 2 + 3?", "2 + 3 = 5.\nThe answer is: 5"),
    ("Tom has 4 apples and eats 1. How many are left?", "4 - 1 = 3.\nThe answer is: 3"),
    ("What is 6 times 7?", "6 * 7 = 42.\nThe answer is: 42"),
    ("Half of 18 is what?", "18 / 2 = 9.\nThe answer is: 9"),
]


def _env() -> dict:
    return {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
    }


def _start(cfg: TrainConfig, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, cfg.model_dump_json()],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
    )


def _saved_steps(run_dir: Path) -> list[int]:
    return sorted(json.loads(p.read_text())["step"] for p in run_dir.glob("ray_train/checkpoint_*/trainer_state.json"))


def _registered_steps(run_dir: Path) -> list[int]:
    """Checkpoints the Ray Train controller has registered: a restart resumes from the newest of
    these (a checkpoint folder can be complete on storage a moment before it is registered)."""
    try:
        snapshot = json.loads((run_dir / "ray_train" / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return []
    return sorted(int(r["metrics"]["step"]) for r in snapshot.get("checkpoint_results", []))


def _train_workers(driver_pid: int) -> list:
    """The RayTrainWorker processes started under this driver (children of its raylet)."""
    import psutil

    try:
        tree = psutil.Process(driver_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in tree:
        try:
            if "RayTrainWorker" in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def _wait_for(predicate, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Two faults in one training run (one set-up cost in CI):
    1. the driver (and the Ray it started) is SIGKILLed after the first checkpoint; the same config
       is submitted again and must resume from that checkpoint;
    2. in the re-submitted run, one training worker is SIGKILLed after a newer checkpoint;
       FailureConfig(max_failures=2) must restart the worker group from it, in the same job."""
    tmp = tmp_path_factory.mktemp("train_ray")
    data = tmp / "metamathqa.json"
    records = [{"type": "GSM_AnsAug", "query": q, "original_question": q, "response": r} for q, r in EXAMPLES]
    records.append({"type": "GSM_AnsAug", "query": "long " * 400, "original_question": "x", "response": "y"})
    data.write_text(json.dumps(records))
    cfg = TrainConfig(
        model="tiny", data=str(data), output=str(tmp / "out"), run_name="r", num_workers=2,
        micro_batch_size=2, global_batch_size=4, epochs=STEPS, lr=3e-3, warmup_ratio=0.0,
        max_length=192, checkpoint_every_steps=CKPT_EVERY, keep_checkpoints=2, max_failures=2, shuffle=False,
    )
    run_dir = tmp / "out" / "r"

    first = _start(cfg, tmp / "first.log")
    _wait_for(lambda: _saved_steps(run_dir), first, 420)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    first.wait()
    saved = _saved_steps(run_dir)
    assert saved, "first run saved no checkpoint:\n" + (tmp / "first.log").read_text()[-3000:]

    second = _start(cfg, tmp / "second.log")
    killed_worker, saved_at_worker_kill = None, []
    try:
        _wait_for(lambda: max(_registered_steps(run_dir) or [0]) > saved[-1], second, 420)
        workers = _train_workers(second.pid)
        saved_at_worker_kill = _registered_steps(run_dir)
        if workers and max(saved_at_worker_kill) < STEPS:
            killed_worker = workers[-1].pid
            os.kill(killed_worker, signal.SIGKILL)
        second.wait(timeout=600)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    out = (tmp / "second.log").read_text()
    lines = [l for l in out.splitlines() if l.startswith("SUMMARY ")]
    assert second.returncode == 0 and lines, out[-4000:]
    return {"summary": json.loads(lines[-1][len("SUMMARY "):]), "saved": saved, "run_dir": run_dir,
            "killed_worker": killed_worker, "saved_at_worker_kill": saved_at_worker_kill}


def _attempts(run: dict) -> list[dict]:
    return [json.loads(l) for l in (run["run_dir"] / "attempts.jsonl").read_text().splitlines()]


def test_resubmitted_run_resumes_from_the_saved_step(resumed_run):
    summary, saved = resumed_run["summary"], resumed_run["saved"]
    assert saved[-1] < STEPS, "the first run finished before it was killed"
    attempts = _attempts(resumed_run)
    assert attempts[0]["resumed_from_step"] == 0
    # The kill may land while a later checkpoint is being written; resume uses a completed one.
    assert attempts[1]["resumed_from_step"] in saved and attempts[1]["resumed_from_step"] >= CKPT_EVERY
    assert summary["steps"] == STEPS
    log = [json.loads(l) for l in (resumed_run["run_dir"] / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))


def test_killed_worker_restarts_from_the_last_checkpoint(resumed_run):
    assert resumed_run["killed_worker"], "no training worker was running to kill"
    attempts = _attempts(resumed_run)
    assert len(attempts) == 3, attempts  # first run, re-submit, restart after the worker kill
    restart = attempts[2]["resumed_from_step"]
    # the restarted worker group continued from a checkpoint newer than the re-submit's start
    assert restart > attempts[1]["resumed_from_step"] and restart % CKPT_EVERY == 0
    # (the newest registered one when the worker died, or one registered while the kill landed)
    assert restart >= max(resumed_run["saved_at_worker_kill"])
    assert resumed_run["summary"]["resumed_from_step"] == restart


def test_loss_falls_on_the_fixed_batch(resumed_run):
    log = [json.loads(l) for l in (resumed_run["run_dir"] / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 for r in log)


def test_too_long_example_is_counted_and_listed(resumed_run):
    summary = resumed_run["summary"]
    assert summary["kept"] == len(EXAMPLES) and summary["dropped_by_reason"] == {"too_long": 1}
    dropped = [json.loads(l) for l in (resumed_run["run_dir"] / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 1 and dropped[0]["reason"].startswith("too_long: ")


def test_export_loads_with_transformers_and_generates(resumed_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metamath_ray.templates import build_prompt

    model_dir = resumed_run["summary"]["model_uri"]
    assert (Path(model_dir) / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tok(build_prompt(EXAMPLES[0][0]), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    # The export holds the trained weights, not a fresh random model: it learned the response format.
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "The answer is:" in text, text
    # ... and its loss on the fixed batch is far below an untrained model's.
    from metamath_ray.models import resolve_model

    def batch_loss(m) -> float:
        """Mean loss on the response tokens of the fixed batch (what training optimised)."""
        losses = []
        for question, response in EXAMPLES:
            prompt_ids = tok(build_prompt(question))["input_ids"]
            ids = tok(build_prompt(question) + response, return_tensors="pt")["input_ids"]
            labels = ids.clone()
            labels[:, : len(prompt_ids)] = -100
            with torch.no_grad():
                losses.append(float(m(input_ids=ids, labels=labels).loss))
        return sum(losses) / len(losses)

    untrained = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))  # where training started
    assert batch_loss(model) < 0.6 * batch_loss(untrained)

